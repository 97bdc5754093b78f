"""Many episodes at once: Gymnasium's async vector env with the random baseline agent.

    python examples/vector_envs.py [--num-envs 2] [--steps 10]

Each env runs in its own process with its own workspace and sandbox; observations are the real, current
text of each env (ptb-gym's text space has its own shared-memory transport, so the default
`shared_memory=True` works).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import ptb_gym
from ptb_gym.baselines.random_agent import RandomAgent

gym.register_envs(ptb_gym)


def main(num_envs: int = 2, steps: int = 10, **options) -> list[str]:
    envs = gym.make_vec("PTB/math-v0", num_envs=num_envs, vectorization_mode="async", **options)
    observations, infos = envs.reset(seed=list(range(num_envs)))
    agents = [RandomAgent(seed=i) for i in range(num_envs)]
    for i, agent in enumerate(agents):
        agent.reset(observations[i], {"tools": infos["tools"][i]})
    for step in range(steps):
        actions = np.array([agent.act(observations[i], {}) for i, agent in enumerate(agents)], dtype=object)
        observations, rewards, terminated, truncated, infos = envs.step(actions)
        for i in range(num_envs):
            print(f"step {step} env {i} {actions[i]['tool']:<10} -> {observations[i].splitlines()[0][:70] if observations[i] else ''}")
    envs.close()
    return list(observations)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    main(args.num_envs, args.steps)
