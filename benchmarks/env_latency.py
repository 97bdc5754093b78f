"""Latency of the env's cheap operations: `import ptb_gym`, `gym.make`, `reset` and light steps.

    python benchmarks/env_latency.py              # writes benchmarks/results/env_latency.json
    python benchmarks/env_latency.py --quick      # a few repeats (smoke test)

An RL trainer pays these thousands of times. Each is timed `repeats` times; the table shows the median and the
10th-90th percentile spread. `import ptb_gym` is timed in fresh interpreters (in-process import time, and whether
torch came with it); the first `gym.make` and the first `reset` of a process are reported apart (they import the
env's modules and generate the task's data once), the targets apply to the warm ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from common import machine, parse_config, print_table, summary, write_results

TARGETS_S = {"import ptb_gym": 0.3, "reset": 0.05, "step list_files": 0.005, "step read_file": 0.005}

IMPORT_PROBE = """\
import sys, time, json
started = time.perf_counter()
import ptb_gym
elapsed = time.perf_counter() - started
print(json.dumps({"import_s": elapsed, "torch_imported": "torch" in sys.modules}))
"""


@dataclass(frozen=True)
class Config:
    """What to time and how often."""

    repeats: int = 30
    """Timings of each warm operation (make, reset, steps)."""
    import_repeats: int = 10
    """Fresh interpreters that time `import ptb_gym`."""
    sandbox: str = "auto"
    """The env's sandbox (`auto`, `bwrap`, `none`); reset creates it."""
    env_id: str = "PTB/math-v0"
    results_dir: str = ""
    """Where the results JSON goes (default: benchmarks/results)."""


QUICK = {"repeats": 3, "import_repeats": 2}


def time_import(repeats: int) -> dict:
    imports, walls, torch_seen = [], [], False
    for _ in range(repeats):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - started)
        record = json.loads(out.stdout.strip().splitlines()[-1])
        imports.append(record["import_s"])
        torch_seen |= record["torch_imported"]
    return {"import": imports, "process": walls, "torch_imported": torch_seen}


def main(config: Config, quick: bool = False) -> dict:
    import gymnasium as gym

    import ptb_gym

    gym.register_envs(ptb_gym)
    timings: dict[str, list[float]] = {}
    imported = time_import(config.import_repeats)
    timings["import ptb_gym"] = imported["import"]
    timings["python -c 'import ptb_gym' (whole process)"] = imported["process"]

    with tempfile.TemporaryDirectory(prefix="ptb-bench-") as workdir:
        options = {"sandbox": config.sandbox, "workdir": workdir, "device": "cpu"}
        makes, envs = [], []
        for _ in range(config.repeats + 1):
            started = time.perf_counter()
            envs.append(gym.make(config.env_id, **options))
            makes.append(time.perf_counter() - started)
        for extra in envs[1:]:
            extra.close()
        timings["gym.make (first in process)"] = makes[:1]
        timings["gym.make"] = makes[1:]

        env = envs[0]
        resets = []
        for seed in range(config.repeats + 1):
            started = time.perf_counter()
            env.reset(seed=seed)
            resets.append(time.perf_counter() - started)
        timings["reset (first in process)"] = resets[:1]
        timings["reset"] = resets[1:]

        actions = {"step list_files": {"tool": "list_files", "arguments": {}},
                   "step read_file": {"tool": "read_file", "arguments": {"path": "TASK.md"}},
                   "step budget": {"tool": "budget", "arguments": {}}}
        for name, action in actions.items():
            steps = []
            for _ in range(config.repeats):
                started = time.perf_counter()
                _, _, _, _, info = env.step(action)
                steps.append(time.perf_counter() - started)
                assert "error" not in info, info["error"]
            timings[name] = steps
        sandbox = env.unwrapped.episode.sandbox.name
        env.close()

    results = {"sandbox": sandbox, "torch_imported_by_import_ptb_gym": imported["torch_imported"], "operations": {}}
    rows = []
    for name, values in timings.items():
        stats = summary(values)
        target = TARGETS_S.get(name)
        met = None if target is None else stats["median"] < target
        results["operations"][name] = {"seconds": stats, "target_s": target, "target_met": met}
        rows.append([name, stats["median"] * 1e3, stats["p10"] * 1e3, stats["p90"] * 1e3, stats["n"],
                     None if target is None else target * 1e3, met])
    print_table(f"env latency (sandbox {sandbox}; import pulls in torch: {imported['torch_imported']})",
                ["operation", "median ms", "p10 ms", "p90 ms", "n", "target ms", "met"], rows)
    path = write_results("env_latency", config, results, quick=quick, results_dir=config.results_dir or None,
                         machine_info=machine())
    print(f"\nwrote {path}")
    return results


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
