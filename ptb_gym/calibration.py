"""Calibration: the recorded base and reference scores that make the reward a normalized uplift.

`ptb-gym calibrate PTB/math-v0` scores the base model on several secret draws of the hidden test split under
every harness, plays the reference recipe (and the naive one, for comparison) as whole episodes with the scripted
agents over several seeds (each episode draws its own secret test split), and writes the means and intervals into
the task's scores file. The recorded scores are expectations over the test distribution, not over one fixed
split, so every episode's own draw is normalized by them; the spread over draws is recorded next to them. The
reward of every later episode is normalized by these numbers, so a change to them changes what rewards mean: bump
the env id.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

def calibrate(env_id: str = "PTB/math-v0", *, seeds: Sequence[int] = (0, 1, 2), recipes: Sequence[str] = ("reference", "naive"),
              draws: int = 5, options: dict[str, Any] | None = None, agent_options: dict[str, Any] | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Scores of the base model and of each recipe (per seed) under every harness of the task.

    `draws` secret test splits score the base model; `options` are env options; `agent_options` override the
    scripted agents' settings (e.g. `max_steps`).
    """
    import secrets

    import gymnasium as gym

    import ptb_gym  # noqa: F401 - registers the ids
    from ptb_gym.baselines import make_agent
    from ptb_gym.checkpoints import resolve_device
    from ptb_gym.evaluation import bootstrap_interval, score_checkpoint

    options = {"budget_s": 3600.0, **(options or {})}  # recipes are scored here, not timed
    env = gym.make(env_id, **options)
    task, config = env.unwrapped.task, env.unwrapped.config
    env.close()
    base_dir = task.embedded_model if config.base_model is None else Path(config.base_model)
    started = time.monotonic()
    base_draws: dict[str, list[float]] = {}
    base_values: dict[str, list[float]] = {}
    for _ in range(max(1, draws)):
        items = task.records("test", config.test_size, seed=secrets.randbits(62))
        result = score_checkpoint(base_dir, base_dir, task, items, device=config.device,
                                  batch_size=config.eval_batch_size, check_lineage=False)
        for harness, score in result.scores.items():
            base_draws.setdefault(harness, []).append(score.score)
            base_values.setdefault(harness, []).extend(score.item_scores)
    log("base model: " + ", ".join(f"{h} {statistics.fmean(v):.1%} (draws {min(v):.1%}-{max(v):.1%})"
                                   for h, v in base_draws.items()) + f" ({time.monotonic() - started:.0f} s)")

    runs: dict[str, list[dict[str, Any]]] = {recipe: [] for recipe in recipes}
    for recipe in recipes:
        for seed in seeds:
            started = time.monotonic()
            env = gym.make(env_id, **options)
            agent = make_agent("scripted", recipe=recipe, **(agent_options or {}))
            observation, info = env.reset(seed=seed)
            agent.reset(observation, info)
            done = False
            while not done:
                observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
                done = terminated or truncated
            env.close()
            if info["failure"]:
                raise RuntimeError(f"{recipe} recipe, seed {seed}: {info['failure']['message']}")
            runs[recipe].append({"seed": seed, "wall_s": round(time.monotonic() - started, 1),
                                 "budget_used_s": info["budget"]["used_s"],
                                 "scores": {h: e["score"] for h, e in info["scores"].items()}})
            log(f"{recipe} seed {seed}: " + ", ".join(f"{h} {s:.1%}" for h, s in runs[recipe][-1]["scores"].items())
                + f" ({runs[recipe][-1]['wall_s']:.0f} s)")

    harnesses: dict[str, dict[str, Any]] = {}
    for harness, values in base_draws.items():
        entry: dict[str, Any] = {"base": statistics.fmean(values), "base_draws": values,
                                 "base_interval": list(bootstrap_interval(base_values[harness]))}
        for recipe, results in runs.items():
            values = [run["scores"][harness] for run in results]
            entry[recipe] = statistics.fmean(values)
            entry[f"{recipe}_seeds"] = values
            entry[f"{recipe}_interval"] = seed_interval(values, config.test_size)
        harnesses[harness] = entry
    return {
        "env_id": env_id, "test_size": config.test_size, "seeds": list(seeds), "draws": draws, "harnesses": harnesses,
        "runs": runs,
        "calibrated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "device": resolve_device(config.device)},
        "command": f"ptb-gym calibrate {env_id} --seeds {' '.join(map(str, seeds))}",
    }


def seed_interval(scores: Sequence[float], n_items: int) -> list[float]:
    """95% interval of a recipe's mean score over seeds: seed-to-seed spread plus test-item sampling noise."""
    mean = statistics.fmean(scores)
    seed_var = statistics.variance(scores) if len(scores) > 1 else 0.0
    item_var = mean * (1 - mean) / n_items
    half = 1.96 * math.sqrt(seed_var / len(scores) + item_var / len(scores))
    return [round(max(0.0, mean - half), 4), round(min(1.0, mean + half), 4)]


def write_scores(result: dict[str, Any], scores_file, model_key: str) -> list[str]:
    """Record a calibration in the task's scores file; returns the harnesses whose scores moved."""
    recorded = json.loads(scores_file.read_text()) if scores_file.exists() else {"models": {}}
    previous = recorded["models"].get(model_key, {})
    moved = [h for h, e in result["harnesses"].items()
             if h in previous and (abs(previous[h]["base"] - e["base"]) > 0.01
                                   or abs(previous[h]["reference"] - e["reference"]) > 0.01)]
    recorded["models"][model_key] = {
        harness: {"base": round(e["base"], 4), "reference": round(e["reference"], 4),
                  **{k: v for k, v in e.items() if k not in ("base", "reference")}}
        for harness, e in result["harnesses"].items()}
    recorded.setdefault("calibrations", {})[model_key] = {k: v for k, v in result.items() if k != "harnesses"}
    scores_file.write_text(json.dumps(recorded, indent=1) + "\n")
    return moved
