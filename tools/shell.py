"""The run tool: a shell command in the sandbox, synchronous and time-limited.

The command's output is read from a pipe into a bounded buffer (its first and last OUTPUT_KEPT_BYTES): a
command printing gigabytes costs the env no memory, and the observation says how much was dropped. At the
timeout the command's process group is killed and the env stops reading, even if something the command left
behind still holds the pipe open.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable

from ptb_gym.episode import Episode
from ptb_gym.errors import ToolError
from ptb_gym.protocol import ToolResult, tool
from ptb_gym.text import shorten

MAX_RUN_S = 600
OUTPUT_KEPT_BYTES = 64 * 1024
"""Bytes kept of the output's head, and as many of its tail."""
DRAIN_AFTER_KILL_S = 1.0
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class BoundedOutput:
    """The first `head` and last `tail` bytes of a stream, and a count of those dropped in between."""

    def __init__(self, head: int = OUTPUT_KEPT_BYTES, tail: int = OUTPUT_KEPT_BYTES):
        self._head_limit, self._tail_limit = head, tail
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        """Bytes seen in all."""

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self._tail_limit:
                del self.tail[: len(self.tail) - self._tail_limit]

    def text(self) -> str:
        head = self.head.decode(errors="replace")
        if not self.dropped:
            return head + self.tail.decode(errors="replace")
        return head + f"\n... [{self.dropped} bytes dropped] ...\n" + self.tail.decode(errors="replace")


MAX_COMMAND_BYTES = 100_000  # one argument of a program may be at most 128 KiB (Linux's MAX_ARG_STRLEN)


def bash(command: str) -> list[str]:
    """The argv that runs `command` with bash, or a ToolError for a command no program can be given."""
    if not command.strip():
        raise ToolError("command is empty.")
    if "\x00" in command:
        raise ToolError("command contains a NUL byte, which no program can be given: remove it.")
    if len(command.encode("utf-8", "surrogatepass")) > MAX_COMMAND_BYTES:
        raise ToolError(f"command is over {MAX_COMMAND_BYTES} bytes: write it to a script with write_file and run "
                        "`bash script.sh`.")
    return ["bash", "-c", command]


@tool
def run(episode: Episode, command: str, timeout_s: int = 60) -> ToolResult:
    """Run a shell command in the workspace and return its output. For long jobs such as training, use launch.

    Args:
        command: A bash command, e.g. "python make_data.py && head -3 data/sft.jsonl".
        timeout_s: Seconds before the command is killed (at most 600, and at most the budget left).
    """
    argv = bash(command)
    budget = episode.budget
    limit = min(max(1, timeout_s), MAX_RUN_S, budget.wall_remaining_s)
    if limit <= 0 or budget.exhausted:
        raise ToolError("No budget left. Submit your best model with submit().")
    started = time.monotonic()
    process = episode.sandbox.spawn(argv, episode.root)
    output = BoundedOutput()
    try:
        timed_out = _collect(process, output, started + limit, stop=lambda: budget.exhausted)
    finally:
        process.stdout.close()
    elapsed = time.monotonic() - started
    if timed_out:
        status = ("killed: the budget ran out" if budget.exhausted and elapsed < limit
                  else f"timed out after {limit:.0f} s (killed)")
    else:
        status = f"exit code {process.returncode}"
    if output.dropped:
        status += (f"; {output.total} bytes of output, {output.dropped} bytes of output dropped from the middle: "
                   "write long output to a file and read it with read_file")
    body = shorten(output.text(), episode.config.max_observation_chars - 200)
    return ToolResult(f"[{status}, {elapsed:.1f} s]\n{body}".rstrip(),
                      {"exit_code": process.returncode, "timed_out": timed_out, "duration_s": round(elapsed, 3),
                       "output_bytes": output.total, "dropped_bytes": output.dropped})


def _collect(process: subprocess.Popen, output: BoundedOutput, deadline: float,
             stop: Callable[[], bool] = lambda: False) -> bool:
    """Read the process's output until it ends (end of file and exit), the deadline passes or `stop()` (checked
    twice a second) says so, then kill its group. True if it was killed."""
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, 1024**2)  # fewer, larger reads for a chatty command
    except OSError:
        pass
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        timed_out = not _read_until(selector, fd, output, deadline, stop)
        while not timed_out and process.poll() is None:  # it may close its output and keep running
            if time.monotonic() >= deadline or stop():
                timed_out = True
            else:
                time.sleep(0.02)
        if timed_out:
            _kill_group(process)
            _read_until(selector, fd, output, time.monotonic() + DRAIN_AFTER_KILL_S)
    if process.returncode is None:
        process.wait(timeout=5)
    return timed_out


def _read_until(selector: selectors.BaseSelector, fd: int, output: BoundedOutput, deadline: float,
                stop: Callable[[], bool] = lambda: False) -> bool:
    """Read into `output` until end of file (True), the deadline or `stop()` (False)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stop():
            return False
        if not selector.select(min(remaining, 0.5)):
            continue
        try:
            chunk = os.read(fd, 1024**2)
        except BlockingIOError:
            continue
        if not chunk:
            return True
        output.feed(chunk)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
