"""Background jobs: long commands (training above all) that run while the agent keeps acting.

Each job runs in the episode's sandbox in its own process group, writes its output to a log file in the
workspace (`logs/<job id>.log`), and is metered by the budget while it runs. A watchdog thread kills the
running jobs once the budget is used up, so nothing runs past the budget even when the agent does not call
`step`. `close()` kills every job and waits for it, so no process outlives the episode.

The env process writes and reads the logs, and the agent can plant links in the workspace and write gigabytes
to a log: a log is created without following links (`Workspace.create_file`), and the env reads it back only
through the descriptor it opened (`JobLog`), in bounded pieces: the tail by seeking, the metrics incrementally
from where it stopped, keeping at most MAX_METRIC_RECORDS. Replacing `logs/job-1.log` by a link to a file outside
the workspace makes the env neither write nor show that file; a 4 GB log costs the env no memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ptb_gym.budget import Budget
from ptb_gym.errors import ToolError, did_you_mean
from ptb_gym.sandbox import Sandbox
from ptb_gym.workspace import Workspace

# Lines a job prints as `PTB_METRICS {"step": 10, "loss": 1.2, ...}` are parsed into its metrics.
METRICS_PREFIX = "PTB_METRICS "
MAX_METRIC_RECORDS = 10_000
"""Metric records kept per job (the latest ones)."""
MAX_METRIC_LINE = 4096
"""Longer metric lines are skipped (a real one is a few hundred bytes)."""
MAX_LINE_CARRY = 64 * 1024
"""A line still unfinished past this many bytes cannot be a metric line: the reader skips to its end."""
MAX_METRIC_KEYS = 32
METRICS_READ_PER_CALL = 1024**3
"""`JobLog.metrics` reads at most this much new log per call (it catches up over later calls)."""
TAIL_BYTES = 256 * 1024
_PREFIX = METRICS_PREFIX.encode()


class JobLog:
    """A job's log as the env reads it: through the descriptor the env created it with, never by name, and in
    bounded pieces. Not thread-safe: the env's tools read it from one thread."""

    def __init__(self, fd: int):
        self.fd = fd
        """A read-only descriptor of the log (the same file the job writes, whatever its name now points to)."""
        self._offset = 0
        self._carry = b""
        self._skipping = False  # inside an overlong line: drop bytes up to its end
        self._records: deque[dict[str, Any]] = deque(maxlen=MAX_METRIC_RECORDS)
        self._finalizer = weakref.finalize(self, _close_quietly, fd)  # closes it once, here or in close()

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        """Close the descriptor (the episode's disk can then be unmounted). Idempotent."""
        self.fd = -1
        self._finalizer()

    def size(self) -> int:
        return os.fstat(self.fd).st_size if not self.closed else 0

    def tail(self, max_bytes: int = TAIL_BYTES) -> tuple[bytes, int]:
        """The last `max_bytes` bytes of the log, and the offset they start at."""
        if self.closed:
            return b"", 0
        end = self.size()
        start = max(0, end - max_bytes)
        return os.pread(self.fd, end - start, start), start

    def metrics(self) -> list[dict[str, Any]]:
        """The metric records (`PTB_METRICS {json}` lines) the job printed so far, the latest
        MAX_METRIC_RECORDS of them; each call reads only what was appended since the last one."""
        if self.closed:
            return list(self._records)
        end = self.size()
        if end < self._offset:  # truncated by the agent: start over
            self._offset, self._carry, self._skipping = 0, b"", False
        stop = min(end, self._offset + METRICS_READ_PER_CALL)
        while self._offset < stop:
            chunk = os.pread(self.fd, min(1024**2, stop - self._offset), self._offset)
            if not chunk:
                break
            self._offset += len(chunk)
            self._take(chunk)
        return list(self._records)

    def _take(self, chunk: bytes) -> None:
        """Parse the complete lines of `chunk` (with what was left of the previous one); bytes.find keeps it at
        memory speed, whatever the chunk holds."""
        first = chunk.find(b"\n")
        if first < 0:  # no line ends here: all of it belongs to the unfinished line
            if not self._skipping:
                self._carry += chunk
                if len(self._carry) > MAX_LINE_CARRY:
                    self._carry, self._skipping = b"", True
            return
        if not self._skipping:
            self._line(self._carry + chunk[:first])
        self._carry, self._skipping = b"", False
        last = chunk.rfind(b"\n")
        position = first + 1
        while True:
            found = chunk.find(_PREFIX, position, last)
            if found < 0:
                break
            end = chunk.find(b"\n", found, last + 1)
            if found == position or chunk[found - 1] == 0x0A:  # at the start of a line
                self._line(chunk[found:end])
            position = end + 1
        self._carry = chunk[last + 1:]
        if len(self._carry) > MAX_LINE_CARRY:
            self._carry, self._skipping = b"", True

    def _line(self, line: bytes) -> None:
        if line.startswith(_PREFIX) and len(line) <= MAX_METRIC_LINE + len(_PREFIX):
            record = _metric_record(line[len(_PREFIX):])
            if record is not None:
                self._records.append(record)


