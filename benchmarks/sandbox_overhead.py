"""The sandbox's overhead: a `run` call and the start of a training job, bubblewrap against plain subprocesses.

    python benchmarks/sandbox_overhead.py [--repeats 20] [--torch-repeats 5] \
        [--out benchmarks/results/sandbox_overhead.json]

Measures, per backend (`bwrap` where it works, `none` = plain subprocesses with the same resource limits, and a
bare `subprocess.run` as the floor):

- `spawn true`: starting `bash -c true` through the sandbox and waiting for it (what the `run` tool does),
  median over `--repeats` calls;
- `env.step run`: the whole `run` tool call through `env.step` (action parsing, budget, observation);
- `import torch`: the time to the first output line of `python -c "import torch; print(...)"`, the start of
  every training job, median over `--torch-repeats` calls.

Prints a table and writes the numbers with the machine, the versions and the date to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path


@dataclass(frozen=True)
class Config:
    repeats: int = 20
    """Calls per measurement of the short commands (the median is reported)."""
    torch_repeats: int = 5
    """Calls per measurement of the torch import (about a second each)."""
    out: str = "benchmarks/results/sandbox_overhead.json"


def median_s(function, repeats: int) -> float:
    function()  # warm-up: page cache, bubblewrap's static arguments
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def first_line_s(popen) -> float:
    """Seconds from starting a process to its first line of output."""
    started = time.perf_counter()
    process = popen()
    process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.communicate()
    return elapsed


def main(config: Config) -> None:
    import gymnasium as gym

    import ptb_gym
    from ptb_gym.sandbox import BubblewrapSandbox, SubprocessSandbox, bubblewrap_works, host_identity

    gym.register_envs(ptb_gym)
    workspace = Path(tempfile.mkdtemp(prefix="ptb-overhead-"))
    os.chown(workspace, *host_identity())  # as an episode's workspace: the sandbox's identity owns it
    torch_probe = [sys.executable, "-c", "import torch; print('ready', flush=True)"]
    backends = {"none": SubprocessSandbox(quiet=True)}
    if bubblewrap_works():
        backends["bwrap"] = BubblewrapSandbox()

    rows: dict[str, dict[str, float]] = {}
    rows["subprocess (floor)"] = {
        "spawn_true_ms": 1e3 * median_s(lambda: subprocess.run(["bash", "-c", "true"], check=True), config.repeats),
        "import_torch_s": statistics.median(
            first_line_s(lambda: subprocess.Popen(torch_probe, stdout=subprocess.PIPE))
            for _ in range(config.torch_repeats)),
    }
    for name, box in backends.items():
        rows[name] = {
            "spawn_true_ms": 1e3 * median_s(lambda box=box: box.spawn(["bash", "-c", "true"], workspace).communicate(),
                                            config.repeats),
            "import_torch_s": statistics.median(
                first_line_s(lambda box=box: box.spawn(torch_probe, workspace, stderr=subprocess.DEVNULL))
                for _ in range(config.torch_repeats)),
        }
        env = gym.make("PTB/math-v0", sandbox="bwrap" if name == "bwrap" else "none", train_size=50, dev_size=8,
                       test_size=8)
        env.reset(seed=0)
        action = {"tool": "run", "arguments": {"command": "true"}}
        rows[name]["env_step_run_ms"] = 1e3 * median_s(lambda env=env, action=action: env.step(action),
                                                       config.repeats)
        rows[name]["limits"] = box.limits_in_force()
        env.close()
        box.close()
    shutil.rmtree(workspace, ignore_errors=True)

    print(f"{'backend':<20} {'spawn true (ms)':>16} {'env.step run (ms)':>18} {'import torch (s)':>17}")
    for name, row in rows.items():
        step = f"{row['env_step_run_ms']:.1f}" if "env_step_run_ms" in row else "-"
        print(f"{name:<20} {row['spawn_true_ms']:>16.1f} {step:>18} {row['import_torch_s']:>17.2f}")
    if "bwrap" in rows:
        print(f"bwrap overhead: {rows['bwrap']['spawn_true_ms'] - rows['none']['spawn_true_ms']:+.1f} ms per "
              f"command, {rows['bwrap']['import_torch_s'] - rows['none']['import_torch_s']:+.2f} s per job start")

    bwrap_version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("bwrap") else None
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = Path("/proc/loadavg").read_text().split()[:3]
    result = {
        "command": "python benchmarks/sandbox_overhead.py " + " ".join(sys.argv[1:]),
        "config": asdict(config),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "kernel": platform.release(),
                    "load_average_at_end": load},
        "versions": {"python": platform.python_version(), "bubblewrap": bwrap_version, "ptb-gym": ptb_gym.__version__,
                     "torch": version("torch")},
        "results": rows,
    }
    out = Path(config.out) if Path(config.out).is_absolute() else Path(__file__).resolve().parent.parent / config.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=Config.repeats)
    parser.add_argument("--torch-repeats", type=int, default=Config.torch_repeats)
    parser.add_argument("--out", default=Config.out)
    main(Config(**vars(parser.parse_args())))
