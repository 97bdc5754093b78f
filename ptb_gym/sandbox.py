"""Where agent commands run, and what they can and cannot do there.

`BubblewrapSandbox` (the default where it works) runs each command (`run`, `launch`, training jobs) in fresh
Linux namespaces through bubblewrap (Debian package `bubblewrap`):

- **File system**: an empty root with, read-only, the system directories a program needs (`/usr` and the
  `/bin`, `/lib` links), a short list of `/etc` files (no `pip.conf`, `.npmrc` or shadow files: they can hold
  credentials), the Python installation (interpreter, standard library, site-packages) and, of ptb-gym
  itself, only the modules the training recipe imports (`python -m ptb_gym.training`). The task packages
  (`ptb_gym.envs`: the hidden test split's generator, the recorded scores, the embedded base model),
  the agent tools, the scoring and integrity code, the repository around an editable install, other
  episodes' workspaces, recordings and home directories are not there at all. The workspace is the one
  writable place; `/tmp` and `/dev/shm` are private and empty.
- **Identity**: a user namespace with uid 1000 and no capabilities; nested user namespaces are disabled. On
  the host, when the env runs as root, that uid is `SANDBOX_HOST_UID` (gid `SANDBOX_HOST_GID`), a uid that is
  no account: the env's child joins the episode's cgroup, sets the rlimits, drops every group and switches to
  that identity (and sets `PR_SET_NO_NEW_PRIVS`) before it starts bubblewrap, which then runs unprivileged.
  What the sandbox writes belongs to that identity, and a setuid bit it sets gains nothing but that identity
  (the episode's disk is mounted `nosuid` as well, and the env never runs a file of the workspace). The
  Python installation or the workspace may lie under a directory that identity cannot enter (`/root/.pyenv`,
  pytest's `/tmp/pytest-of-root`): the child, still root, then binds them onto mount points it can reach, in a
  private mount namespace of its own that dies with the command. When the env does not run as root the
  sandbox's files are the env user's, as with any program it runs. All episodes of a host share the identity
  (their PID, mount and network namespaces keep them apart).
- **Processes**: its own PID namespace, so `/proc` shows only the sandbox's processes (never the env's
  memory or environment), and everything a command starts - double forks, `setsid`, `nohup` included -
  dies with the command: a `run` leaves nothing behind, and killing a job kills all of it.
- **Network**: its own network namespace with only a loopback device: no internet, no host ports, no
  abstract Unix sockets of the host.

Resource limits, for both backends (`limits()` says which hold on this machine):

- **Processes and memory**: a cgroup per episode (cgroup v2, or the v1 `pids` and `memory` controllers)
  when this process may create one (root, or a delegated subtree): `pids.max` bounds the tasks (threads
  count) of the whole episode, the memory limit its RAM (the kernel's OOM killer then stops the agent's
  processes, not the env). Without a cgroup: RLIMIT_NPROC when not running as root (root ignores it, and
  bubblewrap maps the sandbox's uid to ours) and RLIMIT_AS when no GPU is present (CUDA reserves huge
  address ranges). The same cgroup counts the CPU time of every process of the episode (`cpu_seconds`, v2
  `cpu.stat` or v1 `cpuacct`), which the `cpu` budget charges; the sandbox's processes cannot move out of
  it (its files belong to root, and they do not run as root).
- **Files**: RLIMIT_FSIZE bounds every file written, RLIMIT_NOFILE the open files, no core dumps; a guard
  thread kills the episode's processes when the file system that holds the workspace (the host's, under a
  loop-mounted workspace) has less than `min_free_disk_bytes` left. The episode's disk quota itself is
  `disk.EpisodeDisk`'s (a loop-mounted ext4 image of that size; a best-effort check where none can be made,
  wired through `watch_quota`).
- **Time**: `run` has a timeout; background jobs die at the end of the budget (see `jobs.py`).

What it does not protect against: kernel exploits (namespaces and cgroups are a kernel boundary; there is
no seccomp filter, no VM); CPU time and GPU memory beyond the time limits; side channels; what the env
process itself reads from the workspace (tools resolve paths and refuse links that leave it); the total
disk space of an episode where no quota image can be mounted (only the best-effort check); an agent that reads the files it is given
(the base model, the train and dev splits) - which is the point.

`SubprocessSandbox` runs commands as plain subprocesses of the env with the same resource limits but no
isolation at all, for trusted agents on machines without bubblewrap; it warns when chosen. As root it also
runs them as `SANDBOX_HOST_UID` when that identity can reach the Python interpreter and the workspace (there
is no mount namespace to bind them into); otherwise they run as root, and it says so in `limits_in_force`.
"""

from __future__ import annotations

import ast
import atexit
import ctypes
import functools
import glob
import itertools
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ptb_gym.config import SANDBOX_KINDS
from ptb_gym.errors import ConfigError
from ptb_gym.text import human_bytes

logger = logging.getLogger("ptb_gym")

# Variables every agent process gets: offline Hugging Face libraries, unbuffered Python, no telemetry.
_BASE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PYTHONUNBUFFERED": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_MODE": "disabled",
    "LANG": "C.UTF-8",
}
_PASSED_THROUGH = ("PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE",
                   "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH", "PYTHONPATH")

