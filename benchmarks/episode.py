"""The default episode with the scripted agent: its wall time, and the share of it that is the env's overhead.

    python benchmarks/episode.py             # PTB/math-v0 as gym.make gives it, scripted agent -> results/episode.json
    python benchmarks/episode.py --quick     # tiny splits and a few training steps (smoke test)

The scripted agent plays the reference recipe (800 SFT steps of batch 16 through the `train` tool, a dev
evaluation, `submit`), as `ptb-gym run PTB/math-v0 --agent scripted` does. Compute is what the recipe cannot do
without: the training loop (the `Trainer`'s `train_runtime`, from the job's log) and greedy generation in the
dev and final evaluations (time inside `ptb_gym.generation.generate`, in the verifier process, which reports it). Everything else is the env's overhead:
reset, the tool calls, the training job's process start (interpreter, imports, model and data loading) and
saving, loading checkpoints, integrity checks, scoring, and the time between a job's end and the env noticing it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from common import machine, parse_config, print_table, write_results

METRICS = "PTB_METRICS "


@dataclass(frozen=True)
class Config:
    """Which episode to play."""

    env_id: str = "PTB/math-v0"
    agent: str = "scripted"
    """A baseline agent: `scripted` (the reference recipe) or `naive`."""
    seed: int = 0
    sandbox: str = "auto"
    train_steps: int = 0
    """Training steps of the recipe (0: the agent's own, 800 for the scripted agent)."""
    options: str = ""
    """More env options as a JSON object, e.g. '{"test_size": 200}' (default: the env's defaults)."""
    name: str = "episode"
    results_dir: str = ""


QUICK = {"train_steps": 6, "options": '{"train_size": 64, "dev_size": 8, "test_size": 16}'}


def main(config: Config, quick: bool = False) -> dict:
    import gymnasium as gym
    from ptb_gym.baselines import make_agent

    import ptb_gym

    gym.register_envs(ptb_gym)
    info_machine = machine()
    generate_s: dict[str, float] = {}
    agent_kwargs = {"max_steps": config.train_steps} if config.train_steps else {}
    options = {"sandbox": config.sandbox, **(json.loads(config.options) if config.options else {})}
    steps: list[dict] = []
    started = time.perf_counter()
    env = gym.make(config.env_id, **options)
    made = time.perf_counter()
    agent = make_agent(config.agent, **agent_kwargs)
    observation, info = env.reset(seed=config.seed)
    reset_done = time.perf_counter()
    agent.reset(observation, info)
    done, job_runtime = False, None
    while not done:
        action = agent.act(observation, info)
        step_started = time.perf_counter()
        observation, reward, terminated, truncated, info = env.step(action)
        steps.append({"tool": action["tool"], "seconds": time.perf_counter() - step_started})
        done = terminated or truncated
        if info.get("verifier_seconds"):
            generate_s[action["tool"]] = generate_s.get(action["tool"], 0.0) + info["verifier_seconds"]["generation"]
        if info.get("job", {}).get("kind") == "train":
            job_runtime, job_state = info["job"]["runtime_s"], info["job"]["state"]
            log_path = Path(env.unwrapped.episode.root) / info["job"]["log"]
            job_log = log_path.read_text(errors="replace")
    episode_done = time.perf_counter()
    sandbox = env.unwrapped.episode.sandbox.name
    env.close()
    closed = time.perf_counter()

    if job_state != "succeeded":
        raise RuntimeError(f"the training job ended {job_state}; its log ends with:\n{job_log[-3000:]}")
    train_runtime = _train_runtime(job_log)
    wall = episode_done - made  # reset and every step: the episode itself
    tools: dict[str, float] = {}
    for step in steps:
        tools[step["tool"]] = tools.get(step["tool"], 0.0) + step["seconds"]
    generation = sum(generate_s.values())
    compute = train_runtime + generation
    overhead = wall - compute
    parts = {
        "reset": reset_done - made,
        "training job: process start, imports, data, saving": job_runtime - train_runtime,
        "training loop (compute)": train_runtime,
        "train/wait steps beyond the job": tools.get("train", 0) + tools.get("wait", 0) - job_runtime,
        "dev evaluation: generation (compute)": generate_s.get("evaluate", 0.0),
        "dev evaluation: the rest": tools.get("evaluate", 0.0) - generate_s.get("evaluate", 0.0),
        "final evaluation: generation (compute)": generate_s.get("submit", 0.0),
        "final evaluation: the rest (integrity, loading, scoring)": tools.get("submit", 0.0) - generate_s.get("submit", 0.0),
        "other steps": sum(v for k, v in tools.items() if k not in ("train", "wait", "evaluate", "submit")),
    }
    results = {
        "wall_s": wall, "compute_s": compute, "overhead_s": overhead, "overhead_share": overhead / wall,
        "training_loop_s": train_runtime, "generation_s": generation, "training_job_s": job_runtime,
        "make_s": made - started, "close_s": closed - episode_done, "sandbox": sandbox, "reward": reward,
        "scores": {k: v.get("score") for k, v in info.get("scores", {}).items()}, "failure": info.get("failure"),
        "budget_used_s": info["budget"]["used_s"], "steps": len(steps), "parts_s": parts,
        "target": {"wall_max_s": 300, "overhead_share_max": 0.05,
                   "met": wall < 300 and overhead / wall < 0.05},
    }
    rows = [[name, seconds, seconds / wall] for name, seconds in parts.items()]
    rows.append(["episode (reset to the last step)", wall, 1.0])
    print_table(f"{config.env_id} with the {config.agent} agent, seed {config.seed} (sandbox {sandbox}): "
                f"reward {reward:+.3f}, {len(steps)} steps", ["part", "seconds", "share"], rows)
    print(f"\nwall {wall:.1f} s (target < 300 s); overhead {overhead:.1f} s = {overhead / wall:.1%} of it "
          f"(target < 5%); compute: training loop {train_runtime:.1f} s, generation {generation:.1f} s")
    path = write_results(config.name, config, results, quick=quick, results_dir=config.results_dir or None,
                         machine_info=info_machine)
    print(f"wrote {path}")
    return results


def _train_runtime(log: str) -> float:
    """The Trainer's `train_runtime` (its training loop), from the metric lines of the job's log."""
    for line in reversed(log.splitlines()):
        if line.startswith(METRICS):
            record = json.loads(line[len(METRICS):])
            if "train_runtime" in record:
                return float(record["train_runtime"])
    raise RuntimeError(f"no train_runtime in the training job's log:\n{log[-2000:]}")


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
