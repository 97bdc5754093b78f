"""Does the reward depend on how busy the machine is? The same agent, 1, 2 and 4 episodes at a time, per budget.

    python benchmarks/budget_invariance.py          # -> results/budget_invariance.json
    python benchmarks/budget_invariance.py --quick  # 1 and 2 at a time, `cpu` only, a 12 s budget (smoke test)

The agent trains until its budget is spent, the schedule a capable agent uses: it plays `PTB/math-v0`'s
reference recipe (its data script, then the `train` tool) with a step count it does not reach, so the train
tool's own time limit (the budget left, less a margin for saving) stops the training and saves the model, which
it submits. Every episode of a row starts at the same time, each in its own process, on the same seed and the
same hidden test split (`test_seed`), so episodes that train as many steps score the same.

Under `compute` (time while a tool or a job runs) episodes that share the cores get fewer steps per budget
second; under `cpu` (the CPU time the episode's processes use) they get as many, only later. Reported per
budget mode and parallelism: the median training steps, uplift and wall time of the episodes, and per mode
`max_abs_delta_uplift`, the largest difference between any two rows' median uplifts.
"""

from __future__ import annotations

import multiprocessing
import re
import statistics
import sys
import time
from dataclasses import dataclass

from common import REPO, machine, parse_config, print_table, write_results


@dataclass(frozen=True)
class Config:
    modes: str = "compute,cpu"
    parallel: str = "1,2,4"
    """Episodes at a time, one row each."""
    budget_s: float = 120.0
    agent_max_steps: int = 1000
    """The training steps the agent asks for: more than fit in the budget (its learning-rate schedule, warm-up
    then decay, is laid out over them, so not so many that it is still warming up when stopped)."""
    test_size: int = 300
    dev_size: int = 50
    seed: int = 0
    test_seed: int = 20261203
    name: str = "budget_invariance"
    results_dir: str = ""


QUICK = {"modes": "cpu", "parallel": "1,2", "budget_s": 12.0, "test_size": 50, "dev_size": 10}

_STOPPED_AT = re.compile(r"reached at step (\d+)")


def episode(args: tuple[str, Config]) -> dict:
    """One episode of the deadline-based agent (in a worker process of its own)."""
    mode, config = args
    sys.path.append(str(REPO))  # for baselines/, after the installed ptb_gym
    import gymnasium as gym

    import ptb_gym  # noqa: F401 - registers the ids
    from baselines.scripted_agent import ScriptedAgent

    env = gym.make("PTB/math-v0", budget_s=config.budget_s, budget_mode=mode, test_size=config.test_size,
                   dev_size=config.dev_size, test_seed=config.test_seed, max_steps=100, record_dir=None)
    agent = ScriptedAgent(max_steps=config.agent_max_steps, evaluate_on_dev=False, wait_chunk_s=30)
    started = time.monotonic()
    try:
        observation, info = env.reset(seed=config.seed)
        agent.reset(observation, info)
        steps, terminated, truncated = None, False, False
        while not (terminated or truncated):
            observation, reward, terminated, truncated, info = env.step(agent.act(observation, info))
            if found := _STOPPED_AT.search(observation):
                steps = int(found.group(1))
    finally:
        env.close()
    return {"mode": mode, "uplift": info.get("uplift", reward), "reward": reward, "train_steps": steps,
            "budget_used_s": info["budget"]["used_s"], "wall_s": round(time.monotonic() - started, 1),
            "failure": (info.get("failure") or {}).get("message")}


def main(config: Config, quick: bool = False) -> dict:
    info = machine()  # before the episodes load the machine
    rows, episodes = [], []
    context = multiprocessing.get_context("spawn")
    for mode in config.modes.split(","):
        for parallel in (int(n) for n in config.parallel.split(",")):
            print(f"{mode}: {parallel} at a time ...", flush=True)
            with context.Pool(parallel) as pool:
                results = pool.map(episode, [(mode, config)] * parallel)
            episodes += [{**result, "parallel": parallel} for result in results]
            steps = [r["train_steps"] for r in results if r["train_steps"] is not None]
            rows.append({"mode": mode, "parallel": parallel,
                         "train_steps": statistics.median(steps) if steps else None,
                         "uplift": round(statistics.median(r["reward"] for r in results), 4),
                         "wall_s": statistics.median(r["wall_s"] for r in results),
                         "budget_used_s": statistics.median(r["budget_used_s"] for r in results)})
    by_mode = {}
    for mode in config.modes.split(","):
        uplifts = [row["uplift"] for row in rows if row["mode"] == mode]
        steps = [row["train_steps"] for row in rows if row["mode"] == mode and row["train_steps"] is not None]
        by_mode[mode] = {"max_abs_delta_uplift": round(max(uplifts) - min(uplifts), 4),
                         "train_steps_range": [min(steps), max(steps)] if steps else None}
    print_table("Deadline-based agent on PTB/math-v0, episodes sharing this machine",
                ["mode", "parallel", "train_steps", "uplift", "wall_s", "budget_used_s"],
                [[row[key] for key in ("mode", "parallel", "train_steps", "uplift", "wall_s", "budget_used_s")]
                 for row in rows])
    for mode, summary in by_mode.items():
        print(f"{mode}: max_abs_delta_uplift {summary['max_abs_delta_uplift']}, training steps "
              f"{summary['train_steps_range']}")
    results = {"rows": rows, "by_mode": by_mode, "episodes": episodes}
    write_results(config.name, config, results, quick=quick, results_dir=config.results_dir, machine_info=info)
    return results


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
