"""The recorded base and reference scores are expectations over secret test splits: scored on several secret draws,
the base model and a reference-trained model stay inside the recorded intervals.

    python benchmarks/secret_draws.py             # 5 draws of 1,000 items -> results/secret_draws.json
    python benchmarks/secret_draws.py --quick     # 2 draws of 100 items, 30 training steps (smoke test)

Every episode draws its own hidden test split from a secret seed, so the reward's normalisation (the base and
reference scores in `envs/math/scores.json`) must hold for any draw, not for one fixed split. This plays the
reference recipe once (`ScriptedAgent` through the env, workspace kept), then scores the base model and the
trained model on `draws` fresh secret test splits under every harness, and compares each draw with the recorded
interval: `base_interval` (bootstrap over test items) and `reference_interval` (mean over calibration seeds,
seed spread and item noise). It also records the reference model's lineage statistics (the lowest correlation of
any of its tensors with the base model's), which the lineage threshold is set against. A single reference model is one seed, so its draws may sit at one side of the
interval; the check is that no draw leaves it.
"""

from __future__ import annotations

import secrets
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import machine, parse_config, print_table, write_results


@dataclass(frozen=True)
class Config:
    draws: int = 5
    """Secret test splits to score on."""
    test_size: int = 1000
    """Items per draw (the env's default)."""
    train_steps: int = 0
    """Training steps of the reference recipe (0: the recipe's own)."""
    seed: int = 0
    """Episode seed of the reference run."""
    name: str = "secret_draws"
    """Results file name."""
    results_dir: str = ""
    """Where the results go; empty: benchmarks/results."""


QUICK = {"draws": 2, "test_size": 100, "train_steps": 30}


def main(config: Config, quick: bool = False) -> dict:
    import gymnasium as gym

    import ptb_gym
    from ptb_gym.baselines import make_agent
    from ptb_gym.envs import load_task
    from ptb_gym.evaluation import score_checkpoint

    gym.register_envs(ptb_gym)
    info_machine = machine()
    task = load_task("math-v0")
    recorded = task.scores_for("embedded")
    with tempfile.TemporaryDirectory(prefix="ptb-bench-draws-") as scratch:
        env = gym.make("PTB/math-v0", workdir=scratch, device="cpu")
        agent = make_agent("scripted", **({"max_steps": config.train_steps} if config.train_steps else {}))
        observation, info = env.reset(seed=config.seed)
        agent.reset(observation, info)
        done = False
        while not done:
            observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
            done = terminated or truncated
        if info["failure"]:
            raise RuntimeError(f"the reference episode failed: {info['failure']}")
        lineage = info["integrity"]["lineage"]  # how far the reference recipe moves every tensor from the base
        snapshot = Path(scratch) / "reference_model"
        shutil.copytree(Path(env.unwrapped.episode.root) / "final_model", snapshot)
        env.close()
        models = {"base": task.embedded_model, "reference": snapshot}
        scores: dict[str, dict[str, list[float]]] = {model: {} for model in models}
        for _ in range(config.draws):
            items = task.records("test", config.test_size, seed=secrets.randbits(62))
            for model, path in models.items():
                result = score_checkpoint(path, task.embedded_model, task, items, check_lineage=False)
                for harness, score in result.scores.items():
                    scores[model].setdefault(harness, []).append(score.score)

    rows, table = [], {}
    for harness in (h.name for h in task.harnesses):
        entry = recorded[harness]
        table[harness] = {}
        for model in models:
            values = scores[model][harness]
            interval = entry[f"{model}_interval"]
            inside = all(interval[0] - 1e-9 <= v <= interval[1] + 1e-9 for v in values)
            table[harness][model] = {"draws": values, "mean": statistics.fmean(values), "recorded": entry[model],
                                     "recorded_interval": interval, "all_draws_inside": inside}
            rows.append([harness, model, f"{entry[model]:.1%} [{interval[0]:.1%}-{interval[1]:.1%}]",
                         f"{min(values):.1%}-{max(values):.1%}", f"{statistics.fmean(values):.1%}", inside])
    primary = table[task.primary_harness]
    results = {"draws": config.draws, "test_size": config.test_size, "harnesses": table,
               "reference_lineage": lineage,
               "primary_inside": all(primary[model]["all_draws_inside"] for model in models)}
    print_table(f"PTB/math-v0: base and reference on {config.draws} secret test splits of {config.test_size} items",
                ["harness", "model", "recorded [interval]", "draws (min-max)", "mean", "all inside"], rows)
    print(f"\nthe reference model's lineage: every tensor's correlation with the base >= "
          f"{lineage['min_correlation']:.3f} (median {lineage['median_correlation']:.3f}; threshold "
          f"{lineage['threshold']})")
    path = write_results(config.name, config, results, quick=quick, results_dir=config.results_dir or None,
                         machine_info=info_machine)
    print(f"\nwrote {path}")
    return results


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
