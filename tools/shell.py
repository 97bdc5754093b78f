"""The run tool: a shell command in the sandbox, synchronous and time-limited."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ptb_gym.episode import Episode, truncate_middle
from ptb_gym.errors import ToolError
from ptb_gym.protocol import ToolResult, tool

MAX_RUN_S = 600


@tool
def run(episode: Episode, command: str, timeout_s: int = 60) -> ToolResult:
    """Run a shell command in the workspace and return its output. For long jobs such as training, use launch.

    Args:
        command: A bash command, e.g. "python make_data.py && head -3 data/sft.jsonl".
        timeout_s: Seconds before the command is killed (at most 600, and at most the budget left).
    """
    if not command.strip():
        raise ToolError("command is empty.")
    limit = min(max(1, timeout_s), MAX_RUN_S, episode.budget.remaining_s)
    if limit <= 0:
        raise ToolError("No budget left. Submit your best model with submit().")
    started = time.monotonic()
    process = episode.sandbox.spawn(["bash", "-c", command], episode.root)
    try:
        output, _ = process.communicate(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        timed_out = True
    elapsed = time.monotonic() - started
    text = output.decode(errors="replace")
    status = f"timed out after {limit:.0f} s (killed)" if timed_out else f"exit code {process.returncode}"
    body = truncate_middle(text, episode.config.max_observation_chars - 200)
    return ToolResult(f"[{status}, {elapsed:.1f} s]\n{body}".rstrip(),
                      {"exit_code": process.returncode, "timed_out": timed_out, "duration_s": round(elapsed, 3)})