# The identity inside the sandbox.
SANDBOX_UID = 1000
SANDBOX_USER = "agent"
# ...and outside it when the env runs as root: a uid and gid that are no account (not in /etc/passwd, below
# the 65534 of `nobody`, above the ranges distributions hand out to system and human users).
SANDBOX_HOST_UID = 64000
SANDBOX_HOST_GID = 64000
# /etc files a Python program and bash need. Not /etc wholesale: pip.conf, .npmrc, gitconfig or the shadow
# files can hold credentials, and none of it is the agent's business.
_ETC_FILES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates", "ca-certificates.conf",
    "nsswitch.conf", "hosts", "host.conf", "gai.conf", "localtime", "timezone", "os-release", "mime.types",
    "bash.bashrc", "inputrc", "protocols", "services", "magic", "locale.alias", "fonts",
)
# Linux's "merged /usr" links, or directories on older systems.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Top-level pieces of the ptb_gym package that are never shown to the agent (in a wheel install they sit
# under the bound site-packages; in an editable install they live elsewhere and are simply not bound).
_HIDDEN_SUBPACKAGES = ("envs", "tools", "baselines")
# Modules of ptb_gym the sandbox needs: these and what they import from ptb_gym (found by `_core_modules`).
_SANDBOX_ENTRY_MODULES = ("__init__", "training")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of an episode's agent processes."""

    memory_bytes: int | None = None
    """RAM of all the episode's processes together (cgroup); None: three quarters of this machine's."""
    max_processes: int = 4096
    """Tasks (processes and threads) of the episode together (cgroup `pids.max`; RLIMIT_NPROC as fallback)."""
    max_file_bytes: int = 4 * 1024**3
    """Largest file a command may write (RLIMIT_FSIZE); a full-tier checkpoint shard must fit."""
    max_open_files: int = 4096
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    min_free_disk_bytes: int = 512 * 1024**2
    """The episode's processes are killed when the workspace's file system has less free space than this."""


