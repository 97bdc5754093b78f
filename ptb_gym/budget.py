"""The compute budget: the scarce resource of an episode is time, not steps.

Three meters (`EnvConfig.budget_mode`):

- `cpu` (the embedded tier's default): the CPU time the episode's processes use, the sandbox's (every command
  and job, from its cgroup) and the verifier's while a tool call waits on it (`evaluate`), in seconds of
  `cpu_cores` cores: one budget second is `cpu_cores` CPU-seconds, a second of the reference machine's cores all
  busy. What an episode gets for its budget then does not depend on what else the machine runs: eight
  episodes sharing two cores each train as many steps as one alone, only later. Idle time costs nothing, so a
  wall-clock limit (`wall_limit_s`) bounds an episode that waits forever.
- `compute`: time while a tool call or at least one background job runs (overlaps count once), so a slow
  remote policy that thinks between steps is not charged for thinking; a loaded machine gives less per second.
- `wall`: time since reset, as in PostTrainBench.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ptb_gym.config import BUDGET_MODES

CpuClock = Callable[[], float]
"""CPU-seconds used so far by some processes; never decreases."""


class Budget:
    """Meters an episode's use against its limit."""

    def __init__(self, limit_s: float, mode: str = "compute", clock: Callable[[], float] = time.monotonic,
                 carried_s: float = 0.0, *, cpu_clock: CpuClock | None = None, tool_cpu_clock: CpuClock | None = None,
                 cpu_cores: float = 2.0, wall_limit_s: float | None = None):
        """`carried_s`: budget already used before this meter started (a fork continues its parent's budget).
        In `cpu` mode: `cpu_clock` counts the episode's processes all along, `tool_cpu_clock` only inside
        `metered` (a helper process that also works outside tool calls: the verifier warming up)."""
        if mode not in BUDGET_MODES:
            raise ValueError(f"budget mode must be one of {sorted(BUDGET_MODES)}, got {mode!r}")
        if mode == "cpu" and cpu_clock is None:
            raise ValueError("the cpu budget needs a cpu_clock")
        self.limit_s = float(limit_s)
        self.mode = mode
        self.cpu_cores = float(cpu_cores)
        self.wall_limit_s = wall_limit_s
        self._clock = clock
        self._started = clock()
        self.carried_s = float(carried_s)
        self._intervals: list[tuple[float, float | None]] = []  # (start, end); end None while open
        self._cpu_clock = cpu_clock
        self._cpu_at_start = cpu_clock() if cpu_clock else 0.0
        self.tool_cpu_clock = tool_cpu_clock
        self._tool_cpu_s = 0.0

    def open(self) -> int:
        """Start metering an activity (a tool call, a job); returns a handle for `close`."""
        self._intervals.append((self._clock(), None))
        return len(self._intervals) - 1

    def close(self, handle: int, at: float | None = None) -> None:
        start, end = self._intervals[handle]
        if end is None:
            self._intervals[handle] = (start, max(start, at if at is not None else self._clock()))

    @contextmanager
    def metered(self) -> Iterator[None]:
        """Meter a tool call (its time, and in `cpu` mode the CPU time of the helpers it waits on)."""
        handle = self.open()
        tool_cpu = self.tool_cpu_clock if self.mode == "cpu" else None
        before = tool_cpu() if tool_cpu else 0.0
        try:
            yield
        finally:
            self.close(handle)
            if tool_cpu:
                self._tool_cpu_s += max(0.0, tool_cpu() - before)

    @property
    def used_s(self) -> float:
        if self.mode == "cpu":
            assert self._cpu_clock is not None
            return self.carried_s + (self._cpu_clock() - self._cpu_at_start + self._tool_cpu_s) / self.cpu_cores
        now = self._clock()
        if self.mode == "wall":
            return self.carried_s + now - self._started
        used, covered_until = self.carried_s, float("-inf")
        for start, end in sorted((start, now if end is None else end) for start, end in self._intervals):
            if end > covered_until:
                used += end - max(start, covered_until)
                covered_until = end
        return used

    @property
    def wall_s(self) -> float:
        """Wall-clock time since this meter started."""
        return self._clock() - self._started

    @property
    def counting(self) -> str:
        """What the meter counts, in words."""
        return describe(self.mode, self.cpu_cores)

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.limit_s - self.used_s)

    @property
    def wall_remaining_s(self) -> float:
        """The longest wall-clock time before the budget can run out: what a blocking tool may wait at most."""
        if self.mode == "cpu":
            return math.inf if self.wall_limit_s is None else max(0.0, self.wall_limit_s - self.wall_s)
        return self.remaining_s

    @property
    def exhausted(self) -> bool:
        return self.used_s >= self.limit_s or (self.wall_limit_s is not None and self.wall_s >= self.wall_limit_s)

    @property
    def exhausted_by(self) -> str:
        """What ran out, in words (valid once `exhausted`)."""
        return "the budget" if self.used_s >= self.limit_s else f"the wall-clock limit ({self.wall_limit_s:.0f} s)"

    def snapshot(self) -> dict[str, Any]:
        used = self.used_s
        snapshot = {
            "mode": self.mode,
            "limit_s": round(self.limit_s, 3),
            "used_s": round(used, 3),
            "remaining_s": round(max(0.0, self.limit_s - used), 3),
        }
        if self.mode == "cpu":
            snapshot.update(cpu_cores=self.cpu_cores, wall_s=round(self.wall_s, 3), wall_limit_s=self.wall_limit_s)
        return snapshot


def describe(mode: str, cpu_cores: float = 2.0) -> str:
    """A budget mode in words."""
    if mode == "cpu":
        return (f"CPU time of your commands, jobs and evaluations, in seconds of {cpu_cores:g} busy cores "
                f"({cpu_cores:g} CPU-seconds each)")
    return BUDGET_MODES[mode]