def _metric_record(raw: bytes) -> dict[str, Any] | None:
    """A metric line's JSON object with only small scalar values kept (the agent writes these lines too)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    record = {}
    for key, item in list(value.items())[:MAX_METRIC_KEYS]:
        if isinstance(item, (int, float, bool)) or item is None or (isinstance(item, str) and len(item) <= 200):
            record[str(key)[:100]] = item
    return record


def _close_quietly(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


@dataclass
class Job:
    """A background command and what is known of it."""

    id: str
    command: list[str]
    kind: str
    log: JobLog
    """The job's log, read through the env's own descriptor."""
    process: subprocess.Popen
    started_at: float
    budget_handle: int
    meta: dict[str, Any] = field(default_factory=dict)
    ended_at: float | None = None
    exit_code: int | None = None
    state: str = "running"  # running | succeeded | failed | killed | timed_out

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def runtime_s(self) -> float:
        return (self.ended_at or time.monotonic()) - self.started_at

    def metrics(self) -> list[dict[str, Any]]:
        """The metric records the job printed so far (training loss, learning rate, ...), the latest
        MAX_METRIC_RECORDS of them."""
        return self.log.metrics()

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "exit_code": self.exit_code,
            "runtime_s": round(self.runtime_s, 2),
            "log": self.meta.get("log_name", f"logs/{self.id}.log"),
            **{key: value for key, value in self.meta.items() if key != "log_name"},
        }


class JobManager:
    """Starts, watches and kills the background jobs of one episode."""

    def __init__(self, workspace: Workspace, sandbox: Sandbox, budget: Budget):
        self.workspace = workspace
        self.sandbox = sandbox
        self.budget = budget
        self.jobs: dict[str, Job] = {}
        self.launched = 0
        """Jobs launched in the episode, its parents' included (a fork numbers its jobs on)."""
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="ptb-gym-jobs", daemon=True)
        self._watchdog.start()

    def launch(self, argv: list[str], *, kind: str = "shell", meta: dict[str, Any] | None = None) -> Job:
        if self.budget.exhausted:
            raise ToolError(f"{self.budget.exhausted_by.capitalize()} is used up: no job can start. Submit your "
                            "best model with submit().")
        job_id = f"job-{self.launched + 1}"
        write_fd = self.workspace.create_file("logs", f"{job_id}.log")
        log = None
        try:
            log = JobLog(os.open(f"/proc/self/fd/{write_fd}", os.O_RDONLY | os.O_CLOEXEC))  # the same file
            with open(write_fd, "wb", closefd=False) as out:
                process = self.sandbox.spawn(argv, self.workspace.root, stdout=out, stderr=subprocess.STDOUT)
        except BaseException:
            if log is not None:
                log.close()
            raise
        finally:
            os.close(write_fd)  # the job holds its own copy; the env only reads
        now = time.monotonic()
        job = Job(job_id, argv, kind, log, process, now, self.budget.open(),
                  {"log_name": f"logs/{job_id}.log", **(meta or {})})
        with self._lock:
            self.jobs[job_id] = job
            self.launched += 1
        return job

    def get(self, job_id: str) -> Job:
        self.poll()
        if job_id not in self.jobs:
            known = ", ".join(self.jobs) or "none yet"
            raise ToolError(f"No job {job_id!r}.{did_you_mean(job_id, self.jobs)} Jobs: {known}.")
        return self.jobs[job_id]

    def poll(self) -> None:
        """Update the states of finished jobs, and kill the running ones once the budget is used up."""
        with self._lock:
            exhausted = self.budget.exhausted
            for job in self.jobs.values():
                if not job.running:
                    continue
                code = job.process.poll()
                if code is not None:
                    self._finish(job, "succeeded" if code == 0 else "failed", code)
                elif exhausted:
                    self._terminate(job)
                    self._finish(job, "timed_out", job.process.returncode)

    def kill(self, job_id: str) -> Job:
        job = self.get(job_id)
        with self._lock:
            if job.running:
                self._terminate(job)
                self._finish(job, "killed", job.process.returncode)
        return job

    def wait(self, job: Job, timeout_s: float) -> bool:
        """Block until the job ends or `timeout_s` passes; True if it ended."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self.poll()
            if not job.running:
                return True
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        self.poll()
        return not job.running

    @property
    def running(self) -> list[Job]:
        self.poll()
        return [job for job in self.jobs.values() if job.running]

    def close(self) -> None:
        """Kill every job and reap it, and whatever else the episode's commands left running, and close the logs
        (a later `tail` shows nothing; the metrics read so far stay). Idempotent."""
        self._closed.set()
        with self._lock:
            for job in self.jobs.values():
                if job.running:
                    self._terminate(job)
                    self._finish(job, "killed", job.process.returncode)
        self.sandbox.close()  # processes that left their group (setsid, double fork) die here too
        for job in self.jobs.values():
            job.log.close()  # no descriptor into the workspace outlives the episode (its disk is unmounted)

    def _finish(self, job: Job, state: str, code: int | None) -> None:
        job.state, job.exit_code, job.ended_at = state, code, time.monotonic()
        if state == "failed" and self.sandbox.stopped_reason:
            job.meta["stopped_by_sandbox"] = self.sandbox.stopped_reason
        self.budget.close(job.budget_handle)

    @staticmethod
    def _terminate(job: Job, grace_s: float = 2.0) -> None:
        """SIGTERM the job's process group, then SIGKILL what is left."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(job.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                job.process.wait(timeout=grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group leader may be gone while children it left behind still run: make sure.
        try:
            os.killpg(job.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if job.process.returncode is None:
            job.process.wait(timeout=5)

    def _watch(self) -> None:
        while not self._closed.wait(0.5):
            self.poll()
