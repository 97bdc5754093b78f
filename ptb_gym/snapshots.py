"""Snapshots of an episode between two steps, and the forks that continue from them.

A snapshot holds what a new episode needs to go on from where another stood after one of its steps: the
workspace (every file, directory and link, with its mode: data, scripts, logs, checkpoints), the files the train
tool copied out for its jobs (the final contamination scan reads them), the budget used, the steps taken, the
jobs launched, and the seeds, the hidden test split's included, so that branches are scored on the same test
split and compare with each other and with their parent.

A `SnapshotStore` is a directory (`<record_dir>/snapshots/` when the episode is recorded):

    objects/ab/<sha256>                 file contents, read-only, each stored once
    states/<recording>/<step>.json      the episode after that step (mode 0600: it holds the test split's seed)

Content addressing makes snapshots cheap: a step that changes nothing adds nothing but its state file, a
checkpoint left unchanged is hashed once (a file is hashed again only when its inode, size, mtime or ctime
changed, and ctime cannot be set by the agent) and stored once, and the branches of an episode share their
parent's objects. The workspace's hash is the sha256 of its manifest (path, kind, mode, and content digest or
link target of each entry, in walk order): two workspaces with the same hash hold the same files.

Restoring copies the objects into the new episode's workspace, never hard-links them: the agent's code owns
its workspace, and a link would let it rewrite the store through its own file. A snapshot is read through the
workspace's gate (`Workspace.contents`): never a link followed, never a FIFO opened, each file hashed from the
very descriptor it is stored from. FIFOs are made again (empty); sockets and device nodes are left out (nothing can make them mean what they
meant). Processes are not snapshotted: a job still running at the step is lost in
the fork (its outputs so far are in the workspace; the fork's briefing names it), and the fork's jobs are
numbered on from the parent's, so no log of the parent's is overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptb_gym.errors import PTBError, ToolError
from ptb_gym.text import human_bytes

if TYPE_CHECKING:
    from ptb_gym.episode import Episode, Step

FORMAT = "ptb-gym-snapshot"
FORMAT_VERSION = 1
STORE_DIR = "snapshots"
"""The store's directory under a recording directory."""
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Snapshot:
    """An episode as it stood after one step: a state (JSON) whose files lie in `store`."""

    store: Path
    state: dict[str, Any] = field(repr=False)

    @property
    def step(self) -> int:
        """The step after which it was taken (the recording's step index; -1: at reset)."""
        return self.state["step"]

    @property
    def workspace_hash(self) -> str:
        return self.state["workspace_hash"]

    def describe(self) -> dict[str, Any]:
        """What a fork's recording says of its parent (no secret in it)."""
        return {"recording": self.state.get("recording"), "step": self.step, "workspace_hash": self.workspace_hash,
                "state": self.state.get("state_file"), "parent": self.state.get("parent")}


