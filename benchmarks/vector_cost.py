"""What `gym.make_vec("PTB/math-v0", num_envs=N, vectorization_mode="async")` costs on this machine.

    python benchmarks/vector_cost.py           # -> results/vector_cost.json
    python benchmarks/vector_cost.py --quick   # N = 1 and 2, few steps (smoke test)

For each N: the time to make the vector env (N worker processes), its first reset (N workspaces), a batch of
light steps (`list_files` in every env at once, median), and the memory (resident set size) of the workers
and everything they started, idle after the reset and at its peak while every env trains at once (a training
job and the verifier that the train tool warms, per env). Training throughput is the other cost: N episodes share the cores, so under the default `cpu` budget each gets as many
training steps as one alone but takes about N / cores times as long (benchmarks/budget_invariance.py).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Self

from common import machine, parse_config, print_table, write_results


@dataclass(frozen=True)
class Config:
    num_envs: str = "1,8"
    steps: int = 20
    """Batches of light steps timed."""
    train_steps: int = 20
    """Steps of the training every env runs at once (the memory peak is taken while they run)."""
    name: str = "vector_cost"
    results_dir: str = ""


QUICK = {"num_envs": "1,2", "steps": 3, "train_steps": 2}


def tree_rss_bytes(pids: list[int]) -> int:
    """Resident memory of the processes and all their descendants."""
    import psutil

    total, seen = 0, set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                if process.pid not in seen:
                    seen.add(process.pid)
                    total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


MAKE_DATA = ("python3 -c \"import json; rows = [json.loads(l) for l in open('data/train.jsonl')][:200]; "
             "open('sft.jsonl', 'w').writelines(json.dumps({'prompt': r['question'], 'completion': ' ' + str(r['answer'])})"
             " + '\\n' for r in rows)\"")


class PeakMemory(threading.Thread):
    """The largest `tree_rss_bytes` seen, sampled every 0.2 s while the block runs."""

    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids, self.peak, self._done = pids, 0, threading.Event()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(0.2):
            self.peak = max(self.peak, tree_rss_bytes(self.pids))


def measure(num_envs: int, steps: int, train_steps: int) -> dict:
    import gymnasium as gym
    import numpy as np

    import ptb_gym

    gym.register_envs(ptb_gym)

    def every(tool: str, **arguments) -> np.ndarray:
        return np.array([{"tool": tool, "arguments": arguments}] * num_envs, dtype=object)

    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        envs = gym.make_vec("PTB/math-v0", num_envs=num_envs, vectorization_mode="async", workdir=workdir)
        made = time.perf_counter() - started
        try:
            started = time.perf_counter()
            envs.reset(seed=list(range(num_envs)))
            reset = time.perf_counter() - started
            timings = []
            for _ in range(steps):
                started = time.perf_counter()
                envs.step(every("list_files"))
                timings.append(time.perf_counter() - started)
            workers = [process.pid for process in envs.processes]
            idle_rss = tree_rss_bytes(workers)
            envs.step(every("run", command=MAKE_DATA))
            started = time.perf_counter()
            with PeakMemory(workers) as memory:  # sampled while every env trains and waits on its job
                envs.step(every("train", data="sft.jsonl", output_dir="out", max_steps=train_steps))
                envs.step(every("wait", job_id="job-1", timeout_s=600))
            peak = memory.peak
            train_wall = time.perf_counter() - started
        finally:
            envs.close()
    return {"num_envs": num_envs, "make_s": round(made, 3), "reset_s": round(reset, 3),
            "step_s": round(statistics.median(timings), 4), "idle_rss_mib": round(idle_rss / 2**20),
            "training_peak_rss_mib": round(peak / 2**20), "train_wall_s": round(train_wall, 1)}


def main(config: Config, quick: bool = False) -> list[dict]:
    info = machine()
    rows = [measure(int(n), config.steps, config.train_steps) for n in config.num_envs.split(",")]
    keys = list(rows[0])
    print_table(f"gym.make_vec('PTB/math-v0', vectorization_mode='async') on {info['cpu_count']} cores", keys,
                [[row[key] for key in keys] for row in rows])
    write_results(config.name, config, {"rows": rows}, quick=quick, results_dir=config.results_dir, machine_info=info)
    return rows


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
