"""Quickstart: one short episode of PTB/math-v0 driven by hand-written tool calls.

    python examples/quickstart.py [--train-steps 100]

It writes SFT data from the train split, trains the embedded base model for a few steps with the `train`
tool, evaluates on dev and submits; the reward is the normalized uplift on the hidden test split.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym

import ptb_gym

gym.register_envs(ptb_gym)


def main(train_steps: int = 100, **options) -> float:
    env = gym.make("PTB/math-v0", **options)
    observation, info = env.reset(seed=0)
    print(observation.splitlines()[0], "| tools:", ", ".join(t["function"]["name"] for t in info["tools"]))

    def act(tool: str, **arguments):
        observation, reward, terminated, truncated, info = env.step({"tool": tool, "arguments": arguments})
        print(f"> {tool}: {observation.splitlines()[0] if observation else ''}")
        return observation, reward, terminated, truncated, info

    train = [json.loads(line) for line in open(f"{info['workspace']}/data/train.jsonl")]
    act("write_data", path="data/sft.jsonl", records=[
        {"prompt": f"Question: {r['question']}\nAnswer:", "completion": f" {r['solution']} #### {r['answer']}"}
        for r in train])
    _, _, _, _, info = act("train", data="data/sft.jsonl", output_dir="final_model", max_steps=train_steps)
    act("wait", job_id=info["job"]["id"], timeout_s=600)
    act("evaluate", checkpoint="final_model")
    observation, reward, terminated, truncated, info = act("submit", checkpoint="final_model")
    print(observation)
    env.close()
    return reward


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=100)
    main(parser.parse_args().train_steps)
