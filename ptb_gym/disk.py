"""An episode's directories and its disk quota: made at reset, removed at close, reclaimed after a crash.

`EpisodeDisk.create(parent, quota_bytes=..., owner_uid=...)` makes `<parent>/ptb-episode-XXXX/` with:

- `workspace/`: the agent's, owned by `owner_uid` (the sandbox's host identity), mode 0700. When this process
  is root and loop devices work, it is an ext4 image of `quota_bytes` (a sparse file next to it, so it costs
  only what is written; mounted `nosuid,nodev,discard`, so setuid bits and device files mean nothing and
  deleted files give their space back to the host). A 4 GB file or a million small files (the image has one
  inode per 16 KiB) end in ENOSPC inside the workspace, and nothing outside it fills up.
  Elsewhere (not root, no loop device: a container without /dev/loop-control) it is a plain directory, and
  the quota is a best-effort check (`over_quota`, which the sandbox's guard calls every few seconds and which
  then kills the episode's processes): a burst faster than the check, or a sparse file, can pass it for a while.
  `quota["kind"]` says which holds ("ext4-loop" or "guard").
- `private/` (0700): the env's only; never shown to the sandbox.
- `owner.json`: the owning env process (pid, its start time, the boot and the PID namespace), so that
  `sweep_stale(parent)`, run at the first `create` of every process, reclaims the directories of env
  processes that died without closing (kill -9): a reused pid does not protect a dead episode's directory.

`remove()` is idempotent and leaves nothing: it unmounts the workspace (lazily if something still holds it),
which detaches its loop device (mounted with autoclear), and deletes the directory. It kills nothing: the
sandbox's `close` ends the episode's processes first. `keep()` keeps the files (and the mount) for debugging.
A process that exits (or drops its env) without closing it removes the directory as it goes (a finalizer):
`sweep_stale` is for the processes that cannot (kill -9, a lost machine).
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptb_gym.text import human_bytes

logger = logging.getLogger("ptb_gym")

EPISODE_PREFIX = "ptb-episode-"
OWNER_FILE = "owner.json"
IMAGE_FILE = "workspace.img"
BYTES_PER_INODE = 16 * 1024
"""One inode per 16 KiB of quota: 131,072 files in 2 GiB; more small files than that end in ENOSPC."""
_MNT_DETACH = 2
_LOOP_CLR_FD = 0x4C01

_libc = ctypes.CDLL(None, use_errno=True)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_swept: set[Path] = set()
_swept_lock = threading.Lock()
_loop_failure: list[str] = []  # why loop-mounted images do not work here, once found out


@dataclass
class EpisodeDisk:
    """One episode's directories on the host; see the module's docstring."""

    root: Path
    """`<parent>/ptb-episode-XXXX`, the episode's directory (0711: the sandbox's identity may pass, not list)."""
    workspace: Path
    """The agent's directory (a loop-mounted ext4 image of the quota's size where it can be)."""
    private: Path
    """The env's own directory (0700): checkpoint snapshots, job inputs, verifier scratch."""
    quota: dict[str, Any]
    """What bounds the workspace's size: {"kind": "ext4-loop" | "guard", "bytes": ..., ("why": ...)}."""
    _mounted: bool = field(default=False, repr=False)
    _removed: bool = field(default=False, repr=False)
    _finalizer: weakref.finalize | None = field(default=None, repr=False, compare=False)
    """Reclaims the directory when the process exits (or drops the env) without closing it."""

    @classmethod
    def create(cls, parent: str | os.PathLike[str] | None, *, quota_bytes: int, owner_uid: int | None,
               owner_gid: int | None = None) -> EpisodeDisk:
        """Make an episode's directories under `parent` (None: the system's temporary directory), its workspace
        owned by `owner_uid` (None: this process) and, when `owner_gid` is None, the sandbox's host gid for the
        sandbox's host uid, else this process's gid."""
        parent_dir = Path(parent) if parent is not None else Path(tempfile.gettempdir())
        parent_dir.mkdir(parents=True, exist_ok=True)
        with _swept_lock:
            first = parent_dir.resolve() not in _swept
            _swept.add(parent_dir.resolve())
        if first:
            sweep_stale(parent_dir)
        uid, gid = _owner(owner_uid, owner_gid)
        root = Path(tempfile.mkdtemp(prefix=EPISODE_PREFIX, dir=parent_dir)).resolve()
        disk = cls(root, root / "workspace", root / "private", {"kind": "guard", "bytes": int(quota_bytes)})
        disk._finalizer = weakref.finalize(disk, _reclaim_in, os.getpid(), root)
        try:
            _write_owner(root)
            root.chmod(0o711)
            disk.private.mkdir(mode=0o700)
            disk.workspace.mkdir(mode=0o700)
            why = _loop_failure[0] if _loop_failure else None
            if why is None and os.geteuid() != 0:
                why = "not root: loop devices cannot be mounted"
            if why is None:
                why = disk._mount_image(int(quota_bytes), uid, gid)
            if why is None:
                disk.quota = {"kind": "ext4-loop", "bytes": int(quota_bytes)}
            else:
                disk.quota["why"] = why
            if (uid, gid) != (os.getuid(), os.getgid()):
                os.chown(disk.workspace, uid, gid)
            disk.workspace.chmod(0o700)
        except BaseException:
            disk.remove()
            raise
        return disk

    def over_quota(self) -> str | None:
        """Where the quota is only a check ("guard"): why the workspace is over it, else None. Walks the
        workspace (iteratively, without following links), counting allocated blocks."""
        if self.quota["kind"] != "guard" or self._removed:
            return None
        used, stack = 0, [str(self.workspace)]
        while stack:
            try:
                with os.scandir(stack.pop()) as entries:
                    for entry in entries:
                        try:
                            info = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        used += max(info.st_blocks * 512, 4096)
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        if used > self.quota["bytes"]:
                            return (f"the workspace uses more than its disk quota of {human_bytes(self.quota['bytes'])}: "
                                    "delete files you no longer need")
            except OSError:
                continue
        return None

    def remove(self) -> None:
        """Unmount the workspace, detach its loop device and delete every file of the episode. Idempotent;
        kills nothing (close the sandbox first)."""
        if self._removed:
            return
        self._removed = True
        self._finalizer()

    def keep(self) -> None:
        """Keep the episode's files for debugging (`keep_workspace`): the workspace stays where it is (still
        mounted, when it is a quota image: `umount <root>/workspace` when done with it) and `sweep_stale` leaves
        the directory alone."""
        if self._removed:
            return
        self._removed = True
        self._finalizer.detach()
        try:
            (self.root / OWNER_FILE).unlink()
        except OSError:
            pass
        logger.info("ptb-gym: kept the episode's files in %s", self.root)

    # ------------------------------------------------------------------------------------------ internals

    def _mount_image(self, quota_bytes: int, uid: int, gid: int) -> str | None:
        """Make and mount the workspace's ext4 image; None when it is mounted, else why not."""
        image = self.root / IMAGE_FILE
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(fd, quota_bytes)
        finally:
            os.close(fd)
        inodes = max(1024, quota_bytes // BYTES_PER_INODE)
        steps = (
            ["mkfs.ext4", "-q", "-F", "-b", "4096", "-N", str(inodes), "-O", "^has_journal", "-m", "0",
             "-E", f"lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner={uid}:{gid}", str(image)],
            # `-o loop` asks for an autoclear loop device: unmounting detaches it, even after kill -9.
            ["mount", "-t", "ext4", "-o", "loop,nosuid,nodev,noatime,discard,nobarrier", str(image), str(self.workspace)],
        )
        for argv in steps:
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as error:
                result = subprocess.CompletedProcess(argv, 1, "", str(error))
            if result.returncode != 0:
                why = f"{argv[0]} failed: {(result.stderr or result.stdout).strip()[:300]}"
                image.unlink(missing_ok=True)
                _loop_failure[:] = [why]  # the same here for every episode: do not pay for it again
                logger.warning("ptb-gym: no disk quota image for episodes (%s); the quota is a best-effort check",
                               why)
                return why
        self._mounted = True
        try:
            (self.workspace / "lost+found").rmdir()
        except OSError:
            pass
        return None


def sweep_stale(parent: str | os.PathLike[str] | None) -> list[Path]:
    """Reclaim the episode directories under `parent` whose env process is gone (killed, crashed): unmount,
    detach, delete. An episode of a live process (same pid and start time, this boot), one whose process lives
    in another PID namespace (cannot be told), or a kept one (no owner file) is left alone. Returns what it
    reclaimed."""
    parent_dir = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    reclaimed = []
    try:
        candidates = [entry for entry in os.scandir(parent_dir)
                      if entry.name.startswith(EPISODE_PREFIX) and entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    for entry in candidates:
        root = Path(entry.path)
        owner = _read_owner(root)
        if owner is None or _alive(owner):
            continue
        logger.info("ptb-gym: reclaiming %s, left by env process %s", root, owner.get("pid"))
        _reclaim(root)
        reclaimed.append(root)
    return reclaimed


def process_start_time(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, from /proc/<pid>/stat), or None if it is gone:
    a pid and its start time name one process, even when the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            text = stat_file.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()
    return fields[19].decode() if len(fields) > 19 else None


# ---------------------------------------------------------------------------------------------- internals

def _owner(uid: int | None, gid: int | None) -> tuple[int, int]:
    if uid is None:
        return os.getuid(), os.getgid() if gid is None else gid
    if gid is None:
        from ptb_gym.sandbox import SANDBOX_HOST_GID, SANDBOX_HOST_UID

        gid = SANDBOX_HOST_GID if uid == SANDBOX_HOST_UID else os.getgid()
    return uid, gid


def _identity_of_this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "start": process_start_time(os.getpid()), "boot": _boot_id(),
            "pidns": _pid_namespace()}


def _write_owner(root: Path) -> None:
    fd = os.open(root / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with open(fd, "w") as out:
        json.dump(_identity_of_this_process(), out)


def _read_owner(root: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(root / OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        owner = json.loads(os.read(fd, 4096))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None


def _alive(owner: dict[str, Any]) -> bool:
    """Whether the process an owner file names may still run (True when it cannot be told)."""
    if owner.get("boot") != _boot_id():
        return False  # a reboot ended it (and its mounts)
    if owner.get("pidns") != _pid_namespace():
        return True  # another PID namespace's pid: cannot be looked up from here
    return process_start_time(owner["pid"]) == owner.get("start")


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _reclaim_in(pid: int, root: Path) -> None:
    """`_reclaim(root)`, in the process that made it only (not in a forked child exiting)."""
    if os.getpid() == pid:
        _reclaim(root)


def _reclaim(root: Path) -> None:
    """Unmount, detach and delete an episode's directory; never follows a link, never raises."""
    _unmount(root / "workspace")
    _detach_loop(root / IMAGE_FILE)
    try:
        shutil.rmtree(root)
    except FileNotFoundError:
        pass
    except (OSError, RecursionError):  # a tree too deep for rmtree's recursion (a guard-mode workspace)
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(root)], capture_output=True, timeout=600)
    if os.path.lexists(root):
        logger.warning("ptb-gym: could not delete all of %s", root)


def _unmount(path: Path) -> None:
    """Unmount `path` if it is a mount point: plainly while its last processes exit, then lazily."""
    target = os.fsencode(path)
    for attempt in range(20):
        if not os.path.ismount(path):
            return
        if _libc.umount2(target, 0) == 0:
            return
        number = ctypes.get_errno()
        if number not in (errno.EBUSY,):
            break
        time.sleep(0.025)
    if os.path.ismount(path) and _libc.umount2(target, _MNT_DETACH) != 0:
        logger.warning("ptb-gym: could not unmount %s: %s", path, os.strerror(ctypes.get_errno()))


def _detach_loop(image: Path) -> None:
    """Detach a loop device still backed by `image` (autoclear does it on unmount; this covers a mount that
    failed half way, or a lazy unmount whose holders are gone)."""
    if not os.path.exists(image):
        return
    try:
        backing = {str(image.resolve())}
        for entry in os.scandir("/sys/block"):
            if not entry.name.startswith("loop"):
                continue
            try:
                name = Path(f"/sys/block/{entry.name}/loop/backing_file").read_text().strip()
            except OSError:
                continue
            if name.removesuffix(" (deleted)") in backing:
                try:
                    fd = os.open(f"/dev/{entry.name}", os.O_RDONLY)
                except OSError:
                    continue
                try:
                    import fcntl

                    fcntl.ioctl(fd, _LOOP_CLR_FD, 0)
                except OSError:
                    pass  # busy (a lazy unmount's holder): autoclear detaches it when that one goes
                finally:
                    os.close(fd)
    except OSError:
        pass
