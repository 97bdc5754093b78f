"""Shared fixtures: small real episodes on the embedded base model, on CPU."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path

# libgomp's threads spin up to 300,000 times waiting for each other while other processes hold the cores: a test
# that trains in this process (tests/test_benchmarks.py::test_train_step) took 160 s instead of 27 s next to one
# busy process. Read when torch loads libgomp, so set before anything imports torch (the train tool's jobs and the
# verifier set it for themselves).
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import gymnasium as gym  # noqa: E402
import pytest  # noqa: E402

import ptb_gym  # noqa: E402

gym.register_envs(ptb_gym)

# Small splits keep resets and evaluations fast; everything else is the real default.
SMALL = {"train_size": 200, "dev_size": 16, "test_size": 32, "device": "cpu"}


@pytest.fixture
def make_env(tmp_path):
    """Build `PTB/math-v0` envs with small splits; every env made is closed after the test."""
    envs = []

    def make(**options):
        env = gym.make("PTB/math-v0", **{**SMALL, "workdir": str(tmp_path / "episodes"), **options})
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


def call(tool: str, **arguments) -> dict:
    return {"tool": tool, "arguments": arguments}


def host_processes_with(token: str) -> list[int]:
    """Host processes whose command line contains `token`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if token.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


@contextmanager
def no_blocking(seconds: int = 5):
    """Fail, instead of hanging the test run, if the block takes longer than `seconds`."""
    def expired(*_):
        raise AssertionError(f"the env blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def peak_rss_growth(function) -> tuple[int, object]:
    """How much this process's peak RSS grew while `function` ran (VmHWM, reset first), and its result."""
    def field(name: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(name)

    before = field("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    result = function()
    return field("VmHWM") - before, result
