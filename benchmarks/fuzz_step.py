"""Fuzz `env.step` with 10,000 hostile actions and count what raised (issue 8: 0 exceptions in 10,000 actions).

The actions and the properties are those of tests/test_fuzz.py (its `fuzz` runner): arbitrary JSON-like values,
bytes, strings, broken tool calls, objects whose attributes raise, and real tools with hostile arguments. Writes
results/fuzz_step.json: actions, exceptions, violated properties (recording, observation space), observations in
which the env blamed itself, seconds, and one example per kind of problem.

    python benchmarks/fuzz_step.py                 # 10,000 actions, seed 0
    python benchmarks/fuzz_step.py --actions 2000 --seed 7
    python benchmarks/fuzz_step.py --quick         # 100 actions
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from common import parse_config, print_table, write_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.test_fuzz


@dataclass
class Config:
    actions: int = 10_000
    """How many actions to send."""
    seed: int = 0
    """Hypothesis seed of the draw."""
    max_steps: int = 150
    """Step limit of each episode (the env resets when one ends)."""
    results_dir: str = ""
    """Where results/fuzz_step.json goes; empty: benchmarks/results."""


QUICK = {"actions": 100}


def main(config: Config, quick: bool = False) -> dict:
    from tests.test_fuzz import describe, fuzz

    report = fuzz(config.actions, seed=config.seed, max_steps=config.max_steps)
    print(describe(report))
    print_table("env.step under fuzzing", ["what", "value"], [
        ["actions", report["actions"]], ["exceptions out of step", report["exceptions"]],
        ["violated properties", report["violations"]],
        ["observations saying the env failed", report["env_failure_observations"]],
        ["episodes", report["episodes"]], ["recordings checked", report["recordings_checked"]],
        ["seconds", report["seconds"]], ["actions per second", report["actions"] / max(report["seconds"], 1e-9)]])
    path = write_results("fuzz_step", config, report, quick=quick, results_dir=config.results_dir or None)
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    config, quick = parse_config(Config, quick=QUICK, description=__doc__)
    result = main(config, quick=quick)
    sys.exit(1 if result["exceptions"] else 0)
