"""Cost of the per-step snapshots that make `ptb-gym fork` possible: time and disk per step, and a fork's start.

    python benchmarks/snapshots.py              # writes benchmarks/results/snapshots.json
    python benchmarks/snapshots.py --quick      # a short training run (smoke test)

Plays the scripted agent's reference recipe on `PTB/math-v0` with recording on (a snapshot after every step)
and, after each step, also times the obvious alternative: a full copy of the workspace (`shutil.copytree`).
Reports per step the snapshot's time and the bytes it added to the store against the copy's time and size, the
ratios of the medians and of the totals, and the time to start a fork from the last snapshot against a plain
`reset`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import machine, parse_config, print_table, summary, write_results


@dataclass(frozen=True)
class Config:
    train_steps: int = 200
    """Training steps of the recipe (the reference's schedule otherwise)."""
    forks: int = 5
    """Forks started from the last snapshot (and plain resets, for comparison)."""
    env_id: str = "PTB/math-v0"
    results_dir: str = ""
    """Where the results JSON goes (default: benchmarks/results)."""


QUICK = {"train_steps": 10, "forks": 2}


class FullCopy:
    """The alternative, as an episode observer: copy the whole workspace after every step."""

    def __init__(self, directory: Path):
        self.directory, self.seconds, self.bytes = directory, [], []

    def on_step(self, episode, step) -> None:
        if episode.outcome is not None:
            return
        started = time.perf_counter()
        target = self.directory / f"step-{step.index}"
        shutil.copytree(episode.root, target, symlinks=True)
        self.seconds.append(time.perf_counter() - started)
        self.bytes.append(sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and not p.is_symlink()))
        shutil.rmtree(target)

    def on_finish(self, episode, outcome) -> None:
        pass


def main(config: Config, quick: bool = False) -> dict:
    import gymnasium as gym
    from ptb_gym.baselines.scripted_agent import ScriptedAgent

    import ptb_gym

    gym.register_envs(ptb_gym)
    with tempfile.TemporaryDirectory(prefix="ptb-bench-") as scratch:
        scratch = Path(scratch)
        options = {"record_dir": str(scratch / "runs"), "workdir": str(scratch), "device": "cpu", "test_size": 100}
        env = gym.make(config.env_id, **options)
        agent = ScriptedAgent(max_steps=config.train_steps, wait_chunk_s=10)
        copies = FullCopy(scratch)
        observation, info = env.reset(seed=0)
        env.unwrapped.episode.observers.insert(0, copies)
        agent.reset(observation, info)
        snapshots, done = [], False
        while not done:
            observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
            done = terminated or truncated
            if "snapshot" in info:
                snapshots.append(info["snapshot"])
        recording, last = info["recording"], len(snapshots) - 1
        env.close()

        starts: dict[str, list[float]] = {"reset": [], "fork from the last snapshot": []}
        for _ in range(config.forks):
            for name, reset in (("reset", {"seed": 0}),
                                ("fork from the last snapshot", {"options": {"fork": {"recording": recording, "step": last}}})):
                env = gym.make(config.env_id, **{**options, "record_dir": None})
                started = time.perf_counter()
                env.reset(**reset)
                starts[name].append(time.perf_counter() - started)
                env.close()

    taken = [s for s in snapshots if "seconds" in s]
    snap_s, snap_bytes = [s["seconds"] for s in taken], [s["added_bytes"] for s in taken]
    results = {
        "steps": len(snapshots), "snapshots_taken": len(taken), "train_steps": config.train_steps,
        "snapshot_seconds": summary(snap_s), "full_copy_seconds": summary(copies.seconds),
        "snapshot_bytes_per_step": summary(snap_bytes), "full_copy_bytes_per_step": summary(copies.bytes),
        "total_bytes": {"snapshots": sum(snap_bytes), "full_copies": sum(copies.bytes)},
        "median_time_ratio_copy_over_snapshot": summary(copies.seconds)["median"] / max(summary(snap_s)["median"], 1e-9),
        "total_bytes_ratio_copy_over_snapshot": sum(copies.bytes) / max(sum(snap_bytes), 1),
        "start_seconds": {name: summary(values) for name, values in starts.items()},
    }
    rows = [["snapshot (content-addressed)", summary(snap_s)["median"] * 1e3, summary(snap_s)["p90"] * 1e3,
             summary(snap_bytes)["median"] / 1e6, sum(snap_bytes) / 1e6],
            ["full copy of the workspace", summary(copies.seconds)["median"] * 1e3, summary(copies.seconds)["p90"] * 1e3,
             summary(copies.bytes)["median"] / 1e6, sum(copies.bytes) / 1e6]]
    print_table(f"per step, {len(taken)} steps of the scripted agent ({config.train_steps} training steps)",
                ["", "median ms", "p90 ms", "median MB/step", "total MB"], rows)
    print_table("starting an episode", ["", "median ms", "p90 ms"],
                [[name, summary(v)["median"] * 1e3, summary(v)["p90"] * 1e3] for name, v in starts.items()])
    print(f"\nfull copy / snapshot: {results['median_time_ratio_copy_over_snapshot']:.1f}x the time per step (medians), "
          f"{results['total_bytes_ratio_copy_over_snapshot']:.1f}x the disk over the episode")
    path = write_results("snapshots", config, results, quick=quick, results_dir=config.results_dir or None,
                         machine_info=machine())
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
