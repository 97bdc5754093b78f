"""Background jobs: long commands (training above all) that run while the agent keeps acting.

Each job runs in the episode's sandbox in its own process group, writes its output to a log file in the
workspace (`logs/<job id>.log`), and is metered by the budget while it runs. A watchdog thread kills jobs
that pass their deadline (the budget left when they were launched), so nothing runs past the budget even
when the agent does not call `step`. `close()` kills every job and waits for it, so no process outlives
the episode.

The env process writes and reads the logs, and the agent can plant links in the workspace: a log is created
without following links (`Workspace.create_file`), and the env reads it back through the descriptor it
opened (`Job.log_path` is `/proc/self/fd/N`), so replacing `logs/job-1.log` by a link to a file outside the
workspace makes the env neither write nor show that file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptb_gym.budget import Budget
from ptb_gym.errors import ToolError, did_you_mean
from ptb_gym.sandbox import Sandbox
from ptb_gym.workspace import Workspace

# Lines a job prints as `PTB_METRICS {"step": 10, "loss": 1.2, ...}` are parsed into its metrics.
METRICS_PREFIX = "PTB_METRICS "


@dataclass
class Job:
    """A background command and what is known of it."""

    id: str
    command: list[str]
    kind: str
    log_path: Path
    process: subprocess.Popen
    started_at: float
    deadline: float
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
        """The metric records the job printed so far (training loss, learning rate, ...)."""
        records = []
        if self.log_path.exists():
            with open(self.log_path, errors="replace") as log:
                for line in log:
                    if line.startswith(METRICS_PREFIX):
                        try:
                            records.append(json.loads(line[len(METRICS_PREFIX):]))
                        except json.JSONDecodeError:
                            pass
        return records

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "exit_code": self.exit_code,
            "runtime_s": round(self.runtime_s, 2),
            "log": self.meta.get("log_name", str(self.log_path.name)),
            **{key: value for key, value in self.meta.items() if key != "log_name"},
        }


class JobManager:
    """Starts, watches and kills the background jobs of one episode."""

    def __init__(self, workspace: Workspace, sandbox: Sandbox, budget: Budget):
        self.workspace = workspace
        self.sandbox = sandbox
        self.budget = budget
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="ptb-gym-jobs", daemon=True)
        self._watchdog.start()

    def launch(self, argv: list[str], *, kind: str = "shell", meta: dict[str, Any] | None = None) -> Job:
        remaining = self.budget.remaining_s
        if remaining <= 0:
            raise ToolError("No budget left to launch a job. Submit your best model with submit().")
        job_id = f"job-{len(self.jobs) + 1}"
        log_fd = self.workspace.create_file("logs", f"{job_id}.log")
        try:
            with open(os.dup(log_fd), "wb") as log:
                process = self.sandbox.spawn(argv, self.workspace.root, stdout=log, stderr=subprocess.STDOUT)
        except BaseException:
            os.close(log_fd)
            raise
        now = time.monotonic()
        job = Job(job_id, argv, kind, Path(f"/proc/self/fd/{log_fd}"), process, now, now + remaining,
                  self.budget.open(), {"log_name": f"logs/{job_id}.log", **(meta or {})})
        weakref.finalize(job, os.close, log_fd)
        with self._lock:
            self.jobs[job_id] = job
        return job

    def get(self, job_id: str) -> Job:
        self.poll()
        if job_id not in self.jobs:
            known = ", ".join(self.jobs) or "none yet"
            raise ToolError(f"No job {job_id!r}.{did_you_mean(job_id, self.jobs)} Jobs: {known}.")
        return self.jobs[job_id]

    def poll(self) -> None:
        """Update the states of finished jobs and kill those past their deadline."""
        with self._lock:
            for job in self.jobs.values():
                if not job.running:
                    continue
                code = job.process.poll()
                if code is not None:
                    self._finish(job, "succeeded" if code == 0 else "failed", code)
                elif time.monotonic() >= job.deadline:
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
        """Kill every job and reap it, and whatever else the episode's commands left running. Idempotent."""
        self._closed.set()
        with self._lock:
            for job in self.jobs.values():
                if job.running:
                    self._terminate(job)
                    self._finish(job, "killed", job.process.returncode)
        self.sandbox.close()  # processes that left their group (setsid, double fork) die here too

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
