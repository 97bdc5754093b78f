"""The learning curve of `examples/rl_policy.py`: does a classic RL policy's mean reward rise on ptb-gym?

    python benchmarks/rl_learning_curve.py          # -> results/rl_learning_curve.json and .png
    python benchmarks/rl_learning_curve.py --quick  # 2 iterations of 2 episodes, 2-step trainings (smoke test)

It trains the example's policy through `PostTrainingDecisions` on `PTB/math-v0` (the embedded tier: `ptb-tiny`,
CPU) with the example's small preset (a budget of `budget_s` compute seconds, `test_size` hidden test items,
`dev_size` dev items). First, in the same run, it plays the obvious alternative: a uniform random policy over
the same action space, on `baseline_episodes` seeds (the policy also starts uniform, so its first iteration is
that policy too). At the end the learned policy, its most likely action at every decision (greedy), replays
the random policy's seeds. Reported: the mean reward of every iteration, of the random and of the greedy
policy, and their ratio. Episodes run `num_envs` at a time, one torch thread each (`OMP_NUM_THREADS=1`
unless set).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import REPO, machine, parse_config, print_table, write_results


@dataclass(frozen=True)
class Config:
    iterations: int = 6
    """Policy updates."""
    episodes: int = 8
    """Episodes per update."""
    num_envs: int = 2
    """Episodes played at a time."""
    baseline_episodes: int = 8
    """Episodes of the random policy, whose seeds the greedy policy replays."""
    seed: int = 0
    budget_s: float = 120.0
    test_size: int = 200
    dev_size: int = 50
    max_steps: str = "20,40,80"
    """The training steps a decision chooses from."""
    lora_ranks: str = "0"
    """The adapters a decision chooses from (0: all weights; "0,16" adds a LoRA adapter of rank 16)."""
    name: str = "rl_learning_curve"
    results_dir: str = ""


QUICK = {"iterations": 2, "episodes": 2, "baseline_episodes": 2, "test_size": 16, "dev_size": 8, "max_steps": "2", "budget_s": 30.0}


def main(config: Config, quick: bool = False) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by the training jobs (the sandbox passes it through)
    example = _load_example()
    info_machine = machine()
    args = example.Args(seed=config.seed, iterations=config.iterations, episodes=config.episodes,
                        num_envs=config.num_envs, budget_s=config.budget_s, test_size=config.test_size,
                        dev_size=config.dev_size, max_steps=tuple(int(s) for s in config.max_steps.split(",")),
                        lora_ranks=tuple(int(r) for r in config.lora_ranks.split(",")))
    started = time.perf_counter()
    envs = [example.make_env(args) for _ in range(args.num_envs)]
    try:
        seeds = [10**8 + i for i in range(config.baseline_episodes)]
        nvec = envs[0].action_space.nvec
        random_episodes = example.play_batch(envs, lambda seed: _uniform(nvec, seed), seeds)
        print(f"random policy: mean reward {_mean(random_episodes):+.3f} over {len(random_episodes)} episodes")
        policy, history = example.train(args, envs)
        greedy_episodes = example.play_batch(envs, lambda seed: example.greedy(policy), seeds)
        print(f"learned policy (greedy): mean reward {_mean(greedy_episodes):+.3f}")
    finally:
        for env in envs:
            env.close()
    wall = time.perf_counter() - started

    every = random_episodes + greedy_episodes + [e for record in history for e in record["episodes"]]
    random_mean, greedy_mean = _mean(random_episodes), _mean(greedy_episodes)
    curve = [{"iteration": r["iteration"], "mean_reward": r["mean_reward"], "rewards": [e["reward"] for e in r["episodes"]],
              "first_decision_now": r["first_decision_now"], "episodes": r["episodes"]} for r in history]
    results = {
        "env": {"id": args.env_id, "tier": "embedded tier: ptb-tiny on CPU", "budget_s": args.budget_s,
                "budget_mode": "compute", "test_size": args.test_size, "dev_size": args.dev_size,
                "train_size": args.train_size},
        "action_space": {"nvec": envs[0].action_space.nvec.tolist(), "formats": envs[0].formats,
                         "learning_rates": list(envs[0].learning_rates), "max_steps": list(envs[0].max_steps),
                         "lora_ranks": list(envs[0].lora_ranks)},
        "curve": curve,
        "random": {"mean_reward": random_mean, "episodes": random_episodes},
        "greedy": {"mean_reward": greedy_mean, "episodes": greedy_episodes},
        "last_iteration_mean": curve[-1]["mean_reward"],
        "greedy_over_random": greedy_mean / random_mean if random_mean > 0 else None,
        "last_iteration_over_random": curve[-1]["mean_reward"] / random_mean if random_mean > 0 else None,
        "episodes": len(every), "invalid_episodes": sum(not e["valid"] for e in every),
        "episode_s": statistics.median(e["seconds"] for e in every), "wall_s": wall,
    }
    rows = [[f"iteration {r['iteration']}", r["mean_reward"], len(r["rewards"]), r["first_decision_now"]] for r in curve]
    rows += [["random policy", random_mean, len(random_episodes), "uniform over the action space"],
             ["learned policy, greedy", greedy_mean, len(greedy_episodes), " -> ".join(greedy_episodes[0]["decisions"])]]
    print_table(f"{args.env_id}, {results['env']['tier']}, budget {args.budget_s:.0f} s, {args.test_size} test items: "
                f"mean reward (normalized uplift)", ["policy", "mean reward", "episodes", "decisions"], rows)
    ratio = results["greedy_over_random"]
    print(f"\nlearned (greedy) / random: {'-' if ratio is None else f'{ratio:.1f} x'}; {len(every)} episodes "
          f"(median {results['episode_s']:.0f} s), {wall / 60:.1f} min")
    path = write_results(config.name, config, results, quick=quick, results_dir=config.results_dir or None,
                         machine_info=info_machine)
    print(f"wrote {path} and {_plot(results, path.with_suffix('.png'))}")
    return results


def _load_example():
    spec = importlib.util.spec_from_file_location("rl_policy", REPO / "examples" / "rl_policy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rl_policy"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _uniform(nvec, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    return lambda _: np.array([rng.integers(n) for n in nvec])


def _mean(episodes: list[dict]) -> float:
    valid = [e["reward"] for e in episodes if e["valid"]]
    return statistics.fmean(valid) if valid else float("nan")


def _plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = results["curve"]
    iterations = [r["iteration"] for r in curve]
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for r in curve:
        axes.scatter([r["iteration"]] * len(r["rewards"]), r["rewards"], s=10, color="tab:blue", alpha=0.3)
    axes.plot(iterations, [r["mean_reward"] for r in curve], marker="o", color="tab:blue", label="policy (mean)")
    axes.axhline(results["random"]["mean_reward"], linestyle="--", color="tab:gray", label="uniform random policy")
    axes.axhline(results["greedy"]["mean_reward"], linestyle=":", color="tab:green", label="learned policy, greedy")
    env = results["env"]
    axes.set_title(f"{env['id']}, {env['tier']}, budget {env['budget_s']:.0f} s, {env['test_size']} test items",
                   fontsize=9)
    axes.set_xticks(iterations)
    axes.set_xlabel("iteration (policy update)")
    axes.set_ylabel("reward (normalized uplift)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
