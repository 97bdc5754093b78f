"""Best-of-N at one step: branch an episode into N learning rates, keep the best on dev, submit only that one.

    python examples/best_of_n.py [--train-steps 150] [--learning-rates 3e-4 1e-3 3e-3]

The data is written once; a snapshot is taken there (`env.unwrapped.snapshot()`), and each branch is restored
from it (`env.unwrapped.restore(snapshot)`): the same workspace, budget used and hidden test split, without
paying for the steps before it again. Each branch trains, evaluates on dev, and is snapshotted in turn; the
branch with the best dev score is restored once more (a fork of a fork) and submitted. Only dev scores choose:
the hidden test split scores one model, as it would in a real episode.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym

import ptb_gym

gym.register_envs(ptb_gym)


def main(train_steps: int = 150, learning_rates: tuple[float, ...] = (3e-4, 1e-3, 3e-3), **options) -> dict:
    env = gym.make("PTB/math-v0", **options)
    _, info = env.reset(seed=0)

    def act(tool: str, **arguments):
        observation, reward, _, _, info = env.step({"tool": tool, "arguments": arguments})
        if "error" in info:
            raise RuntimeError(f"{tool} failed: {info['error']}")
        return observation, reward, info

    with open(f"{info['workspace']}/data/train.jsonl") as split:
        train = [json.loads(line) for line in split]
    act("write_data", path="data/sft.jsonl", records=[
        {"prompt": f"Question: {r['question']}\nAnswer:", "completion": f" {r['solution']} #### {r['answer']}"}
        for r in train])
    branch_point = env.unwrapped.snapshot()
    print(f"branch point: after step {branch_point.step}, workspace {branch_point.workspace_hash[:12]}")

    branches = []
    for learning_rate in learning_rates:
        env.unwrapped.restore(branch_point)
        _, _, info = act("train", data="data/sft.jsonl", output_dir="final_model", max_steps=train_steps,
                         learning_rate=learning_rate)
        act("wait", job_id=info["job"]["id"], timeout_s=3600)
        _, _, info = act("evaluate", checkpoint="final_model")
        primary = info["dev_scores"][env.unwrapped.task.primary_harness]["score"]
        branches.append({"learning_rate": learning_rate, "dev": primary, "snapshot": env.unwrapped.snapshot()})
        print(f"branch lr={learning_rate:g}: dev {primary:.1%} (budget used {info['budget']['used_s']:.0f} s)")

    best = max(branches, key=lambda branch: branch["dev"])
    env.unwrapped.restore(best["snapshot"])
    _, reward, info = act("submit", checkpoint="final_model")
    print(f"submitted the lr={best['learning_rate']:g} branch: reward {reward:+.3f} on the hidden test split")
    env.close()
    return {"branches": [{k: v for k, v in b.items() if k != "snapshot"} for b in branches],
            "best": best["learning_rate"], "reward": reward}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3])
    args = parser.parse_args()
    main(args.train_steps, tuple(args.learning_rates))
