"""The budget's meters on fake clocks: what each mode charges, and when it runs out."""

from __future__ import annotations

import math

import pytest

from ptb_gym.budget import Budget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cpu_budget_charges_cpu_seconds_in_seconds_of_its_cores():
    wall, cpu, verifier = Clock(), Clock(), Clock()
    cpu.now = 5.0  # used before the meter started (not the episode's)
    budget = Budget(10, "cpu", clock=wall, cpu_clock=cpu, tool_cpu_clock=verifier, cpu_cores=2, carried_s=1.0)
    cpu.now, wall.now = 9.0, 100.0  # 4 CPU-seconds in 100 s of wall time
    assert budget.used_s == pytest.approx(1.0 + 2.0)
    verifier.now = 3.0  # the verifier warming up, outside any tool call: not charged
    with budget.metered():
        verifier.now = 7.0  # an evaluate: charged
    assert budget.used_s == pytest.approx(1.0 + (4.0 + 4.0) / 2)
    assert budget.wall_remaining_s == math.inf and not budget.exhausted
    cpu.now = 9.0 + 2 * 5.0
    assert budget.exhausted and budget.exhausted_by == "the budget" and budget.remaining_s == 0.0
    assert budget.snapshot()["mode"] == "cpu" and budget.snapshot()["cpu_cores"] == 2


def test_cpu_budget_ends_at_its_wall_clock_limit():
    wall, cpu = Clock(), Clock()
    budget = Budget(10, "cpu", clock=wall, cpu_clock=cpu, wall_limit_s=30)
    wall.now = 29.0
    assert budget.wall_remaining_s == pytest.approx(1.0) and not budget.exhausted
    wall.now = 30.0
    assert budget.exhausted and budget.used_s == 0.0 and budget.exhausted_by.startswith("the wall-clock limit")


def test_compute_budget_counts_overlapping_activities_once():
    wall = Clock()
    budget = Budget(10, "compute", clock=wall)
    job = budget.open()
    wall.now = 2.0
    with budget.metered():
        wall.now = 3.0
    wall.now = 4.0
    budget.close(job)
    wall.now = 50.0  # nothing runs: thinking time is free
    assert budget.used_s == pytest.approx(4.0) and budget.wall_remaining_s == pytest.approx(6.0)


def test_a_cpu_budget_needs_a_cpu_clock():
    with pytest.raises(ValueError, match="cpu_clock"):
        Budget(10, "cpu")
