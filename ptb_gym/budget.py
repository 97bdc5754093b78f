"""The compute budget: the scarce resource of an episode is time, not steps.

In `compute` mode the meter runs while a tool call or at least one background job runs (overlaps count once),
so a slow remote policy that thinks between steps is not charged for thinking. In `wall` mode it runs from
reset, as in PostTrainBench.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ptb_gym.config import BUDGET_MODES


class Budget:
    """Meters an episode's time against its limit."""

    def __init__(self, limit_s: float, mode: str = "compute", clock: Callable[[], float] = time.monotonic,
                 carried_s: float = 0.0):
        """`carried_s`: time already used before this meter started (a fork continues its parent's budget)."""
        if mode not in BUDGET_MODES:
            raise ValueError(f"budget mode must be one of {sorted(BUDGET_MODES)}, got {mode!r}")
        self.limit_s = float(limit_s)
        self.mode = mode
        self._clock = clock
        self._started = clock()
        self.carried_s = float(carried_s)
        self._intervals: list[tuple[float, float | None]] = []  # (start, end); end None while open

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
        handle = self.open()
        try:
            yield
        finally:
            self.close(handle)

    @property
    def used_s(self) -> float:
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
    def counting(self) -> str:
        """What the meter counts, in words."""
        return BUDGET_MODES[self.mode]

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.limit_s - self.used_s)

    @property
    def exhausted(self) -> bool:
        return self.used_s >= self.limit_s

    def snapshot(self) -> dict[str, Any]:
        used = self.used_s
        return {
            "mode": self.mode,
            "limit_s": round(self.limit_s, 3),
            "used_s": round(used, 3),
            "remaining_s": round(max(0.0, self.limit_s - used), 3),
        }