class SnapshotStore:
    """A directory of content-addressed objects and episode states; see the module's docstring."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        for sub in ("objects", "states", "tmp"):
            (self.root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    @classmethod
    def temporary(cls, parent: str | None) -> SnapshotStore:
        """A store of its own in `parent` (None: the system's temporary directory); `remove` deletes it."""
        return cls(tempfile.mkdtemp(prefix="ptb-snapshots-", dir=parent))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def object_path(self, digest: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise PTBError(f"{digest!r} is not an object of a snapshot store (a sha256 in hex).")
        return self.root / "objects" / digest[:2] / digest

    def put(self, source: int, max_bytes: int) -> tuple[str, int]:
        """Store what the descriptor `source` reads (at most `max_bytes`: past it a ToolError), hashing the very
        bytes stored. Returns the digest and the bytes newly added (0 when the store had them)."""
        digest, size = hashlib.sha256(), 0
        fd, temporary = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := os.read(source, _CHUNK):
                    size += len(chunk)
                    if size > max_bytes:  # it grew while read
                        raise ToolError(f"the snapshots of this episode reached their cap ({human_bytes(max_bytes)} "
                                        "left); raise snapshot_max_bytes to snapshot larger workspaces.")
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest(), self._install(temporary, digest.hexdigest(), size)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def put_bytes(self, data: bytes) -> str:
        """Store a document of the env's own (a manifest); returns its digest."""
        name = hashlib.sha256(data).hexdigest()
        fd, temporary = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            self._install(temporary, name, len(data))
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return name

    def _install(self, temporary: str, digest: str, size: int) -> int:
        """Move a written object into place unless the store has it; the bytes added."""
        target = self.object_path(digest)
        if target.exists():
            return 0
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(temporary, 0o444)
        os.replace(temporary, target)
        return size

    def read_object(self, digest: str) -> bytes:
        return self.object_path(digest).read_bytes()

    # ------------------------------------------------------------------------------------------ states

    def save(self, snapshot: Snapshot, recording: str, step: int) -> Snapshot:
        """Write the state under `states/<recording>/<step>.json` (0600), so `load` finds it again; the snapshot
        as saved (its state names its file)."""
        directory = self.root / "states" / _safe_name(recording)
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{step}.json"
        state = {**snapshot.state, "state_file": str(path)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out)
        return Snapshot(snapshot.store, state)

    def load(self, recording: str, step: int) -> Snapshot:
        path = self.root / "states" / _safe_name(recording) / f"{step}.json"
        if not path.is_file():
            taken = sorted(int(p.stem) for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
            which = (f"; there are snapshots after steps {_ranges(taken)}." if taken else
                     ": the episode was not recorded with snapshots (record_dir, snapshot_max_bytes > 0).")
            raise PTBError(f"No snapshot of {recording} after step {step} in {self.root}{which}")
        state = json.loads(path.read_text())
        if state.get("format") != FORMAT or not isinstance(state.get("version"), int) or state["version"] > FORMAT_VERSION:
            raise PTBError(f"{path} is not a snapshot this ptb-gym reads (format {state.get('format')!r}, "
                           f"version {state.get('version')!r}).")
        return Snapshot(self.root, state)


@dataclass
class Snapshotter:
    """Takes an episode's snapshots into a store, remembering the digests of files that did not change.

    As an observer of an `Episode` (with `recording` set) it snapshots after every step that leaves the episode
    running, saves the state, and says so in the step's `info["snapshot"]`, until `max_bytes` of new objects is
    reached; past the cap steps are recorded without a snapshot and their info says why."""

    store: SnapshotStore
    max_bytes: int
    recording: str | None = None
    """The recording's file (its name keys the states); None: snapshots only on demand (`capture`)."""
    parent: dict[str, Any] | None = None
    """What the episode was forked from (`Snapshot.describe()`), carried into its own snapshots."""
    added_bytes: int = 0
    _digests: dict[tuple[int, ...], str] = field(default_factory=dict, repr=False)

    def capture(self, episode: Episode, step: int) -> Snapshot:
        """The episode as it stands now, after the recording's step `step`."""
        manifest, inputs = self._workspace(episode), self._inputs(episode)
        text = json.dumps(manifest, separators=(",", ":")).encode()
        workspace_hash = self.store.put_bytes(text)
        lost = [job.summary() for job in episode.jobs.running]
        state = {
            "format": FORMAT, "version": FORMAT_VERSION, "created_at": time.time(), "step": step,
            "recording": self.recording, "parent": self.parent, "task": episode.task.name, "seed": episode.seed,
            "test_seed": episode.test_seed, "steps": episode.steps, "budget_used_s": episode.budget.used_s,
            "workspace_hash": workspace_hash, "workspace_files": sum(1 for e in manifest if e[1] == "file"),
            "inputs": inputs, "train_inputs": [str(p.relative_to(episode.disk.root / "inputs")) for p in episode.train_inputs],
            "train_runs": episode.train_runs, "jobs_launched": episode.jobs.launched, "lost_jobs": lost}
        return Snapshot(self.store.root, state)

    # As an observer: a snapshot after every step that leaves the episode running.
    def on_step(self, episode: Episode, step: Step) -> None:
        if episode.outcome is not None or self.recording is None:
            return
        started, before = time.monotonic(), self.added_bytes
        index = step.index - 1  # the recording's index (a fork's steps count on from its parent's)
        try:
            snapshot = self.store.save(self.capture(episode, index), Path(self.recording).name, index)
        except (ToolError, OSError) as error:  # a workspace it cannot read whole: no fork from this step
            step.info["snapshot"] = {"skipped": str(error)}
            return
        step.info["snapshot"] = {"workspace_hash": snapshot.workspace_hash, "added_bytes": self.added_bytes - before,
                                 "seconds": round(time.monotonic() - started, 4)}

    def on_finish(self, episode: Episode, outcome: Any) -> None:
        pass

    def _workspace(self, episode: Episode) -> list[list[Any]]:
        """[path, kind, mode, digest | link target | None] of everything in the workspace, in walk order."""
        manifest = []
        for entry, fd, detail in episode.workspace.contents():
            mode = detail.st_mode & 0o777 if isinstance(detail, os.stat_result) else None
            if fd >= 0:
                try:
                    detail = self._digest(fd, detail)
                finally:
                    os.close(fd)
            if entry.kind in ("file", "dir", "link", "fifo"):  # a socket or a device node cannot be made again
                manifest.append([entry.relative, entry.kind, mode, detail if entry.kind in ("file", "link") else None])
        return manifest

    def _inputs(self, episode: Episode) -> list[list[str]]:
        """[path, digest] of the train tool's copies of the agent's data and configs (the env's own files)."""
        inputs, found = episode.disk.root / "inputs", []
        for directory, _, files in sorted(os.walk(inputs)):
            for name in sorted(files):
                fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    found.append([os.path.relpath(os.path.join(directory, name), inputs), self._digest(fd, os.fstat(fd))])
                finally:
                    os.close(fd)
        return found

    def _digest(self, fd: int, info: os.stat_result) -> str:
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if key not in self._digests:
            left = self.max_bytes - self.added_bytes
            if info.st_size > left:  # before reading: a sparse terabyte must not be read to find it out
                raise ToolError(f"the snapshots of this episode reached their cap ({human_bytes(left)} left); raise "
                                "snapshot_max_bytes to snapshot larger workspaces.")
            digest, added = self.store.put(fd, left)
            self.added_bytes += added
            self._digests[key] = digest
        return self._digests[key]


def restore(snapshot: Snapshot, episode: Episode) -> None:
    """Make a freshly started episode (no step taken yet) the snapshot's: its workspace, the train tool's inputs,
    budget used, steps, jobs' numbering and test split. The workspace then hashes as the snapshot's did."""
    state, store = snapshot.state, SnapshotStore(snapshot.store)
    if episode.steps:
        raise PTBError("A snapshot is restored into a new episode, before its first step.")
    if state["task"] != episode.task.name:
        raise PTBError(f"The snapshot is of task {state['task']!r}, not {episode.task.name!r}: fork it with its own env.")
    workspace = episode.workspace
    workspace.clear()
    manifest = json.loads(store.read_object(state["workspace_hash"]))
    for path, kind, mode, detail in manifest:
        if kind == "dir":
            workspace.make_dir(path, 0o700)
        elif kind == "file":
            directory, name = posixpath.split(path)
            out = workspace.create_file(directory or ".", name)
            try:
                _copy_object(store, detail, out)
                os.fchmod(out, mode)
            finally:
                os.close(out)
        elif kind == "link":
            workspace.make_link(path, detail)
        elif kind == "fifo":
            workspace.make_fifo(path)
    for path, kind, mode, _ in reversed(manifest):  # directory modes last: a read-only one was filled first
        if kind == "dir":
            workspace.make_dir(path, mode)
    inputs = episode.disk.root / "inputs"
    for path, digest in state["inputs"]:
        target = inputs / path
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            _copy_object(store, digest, out)
        finally:
            os.close(out)
    episode.train_inputs = [inputs / path for path in state["train_inputs"]]
    episode.train_runs, episode.steps, episode.jobs.launched = state["train_runs"], state["steps"], state["jobs_launched"]
    episode.budget.carried_s = state["budget_used_s"]
    episode.test_seed = state["test_seed"]


def fork_notice(snapshot: Snapshot, episode: Episode) -> str:
    """What the agent of a fork is told after the task's briefing."""
    state = snapshot.state
    lines = [(f"\n\n---\nThis episode continues another one from after its step {state['step']}: the workspace, "
              f"the budget ({episode.budget.used_s:.0f} s of {episode.budget.limit_s:.0f} s used) and the steps "
              f"({episode.steps} of {episode.config.max_steps} taken) are as they were then.")]
    for job in state["lost_jobs"]:
        lines.append(f"Job {job['id']} ({job['kind']}) was still running then and did not carry over: its outputs "
                     f"so far are in the workspace ({job['log']}); launch it again if you need it.")
    return "\n".join(lines) + "\n"


def find_snapshot(recording: str | os.PathLike[str], step: int) -> Snapshot:
    """The snapshot taken after step `step` of a recorded episode (in the store next to its recording)."""
    path = Path(recording)
    return SnapshotStore(path.parent / STORE_DIR).load(path.name, step)


def _copy_object(store: SnapshotStore, digest: str, out: int) -> None:
    with open(store.object_path(digest), "rb") as source:
        while chunk := source.read(_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]


def _safe_name(recording: str) -> str:
    name = Path(recording).name
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        raise PTBError(f"{recording!r} is not a recording's file name.")
    return name


def _ranges(numbers: list[int]) -> str:
    return f"{numbers[0]} to {numbers[-1]}" if len(numbers) > 2 else ", ".join(map(str, numbers))