class Sandbox:
    """Runs agent commands inside a workspace, under resource limits."""

    name = "none"

    def __init__(self, extra_env: Mapping[str, str] | None = None, limits: SandboxLimits | None = None):
        self.extra_env = dict(extra_env or {})
        self.limits = limits or SandboxLimits()
        self.stopped_reason: str | None = None
        """Why the guard killed the episode's processes (the disk filled up), or None."""
        self._cgroup: _Cgroup | None = None
        self._cpu_s_closed = 0.0  # CPU time of the cgroups this sandbox closed (a later spawn makes a new one)
        self._cpu_s_seen = 0.0
        self._processes: list[subprocess.Popen] = []
        self._guard: threading.Thread | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._workspace: Path | None = None
        self._quota_check: Any = None
        self._quota_checked = 0.0
        self.identity: tuple[int, int] | None = None
        """The host uid and gid the commands run as; None: the env's own."""

    @property
    def host_uid(self) -> int:
        """The uid that owns what the commands write, on the host."""
        return self.identity[0] if self.identity else os.getuid()

    def watch_quota(self, check: Any) -> None:
        """Have the guard call `check()` every few seconds while commands run and kill the episode's processes
        when it returns a reason (a string): the best-effort disk quota of `disk.EpisodeDisk`."""
        self._quota_check = check

    def wrap(self, argv: list[str], workspace: Path) -> list[str]:
        return argv

    def environment(self, workspace: Path) -> dict[str, str]:
        env = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
        # USER and LOGNAME, because the host uid a command may run as has no account: `getpass.getuser()` (torch's
        # compile caches on a GPU call it) would fail without them.
        env.update(_BASE_ENV, HOME=str(workspace), TMPDIR=str(workspace / ".tmp"), USER=SANDBOX_USER,
                   LOGNAME=SANDBOX_USER, **self.extra_env)
        return env

    def spawn(
        self,
        argv: list[str],
        workspace: Path,
        *,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = subprocess.STDOUT,
    ) -> subprocess.Popen:
        """Start `argv` in the workspace, in its own process group (so `kill` reaches all it started)."""
        self._make_tmpdir(workspace)
        with self._lock:
            self._closed.clear()
            self._workspace = workspace
            if self._cgroup is None:
                self._cgroup = _Cgroup.create()
            if self._cgroup is not None:
                self._cgroup.apply(self.limits)
            procs_files = self._cgroup.procs_files if self._cgroup else ()
            process = subprocess.Popen(
                self.wrap(argv, workspace),
                cwd=workspace,
                env=self.environment(workspace),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=functools.partial(_enter_child, self._rlimits(), procs_files, self._identity_for(workspace),
                                             self._staged_binds(workspace), os.fsencode(workspace)),
            )
            self._processes = [p for p in self._processes if p.poll() is None] + [process]
            if self._guard is None or not self._guard.is_alive():
                self._guard = threading.Thread(target=self._watch, name="ptb-gym-sandbox", daemon=True)
                self._guard.start()
        return process

    def close(self) -> None:
        """Kill every process this sandbox started (escaped ones too, where a cgroup holds them), free the
        cgroup and stop the guard. Idempotent; a later `spawn` starts afresh."""
        self._closed.set()
        with self._lock:
            self._kill_all()
            for process in self._processes:
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    logger.warning("sandbox process %d did not exit after SIGKILL", process.pid)
            self._processes = []
            if self._cgroup is not None:
                self._cgroup.kill()
                self._cpu_s_closed += self._cgroup.cpu_seconds() or 0.0
                self._cgroup.remove()
                self._cgroup = None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) that every process this sandbox started has used, ended ones and escaped ones
        included (the cgroup holds them all). Never decreases; 0 where `counts_cpu()` is false."""
        cgroup = self._cgroup  # read without the lock: a spawn holds it while the process starts
        current = (cgroup.cpu_seconds() or 0.0) if cgroup is not None else 0.0
        self._cpu_s_seen = max(self._cpu_s_seen, self._cpu_s_closed + current)  # no dip while close() swaps cgroups
        return self._cpu_s_seen

    def limits_in_force(self) -> dict[str, str]:
        """What bounds the episode's processes on this machine, in words (for logs, reports and tests)."""
        cgroup = self._cgroup or _Cgroup.probe()
        limits = self.limits
        memory = limits.memory_bytes or _default_memory_bytes()
        if cgroup and cgroup.has("pids"):
            processes = f"cgroup pids.max {limits.max_processes} for the episode"
        elif (self.identity[0] if self.identity else os.getuid()) != 0:
            processes = f"RLIMIT_NPROC: this user's tasks + {limits.max_processes}"
        else:
            processes = "none (root ignores RLIMIT_NPROC, and no cgroup could be created)"
        if cgroup and cgroup.has("memory"):
            ram = f"cgroup memory limit {human_bytes(memory)} for the episode"
        elif not _has_gpu():
            ram = f"RLIMIT_AS {human_bytes(memory)} per process"
        else:
            ram = "none (a GPU is present and no cgroup could be created)"
        return {
            "isolation": self.isolation,
            "processes": processes,
            "memory": ram,
            "file_size": f"RLIMIT_FSIZE {human_bytes(limits.max_file_bytes)}",
            "open_files": f"RLIMIT_NOFILE {limits.max_open_files}",
            "disk": f"processes killed below {human_bytes(limits.min_free_disk_bytes)} free",
            "kill_all": "cgroup" if cgroup else ("PID namespace" if self.name == "bwrap" else "process group only"),
            "cpu_time": "counted by the episode's cgroup" if cgroup and cgroup.counts_cpu else "not counted",
            "identity": (f"host uid {self.identity[0]}, gid {self.identity[1]} (no account), no groups"
                         if self.identity else f"the env's own (uid {os.getuid()})"),
        }

    isolation = "none: plain subprocesses of the env"

    # ------------------------------------------------------------------------------------------ internals

    def _identity_for(self, workspace: Path) -> tuple[int, int] | None:
        return self.identity

    def _staged_binds(self, workspace: Path) -> tuple[tuple[bytes, bytes], ...]:
        """(source, mount point) pairs the child binds, as root, in a private mount namespace (see `wrap`)."""
        return ()

    def _make_tmpdir(self, workspace: Path) -> None:
        """`.tmp` (TMPDIR) in the workspace, owned by the commands' identity, made without following a link."""
        try:
            root_fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            os.mkdir(".tmp", 0o700, dir_fd=root_fd)
            fd = os.open(".tmp", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
            try:
                if self.identity is not None:
                    os.fchown(fd, *self.identity)
            finally:
                os.close(fd)
        except OSError:
            pass  # there already, or something the agent put there: TMPDIR is only its own business
        finally:
            os.close(root_fd)

    def _rlimits(self) -> list[tuple[int, int]]:
        limits = self.limits
        values = [(resource.RLIMIT_FSIZE, limits.max_file_bytes), (resource.RLIMIT_CORE, 0)]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        values.append((resource.RLIMIT_NOFILE, min(limits.max_open_files, hard)
                       if hard != resource.RLIM_INFINITY else limits.max_open_files))
        cgroup = self._cgroup
        uid = self.identity[0] if self.identity else os.getuid()
        if not (cgroup and cgroup.has("pids")) and uid != 0:
            # Per user, not per episode: allow what this user runs already plus the episode's own.
            values.append((resource.RLIMIT_NPROC, _user_tasks(uid) + limits.max_processes))
        if not (cgroup and cgroup.has("memory")) and not _has_gpu():
            values.append((resource.RLIMIT_AS, limits.memory_bytes or _default_memory_bytes()))
        return values

    def _kill_all(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self._cgroup is not None:
            self._cgroup.kill()

    def _watch(self) -> None:
        """Kill the episode's processes when the disk is about to fill up."""
        while not self._closed.wait(0.5):
            with self._lock:
                alive = [p for p in self._processes if p.poll() is None]
                workspace = self._workspace
                if not alive or workspace is None:
                    continue
                over_quota = None
                if self._quota_check is not None and time.monotonic() - self._quota_checked > 5:
                    self._quota_checked = time.monotonic()
                    try:
                        over_quota = self._quota_check()
                    except Exception:  # noqa: BLE001 - a failing check must not stop the guard
                        logger.exception("ptb-gym sandbox: the disk quota check failed")
                if over_quota:
                    self.stopped_reason = f"{over_quota}: every running process of the episode was killed"
                    logger.warning("ptb-gym sandbox: %s", self.stopped_reason)
                    self._kill_all()
                    continue
                try:
                    # The file system that holds the workspace: the host's, under a loop-mounted quota image
                    # (whose own end is ENOSPC, not a reason to kill).
                    stats = os.statvfs(workspace.parent if os.path.ismount(workspace) else workspace)
                except OSError:
                    continue
                free = stats.f_bavail * stats.f_frsize
                if free < self.limits.min_free_disk_bytes:
                    self.stopped_reason = (f"the disk is almost full ({human_bytes(free)} free, the floor is "
                                           f"{human_bytes(self.limits.min_free_disk_bytes)}): every running process "
                                           "of the episode was killed; delete files you do not need")
                    logger.warning("ptb-gym sandbox: %s", self.stopped_reason)
                    self._kill_all()


class SubprocessSandbox(Sandbox):
    """Plain subprocesses: resource limits, but no isolation at all. For trusted agents only."""

    name = "none"

    def __init__(self, extra_env: Mapping[str, str] | None = None, limits: SandboxLimits | None = None, *,
                 quiet: bool = False):
        super().__init__(extra_env, limits)
        if os.geteuid() == 0 and _reachable_by_others(Path(sys.executable)):
            self.identity = (SANDBOX_HOST_UID, SANDBOX_HOST_GID)
        if not quiet:
            warnings.warn(
                "ptb-gym runs agent commands WITHOUT a sandbox (sandbox='none'): they can read and write "
                "anything this process can, including outside the workspace and the hidden test data's "
                "generator, and reach the network. Use it only for trusted agents; install bubblewrap "
                "(apt-get install bubblewrap) for the isolated default.",
                stacklevel=3,
            )

    def _identity_for(self, workspace: Path) -> tuple[int, int] | None:
        # No mount namespace here to bind an unreachable workspace into: such a one runs as the env's uid.
        if self.identity is not None and not _reachable_by_others(workspace):
            logger.warning("ptb-gym: %s cannot be reached by uid %d (a directory above it is not searchable by "
                           "others): sandbox='none' runs this command as the env's uid", workspace, self.identity[0])
            return None
        return self.identity


class BubblewrapSandbox(Sandbox):
    """Linux namespaces through bubblewrap: nothing but the workspace writable, no network, own PIDs."""

    name = "bwrap"
    isolation = "bubblewrap: own mount, PID, network, IPC, UTS, user and cgroup namespaces"

    def __init__(self, extra_env: Mapping[str, str] | None = None, limits: SandboxLimits | None = None,
                 readonly_paths: list[Path] | None = None):
        super().__init__(extra_env, limits)
        if not bubblewrap_works():
            raise ConfigError(
                "sandbox='bwrap' was asked for but bubblewrap does not work here "
                f"({_bwrap_failure() or 'bwrap not found'}). Install it with `apt-get install bubblewrap`, "
                "or pass sandbox='none' for trusted agents."
            )
        self.identity = host_identity() if os.geteuid() == 0 and host_identity()[0] != 0 else None
        self.readonly_paths = [Path(p) for p in readonly_paths or []]
        staged = self.identity is not None
        self._mounts, self._binds = _static_mounts(staged)
        for index, path in enumerate(self.readonly_paths):
            source = _stage(path, f"ro-{index}") if staged and not _reachable_by_others(path) else path
            if source != path:
                self._binds = (*self._binds, (os.fsencode(path), os.fsencode(source)))
            self._mounts = [*self._mounts, "--ro-bind", str(source), str(path)]

    def environment(self, workspace: Path) -> dict[str, str]:
        env = super().environment(workspace)
        # The env's PATH names directories the sandbox does not have (pyenv shims, ~/.local/bin).
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
        return env

    def wrap(self, argv: list[str], workspace: Path) -> list[str]:
        source = _stage(workspace, "workspace") if self.identity is not None else workspace
        args = ["bwrap", "--die-with-parent", "--unshare-all", "--unshare-user", *_bwrap_userns_flags(),
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
                "--new-session", "--cap-drop", "ALL", *self._mounts,
                "--bind", str(source), str(workspace), "--remount-ro", "/", "--chdir", str(workspace)]
        return [*args, "--", *argv]

    def _staged_binds(self, workspace: Path) -> tuple[tuple[bytes, bytes], ...]:
        # bubblewrap, unprivileged, resolves every source as the sandbox's identity: what that identity cannot
        # reach is bound onto a mount point it can, by the child while still root (`_enter_child`).
        if self.identity is None:
            return ()
        return (*self._binds, (os.fsencode(workspace), os.fsencode(_stage(workspace, "workspace"))))


def make_sandbox(kind: str, extra_env: Mapping[str, str] | None = None, limits: SandboxLimits | None = None, *,
                 readonly_paths: list[Path] | None = None) -> Sandbox:
    """The sandbox for an env's `sandbox` option: `auto` is bubblewrap when it works, else plain subprocesses.
    `readonly_paths` are shown read-only at their own paths in bubblewrap (plain subprocesses see everything)."""
    if kind == "bwrap" or (kind == "auto" and bubblewrap_works()):
        return BubblewrapSandbox(extra_env, limits, readonly_paths)
    if kind in ("none", "auto"):
        return SubprocessSandbox(extra_env, limits)
    raise ConfigError(f"Unknown sandbox {kind!r}: use one of {list(SANDBOX_KINDS)}.")


def counts_cpu() -> bool:
    """Whether an episode's cgroup can count its CPU time here (what the `cpu` budget needs)."""
    cgroup = _Cgroup.probe()
    return cgroup is not None and cgroup.counts_cpu


@functools.cache
def bubblewrap_works() -> bool:
    return _bwrap_failure() == "" or (os.geteuid() == 0 and _bwrap_failure(as_root=True) == "")


@functools.cache
def host_identity() -> tuple[int, int]:
    """The host uid and gid that agent commands run as, and that own the workspace: `SANDBOX_HOST_UID`/`GID`
    when the env runs as root, the env's own otherwise. Root only where bubblewrap works here as root but not
    unprivileged (no unprivileged user namespaces): then it warns, since the sandbox's files are root's."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    if _bwrap_failure() != "" and _bwrap_failure(as_root=True) == "":
        warnings.warn(f"bubblewrap works here only as root ({_bwrap_failure()}): files the sandbox writes belong "
                      "to root on the host. Allow unprivileged user namespaces to run agents as an unprivileged "
                      "identity.", stacklevel=2)
        return 0, 0
    try:
        import pwd

        account = pwd.getpwuid(SANDBOX_HOST_UID).pw_name
        logger.warning("ptb-gym: the sandbox's host uid %d is the account %r here: agent files belong to it",
                       SANDBOX_HOST_UID, account)
    except KeyError:
        pass
    return SANDBOX_HOST_UID, SANDBOX_HOST_GID


@functools.cache
def _bwrap_failure(*, as_root: bool = False) -> str | None:
    """'' when bubblewrap can start a namespaced process here, as the identity agent commands run as (or as root),
    else why not (None: not installed)."""
    if shutil.which("bwrap") is None:
        return None
    identity = None if as_root or os.geteuid() != 0 else (SANDBOX_HOST_UID, SANDBOX_HOST_GID)
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--unshare-user", *_bwrap_userns_flags(), "--uid", str(SANDBOX_UID),
         "--die-with-parent", "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
         "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--chdir", "/", "true"],
        capture_output=True, text=True, timeout=30, cwd="/",
        preexec_fn=functools.partial(_enter_child, [], (), identity, (), b""),
    )
    return "" if probe.returncode == 0 else probe.stderr.strip() or f"exit code {probe.returncode}"


@functools.cache
def _bwrap_userns_flags() -> tuple[str, ...]:
    """`--disable-userns` (bubblewrap 0.8+) where it works: no nested user namespaces, which would hand the
    agent capabilities over its own namespaces and a larger kernel attack surface."""
    if shutil.which("bwrap") is None:
        return ()
    identity = (SANDBOX_HOST_UID, SANDBOX_HOST_GID) if os.geteuid() == 0 else None
    probe = subprocess.run(["bwrap", "--unshare-user", "--disable-userns", "--ro-bind", "/usr", "/usr", "--symlink",
                            "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                            "--chdir", "/", "true"], capture_output=True, timeout=30, cwd="/",
                           preexec_fn=functools.partial(_enter_child, [], (), identity, (), b""))
    if probe.returncode != 0 and identity is not None:  # bubblewrap runs as root here (see host_identity)
        probe = subprocess.run(["bwrap", "--unshare-user", "--disable-userns", "--ro-bind", "/", "/", "true"],
                               capture_output=True, timeout=30)
    return ("--disable-userns",) if probe.returncode == 0 else ()


# ---------------------------------------------------------------------------------------- the file system

@functools.cache
def _static_mounts(staged: bool) -> tuple[list[str], tuple[tuple[bytes, bytes], ...]]:
    """bubblewrap arguments for everything but the workspace, the same for every command of this process, and
    (`staged`: bubblewrap runs as an identity other than ours) the binds the child makes first so that this
    identity can reach the sources (see `_stage`)."""
    binds: list[tuple[bytes, bytes]] = []

    def source(path: Path, name: str) -> str:
        if staged and not _reachable_by_others(path):
            mount_point = _stage(path, name)
            binds.append((os.fsencode(path), os.fsencode(mount_point)))
            return str(mount_point)
        return str(path)

    # The private /proc, /dev and /tmp come first: binds below may lie under /tmp (a checkout or a virtual
    # environment there) and must land on top of the empty /tmp, not under it.
    args: list[str] = ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in _ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    etc = _sandbox_dir()
    args += ["--ro-bind", str(etc / "passwd"), "/etc/passwd", "--ro-bind", str(etc / "group"), "/etc/group"]
    prefixes = _python_prefixes()
    for index, prefix in enumerate(prefixes):
        args += ["--ro-bind", source(prefix, f"python-{index}"), str(prefix)]
    # ptb_gym itself: an empty directory with only the modules training needs. In a wheel install this hides
    # site-packages/ptb_gym/{envs,tools,baselines} and the scoring code; in an editable install it binds
    # single files of the source tree and nothing around them.
    core_dir, modules = _core_modules()
    args += ["--tmpfs", str(core_dir)]
    for module in modules:
        args += ["--ro-bind", source(module, f"module-{module.name}"), str(module)]
    args += ["--remount-ro", str(core_dir)]
    for hidden in _hidden_dirs(core_dir):
        if any(_is_under(hidden, prefix) for prefix in prefixes) and not _is_under(hidden, core_dir):
            args += ["--tmpfs", str(hidden), "--remount-ro", str(hidden)]
    gpus = sorted(glob.glob("/dev/nvidia*"))
    for device in gpus:
        args += ["--dev-bind", device, device]
    if gpus:
        args += ["--ro-bind", "/sys", "/sys"]  # the CUDA driver and NVML read device facts from /sys
    return args, tuple(binds)


def _python_prefixes() -> list[Path]:
    """The Python installation(s) in use: interpreter, standard library and site-packages, outermost only."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix),
             Path(sys.executable).resolve().parent.parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(Path(sysconfig.get_paths()[key]))
    paths = {path.resolve() for path in paths if path.exists()}
    # /usr is bound already; a prefix under another is covered by it.
    return sorted(p for p in paths if not _is_under(p, Path("/usr"))
                  and not any(q != p and _is_under(p, q) for q in paths))


def _core_modules() -> tuple[Path, list[Path]]:
    """ptb_gym's directory and the module files the sandbox shows: the entry modules and, transitively,
    the ptb_gym modules they import (at any depth of the code, since imports inside functions count)."""
    import ptb_gym

    core = Path(ptb_gym.__file__).resolve().parent
    needed: set[str] = set()
    queue = list(_SANDBOX_ENTRY_MODULES)
    while queue:
        name = queue.pop()
        path = core / f"{name}.py"
        if name in needed or name in _HIDDEN_SUBPACKAGES or not path.is_file():
            continue
        needed.add(name)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 or node.module == "ptb_gym":
                    queue += [alias.name for alias in node.names]
                    queue += [node.module.split(".")[0]] if node.level == 1 and node.module else []
                elif node.module and node.module.startswith("ptb_gym."):
                    queue.append(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                queue += [a.name.split(".")[1] for a in node.names if a.name.startswith("ptb_gym.")]
    files = [core / f"{name}.py" for name in sorted(needed)]
    if (core / "py.typed").exists():
        files.append(core / "py.typed")
    return core, files


def _hidden_dirs(core: Path) -> list[Path]:
    """Where the hidden subpackages live (next to the core in a wheel, elsewhere in an editable install)."""
    dirs = [core / name for name in _HIDDEN_SUBPACKAGES]
    for name in _HIDDEN_SUBPACKAGES:
        module = sys.modules.get(f"ptb_gym.{name}")
        for location in getattr(module, "__path__", []):
            dirs.append(Path(location).resolve())
    return dirs


@functools.cache
def _sandbox_dir() -> Path:
    """This process's directory for the sandbox: a passwd and group naming the sandbox's user (so that `whoami`,
    `pwd.getpwuid` and friends work), and `view/`, the mount points of `_stage`. Searchable by everyone (it
    holds nothing secret); those of env processes that died are removed."""
    from ptb_gym.disk import process_start_time

    prefix = f"ptb-gym-sandbox-{os.getpid()}-{process_start_time(os.getpid())}-"
    for stale in Path(tempfile.gettempdir()).glob("ptb-gym-sandbox-*-*-*"):
        pid, start = stale.name.split("-")[3:5]
        if pid.isdigit() and process_start_time(int(pid)) != start and stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    (directory / "view").mkdir(mode=0o755)
    (directory / "passwd").write_text(f"root:x:0:0::/root:/bin/bash\n{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}::"
                                      "/tmp:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
    (directory / "group").write_text(f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
    for name in ("passwd", "group"):
        (directory / name).chmod(0o644)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _stage(path: Path, name: str) -> Path:
    """The mount point in `_sandbox_dir()/view` onto which the child binds `path` for bubblewrap (an empty
    directory or file, like `path`). Binds happen in the child's own mount namespace: nothing appears on the
    host, and one mount point serves every command at once."""
    mount_point = _sandbox_dir() / "view" / name
    if not os.path.lexists(mount_point):
        if path.is_dir():
            mount_point.mkdir(mode=0o755, exist_ok=True)
        else:
            mount_point.touch(mode=0o644)
    return mount_point


def _reachable_by_others(path: Path) -> bool:
    """Whether a user who owns nothing above `path` can look it up: every directory above it is searchable by
    others. (What `path` itself allows is its own business.)"""
    try:
        return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in Path(os.path.abspath(path)).parents)
    except OSError:
        return False


def _is_under(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


# ------------------------------------------------------------------------------------------------ limits

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_CLONE_NEWNS, _MS_BIND, _MS_REC, _MS_SLAVE, _MNT_DETACH, _PR_SET_NO_NEW_PRIVS = 0x20000, 4096, 16384, 1 << 19, 2, 38


def _enter_child(rlimits: list[tuple[int, int]], procs_files: tuple[str, ...], identity: tuple[int, int] | None,
                 binds: tuple[tuple[bytes, bytes], ...], workspace: bytes) -> None:
    """Runs in the child between fork and exec, as the env's uid: join the episode's cgroup (root may, the
    sandbox's identity may not), set the rlimits, make the `binds` in a private mount namespace, drop every
    group and switch to `identity`, and forbid gaining privileges through exec. Python's own `user=`/`group=`
    switch happens before `preexec_fn`, too early for the cgroup, hence done here. Only system calls (no
    imports, no locks): the parent has threads."""
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"0")  # "0" is the writing process itself
        finally:
            os.close(fd)
    for which, value in rlimits:
        resource.setrlimit(which, (value, value))
    if binds:
        _check(_libc.unshare(_CLONE_NEWNS))
        _check(_libc.mount(None, b"/", None, _MS_REC | _MS_SLAVE, None))  # nothing propagates to the host
        _detach_other_workspaces(workspace)
        for source, target in binds:
            _check(_libc.mount(source, target, None, _MS_BIND | _MS_REC, None))
    if identity is not None:
        os.setgroups([])
        os.setgid(identity[1])
        os.setuid(identity[0])
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))


def _detach_other_workspaces(own: bytes) -> None:
    """Detach, in the child's mount namespace, the other episodes' workspace mounts: held there, their loop
    devices would outlive their episodes for as long as this command runs."""
    fd = os.open("/proc/self/mountinfo", os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    own_escaped = own.replace(b"\\", b"\\134").replace(b" ", b"\\040").replace(b"\t", b"\\011")
    for line in b"".join(chunks).splitlines():
        fields = line.split(b" ")
        if len(fields) > 4 and b"/ptb-episode-" in fields[4] and fields[4] != own_escaped:
            point = fields[4].replace(b"\\040", b" ").replace(b"\\011", b"\t").replace(b"\\134", b"\\")
            _libc.umount2(point, _MNT_DETACH)  # may be gone already, or beneath one detached before


def _check(result: int) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


class _Cgroup:
    """A cgroup for one episode's processes, created under this process's own: v2, or v1 `pids` + `memory` +
    `cpuacct`."""

    _counter = itertools.count()
    _live: weakref.WeakSet[_Cgroup] = weakref.WeakSet()

    def __init__(self, dirs: dict[str, Path], version: int):
        self.dirs = dirs  # controller (or "unified") -> directory
        self.version = version
        self.procs_files = tuple(str(d / "cgroup.procs") for d in dict.fromkeys(dirs.values()))
        self.controllers = set(dirs) if version == 1 else set(_read(dirs["unified"] / "cgroup.controllers").split())
        self._applied: SandboxLimits | None = None
        _Cgroup._live.add(self)
        _reaper_send("add", self.dirs.values())

    def has(self, controller: str) -> bool:
        return controller in self.controllers

    @classmethod
    @functools.cache
    def probe(cls) -> _Cgroup | None:
        """A throw-away cgroup showing what this machine allows (None: no cgroup can be created)."""
        cgroup = cls.create()
        if cgroup is not None:
            cgroup.remove()
        return cgroup

    @classmethod
    def create(cls) -> _Cgroup | None:
        name = f"ptb-gym-{os.getpid()}-{next(cls._counter)}"
        try:
            own = _own_cgroups()
        except OSError:
            return None
        if "" in own and Path("/sys/fs/cgroup/cgroup.controllers").exists():  # v2, unified hierarchy
            parent = Path("/sys/fs/cgroup") / own[""].lstrip("/")
            try:
                # Delegate the controllers to children where the parent allows it (no-op if already there).
                available = (parent / "cgroup.controllers").read_text().split()
                wanted = " ".join(f"+{c}" for c in ("pids", "memory") if c in available)
                if wanted:
                    try:
                        (parent / "cgroup.subtree_control").write_text(wanted)
                    except OSError:
                        pass
                cls._sweep(parent)
                (parent / name).mkdir()
            except OSError:
                return None
            return cls({"unified": parent / name}, 2)
        dirs = {}
        for controller in ("pids", "memory", "cpuacct"):
            mount = Path("/sys/fs/cgroup") / controller
            if controller in own and (mount / "cgroup.procs").exists():
                directory = mount / own[controller].lstrip("/") / name
                try:
                    cls._sweep(directory.parent)
                    directory.mkdir()
                    dirs[controller] = directory
                except OSError:
                    continue
        return cls(dirs, 1) if dirs else None

    @staticmethod
    def _sweep(parent: Path) -> None:
        """Empty and remove the cgroups of env processes that died without cleaning up (SIGKILL, OOM) and whose
        reaper could not do it (killed as well)."""
        for stale in parent.glob("ptb-gym-*-*"):
            pid = stale.name.split("-")[2]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                _Cgroup({"unified" if (stale / "cgroup.kill").exists() else "stale": stale},
                        2 if (stale / "cgroup.kill").exists() else 1).remove()

    @property
    def counts_cpu(self) -> bool:
        return self.version == 2 or "cpuacct" in self.dirs

    def cpu_seconds(self) -> float | None:
        """CPU time its processes have used, ended ones included (v2 `cpu.stat`, v1 `cpuacct.usage`); None where
        it is not counted or the cgroup is gone."""
        try:
            if self.version == 2:
                stat = dict(line.split(" ", 1) for line in _read(self.dirs["unified"] / "cpu.stat").splitlines())
                return int(stat["usage_usec"]) / 1e6
            if "cpuacct" in self.dirs:
                return int(_read(self.dirs["cpuacct"] / "cpuacct.usage")) / 1e9
        except (OSError, ValueError, KeyError):
            pass
        return None

    def apply(self, limits: SandboxLimits) -> None:
        if limits == self._applied:
            return
        memory = limits.memory_bytes or _default_memory_bytes()
        if self.version == 2:
            base = self.dirs["unified"]
            writes = [(base / "pids.max", limits.max_processes), (base / "memory.max", memory),
                      (base / "memory.swap.max", 0)]
        else:
            writes = []
            if "pids" in self.dirs:
                writes.append((self.dirs["pids"] / "pids.max", limits.max_processes))
            if "memory" in self.dirs:
                writes.append((self.dirs["memory"] / "memory.limit_in_bytes", memory))
                writes.append((self.dirs["memory"] / "memory.memsw.limit_in_bytes", memory))
        for path, value in writes:
            try:
                path.write_text(str(value))
            except OSError:
                pass  # a controller this machine does not offer (swap accounting off, ...)
        self._applied = limits

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            try:
                found.update(int(line) for line in Path(procs).read_text().split())
            except (OSError, ValueError):
                pass
        return found

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, until none is left (or 5 s pass)."""
        if self.version == 2:
            try:
                (self.dirs["unified"] / "cgroup.kill").write_text("1")
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while (pids := self.pids() - {os.getpid()}) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill()
        for directory in dict.fromkeys(self.dirs.values()):
            for _ in range(100):  # killed processes leave the cgroup when their parents have reaped them
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        _Cgroup._live.discard(self)
        _reaper_send("remove", self.dirs.values())


# The reaper: a small process of its own (own session, so that a kill of the env's process group spares it)
# that learns the episode cgroups as they are made and, when the env process dies however it dies (its pipe
# reaches end of file), kills every process left in them and removes them. bubblewrap's --die-with-parent
# alone leaves a sandbox running when the env dies while bubblewrap is still setting it up.
_REAPER_CODE = r"""
import os, signal, sys, time
cgroups = set()
for line in sys.stdin:
    verb, _, path = line.rstrip("\n").partition(" ")
    (cgroups.add if verb == "add" else cgroups.discard)(path)
deadline = time.monotonic() + 10
while cgroups and time.monotonic() < deadline:
    for path in list(cgroups):
        try:
            with open(os.path.join(path, "cgroup.kill"), "w") as kill:
                kill.write("1")
        except OSError:
            pass
        try:
            with open(os.path.join(path, "cgroup.procs")) as procs:
                pids = [int(pid) for pid in procs.read().split()]
        except (OSError, ValueError):
            cgroups.discard(path)
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not pids:
            try:
                os.rmdir(path)
            except OSError:
                continue
            cgroups.discard(path)
    time.sleep(0.02)
"""
_reaper: list[Any] = []
_reaper_lock = threading.Lock()


def _reaper_send(verb: str, directories: Any) -> None:
    with _reaper_lock:
        if not _reaper or _reaper[0].poll() is not None:
            try:
                _reaper[:] = [subprocess.Popen([sys.executable, "-S", "-c", _REAPER_CODE], stdin=subprocess.PIPE,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                                               start_new_session=True, text=True)]
            except OSError as error:
                logger.warning("ptb-gym: no reaper for the episodes' cgroups (%s)", error)
                return
        try:
            _reaper[0].stdin.write("".join(f"{verb} {d}\n" for d in dict.fromkeys(map(str, directories))))
            _reaper[0].stdin.flush()
        except (OSError, ValueError):
            pass


@atexit.register
def _remove_leftover_cgroups() -> None:
    for cgroup in list(_Cgroup._live):
        cgroup.remove()


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup per v1 controller, and under '' its v2 cgroup."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


@functools.cache
def _default_memory_bytes() -> int:
    """Three quarters of this machine's memory, or of this process's cgroup limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        own = _own_cgroups()
        for path in (Path("/sys/fs/cgroup/memory") / own.get("memory", "/").lstrip("/") / "memory.limit_in_bytes",
                     Path("/sys/fs/cgroup") / own.get("", "/").lstrip("/") / "memory.max"):
            if path.exists():
                text = path.read_text().strip()
                if text.isdigit():
                    total = min(total, int(text))
    except OSError:
        pass
    return total * 3 // 4


@functools.cache
def _has_gpu() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def _user_tasks(uid: int) -> int:
    """Tasks (threads) this user runs now: RLIMIT_NPROC counts them all, not only the episode's."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                pass
    return count


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
