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
import os
import platform
import shlex
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def calibrate(env_id: str = "PTB/math-v0", *, seeds: Sequence[int] = (0, 1, 2), recipes: Sequence[str] | None = None,
              draws: int = 5, options: dict[str, Any] | None = None, agent_options: dict[str, Any] | None = None,
              jobs: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Scores of the base model and of each recipe (per seed) under every harness of the task.

    `recipes`: the task's recipes to play (None: all of them); `draws` secret test splits score the base model;
    `options` are env options; `agent_options` override the scripted agents' settings (e.g. `max_steps`); `jobs`
    episodes run at once, each in its own process (give each a core: they are timed by their compute budget).
    """
    import secrets

    import gymnasium as gym

    import ptb_gym  # noqa: F401 - registers the ids
    from ptb_gym.checkpoints import resolve_device
    from ptb_gym.evaluation import bootstrap_interval, score_checkpoint
    from ptb_gym.models import resolve_base_model

    command = shlex.join(["ptb-gym", "calibrate", env_id, "--seeds", *map(str, seeds), "--draws", str(draws),
                          *(["--recipes", *recipes] if recipes is not None else []),
                          *(token for key, value in (options or {}).items()
                            for token in ("-o", f"{key}={value if isinstance(value, str) else json.dumps(value)}"))])
    options = {"budget_s": 3600.0, **(options or {})}  # recipes are scored here, not timed
    env = gym.make(env_id, **options)
    task, config = env.unwrapped.task, env.unwrapped.config
    env.close()
    recipes = list(task.recipes) if recipes is None else list(recipes)
    unknown = [r for r in recipes if r not in task.recipes]
    if unknown:
        raise ValueError(f"{env_id} has no recipe {unknown[0]!r}; its recipes: {', '.join(task.recipes)}")
    base_dir = resolve_base_model(config.base_model or None, task)
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

    plays = [(recipe, seed) for recipe in recipes for seed in seeds]
    runs: dict[str, list[dict[str, Any]]] = {recipe: [] for recipe in recipes}

    def record(recipe: str, run: dict[str, Any]) -> None:
        runs[recipe].append(run)
        log(f"{recipe} seed {run['seed']}: " + ", ".join(f"{h} {s:.1%}" for h, s in run["scores"].items())
            + f" ({run['wall_s']:.0f} s)")

    if jobs <= 1:
        for recipe, seed in plays:
            record(recipe, play(env_id, recipe, seed, options, agent_options))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(play, env_id, recipe, seed, options, agent_options): recipe
                       for recipe, seed in plays}
            for future, recipe in futures.items():
                record(recipe, future.result())
    for results in runs.values():
        results.sort(key=lambda run: run["seed"])

    harnesses: dict[str, dict[str, Any]] = {}
    for harness, values in base_draws.items():
        entry: dict[str, Any] = {"base": statistics.fmean(values), "base_draws": values,
                                 "base_interval": [round(x, 4) for x in bootstrap_interval(base_values[harness])]}
        for recipe, results in runs.items():
            values = [run["scores"][harness] for run in results]
            entry[recipe] = statistics.fmean(values)
            entry[f"{recipe}_seeds"] = values
            entry[f"{recipe}_interval"] = seed_interval(values, config.test_size)
        harnesses[harness] = entry
    return {
        "env_id": env_id, "test_size": config.test_size, "seeds": list(seeds), "draws": draws, "harnesses": harnesses,
        "primary_harness": task.primary_harness, "recipes": recipes, "runs": runs,
        "calibrated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "device": resolve_device(config.device), "cpus": os.cpu_count()},
        "command": command,
    }


def play(env_id: str, recipe: str, seed: int, options: dict[str, Any],
         agent_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One whole episode of a recipe, played by the scripted agent: its scores under every harness."""
    import gymnasium as gym

    import ptb_gym  # noqa: F401 - registers the ids (in a fresh worker process too)
    from ptb_gym.baselines import make_agent, play_episode

    started = time.monotonic()
    env = gym.make(env_id, **options)
    try:
        info = play_episode(env, make_agent("scripted", recipe=recipe, **(agent_options or {})), seed)
    finally:
        env.close()
    if info["failure"]:
        raise RuntimeError(f"{recipe} recipe, seed {seed}: {info['failure']['message']}")
    return {"seed": seed, "wall_s": round(time.monotonic() - started, 1), "budget_used_s": info["budget"]["used_s"],
            "scores": {h: e["score"] for h, e in info["scores"].items()}}


def markdown_table(result: dict[str, Any]) -> str:
    """The calibration as the tables of envs/CALIBRATION.md: per harness, the base model and each recipe (mean over
    seeds, 95% interval), then each recipe's normalized uplift on the primary harness."""
    recipes, primary = result["recipes"], result["primary_harness"]
    seeds = len(result["seeds"])

    def cell(entry: dict[str, Any], name: str) -> str:
        low, high = entry[f"{name}_interval"]
        return f"{entry[name]:.1%} [{low:.1%}-{high:.1%}]"

    lines = ["| harness | base | " + " | ".join(f"{r} ({seeds} seeds)" for r in recipes) + " |",
             "| --- " * (len(recipes) + 2) + "|"]
    for harness, entry in result["harnesses"].items():
        label = f"`{harness}` (primary)" if harness == primary else f"`{harness}`"
        lines.append(f"| {label} | {cell(entry, 'base')} | " + " | ".join(cell(entry, r) for r in recipes) + " |")
    entry = result["harnesses"][primary]
    if "reference" in recipes and entry["reference"] - entry["base"] > 0:
        gap = entry["reference"] - entry["base"]
        lines += ["", "| normalized uplift (primary) | " + " | ".join(recipes) + " |", "| --- " * (len(recipes) + 1) + "|",
                  "| mean [per seed] | " + " | ".join(
                      f"{(entry[r] - entry['base']) / gap:.2f} ["
                      + ", ".join(f"{(v - entry['base']) / gap:.2f}" for v in entry[f"{r}_seeds"]) + "]"
                      for r in recipes) + " |"]
    return "\n".join(lines)


def seed_interval(scores: Sequence[float], n_items: int) -> list[float]:
    """95% interval of a recipe's mean score over seeds: seed-to-seed spread plus test-item sampling noise."""
    mean = statistics.fmean(scores)
    seed_var = statistics.variance(scores) if len(scores) > 1 else 0.0
    item_var = mean * (1 - mean) / n_items
    half = 1.96 * math.sqrt(seed_var / len(scores) + item_var / len(scores))
    return [round(max(0.0, mean - half), 4), round(min(1.0, mean + half), 4)]


def nothing_to_add_to(recipes: Sequence[str], recorded: dict[str, Any] | None, model_key: str) -> str | None:
    """Why a calibration of `recipes` cannot be recorded over `recorded` (the model's recorded scores), or None: one
    without the reference adds to a recorded calibration, and there must be one."""
    if "reference" in recipes or recorded:
        return None
    return (f"no calibration of {model_key} is recorded to add {', '.join(recipes)} to: calibrate with the reference "
            f"recipe first (it defines the reward)")


def write_scores(result: dict[str, Any], scores_file, model_key: str) -> list[str]:
    """Record a calibration in the task's scores file; returns the harnesses whose scores moved.

    A calibration that played the reference replaces the model's record. One that did not adds its recipes to
    the recorded calibration (a strategy beside the ladder), whose base and reference stay: they define the
    reward. Either way a base or reference more than a point from the recorded one has moved."""
    recorded = json.loads(scores_file.read_text()) if scores_file.exists() else {"models": {}}
    previous = recorded["models"].get(model_key, {})
    adds = "reference" not in result["recipes"]
    refusal = nothing_to_add_to(result["recipes"], previous, model_key)
    if refusal:
        raise ValueError(refusal)
    moved = [h for h, e in result["harnesses"].items()
             if h in previous and any(abs(previous[h][k] - e[k]) > 0.01 for k in ("base", "reference") if k in e)]
    calibration = {k: v for k, v in result.items() if k != "harnesses"}
    if adds:
        for harness, e in result["harnesses"].items():
            previous[harness].update({k: v for k, v in e.items() if not k.startswith("base")})
        record = recorded.setdefault("calibrations", {}).setdefault(model_key, {"recipes": [], "runs": {}})
        record["recipes"] = [*record["recipes"], *(r for r in result["recipes"] if r not in record["recipes"])]
        record["runs"].update(result["runs"])
        record.setdefault("added", []).append({k: v for k, v in calibration.items() if k != "runs"})
    else:
        recorded["models"][model_key] = {
            harness: {"base": round(e["base"], 4), "reference": round(e["reference"], 4),
                      **{k: v for k, v in e.items() if k not in ("base", "reference")}}
            for harness, e in result["harnesses"].items()}
        recorded.setdefault("calibrations", {})[model_key] = calibration
    scores_file.write_text(json.dumps(recorded, indent=1) + "\n")
    return moved
