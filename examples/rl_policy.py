"""Classic RL on ptb-gym: a policy learns post-training decisions through `PostTrainingDecisions`.

    python examples/rl_policy.py [--iterations 6] [--episodes 8] [--num-envs 2]

A decision is a data format (one of the task's recipes' data scripts), a learning rate, a number of training
steps, an adapter and whether to submit the model it trains (`PostTrainingDecisions`). CleanRL-style, one file,
plain torch: each iteration plays `episodes` whole episodes of `PTB/math-v0` with the current policy,
`num_envs` at a time (an env per thread: an episode mostly waits for its training job and its
verifier, which are processes of their own), then updates the policy with PPO's clipped objective. An
episode's decisions share its advantage, its reward minus the batch's mean reward: with no critic, as in
GRPO, the episodes of a batch are each other's baseline. The policy (an MLP from the wrapper's observation to
one categorical per action component) starts uniform, so the first iteration plays a uniform random policy.
It prints the mean reward of every iteration; `benchmarks/rl_learning_curve.py` records the curve.

The defaults (120 s of compute budget, 200 hidden test items, 50 dev items, 20 to 80 training steps) keep an
episode within a minute or two on 2 CPU cores, so that the policy can see many: there the mean reward rose from 0.04
to about 0.5 in 6 iterations, within the benchmark's 40-minute run (`benchmarks/results/rl_learning_curve.json`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from queue import Queue
from typing import Any

import gymnasium as gym
import numpy as np

import ptb_gym
from ptb_gym.wrappers import PostTrainingDecisions

gym.register_envs(ptb_gym)


@dataclass
class Args:
    env_id: str = "PTB/math-v0"
    seed: int = 0
    iterations: int = 6
    """Policy updates."""
    episodes: int = 8
    """Episodes played per update."""
    num_envs: int = 2
    """Episodes played at a time."""
    learning_rate: float = 0.03
    """The policy's Adam step size (large: few updates of a small policy)."""
    update_epochs: int = 4
    """Gradient steps on each batch (PPO's clipping keeps them near the policy that played it)."""
    clip_coef: float = 0.3
    entropy_coef: float = 0.01
    reward_scale: float = 0.1
    """Advantages are divided by the batch's reward spread, or by this when the spread is smaller: a batch whose
    rewards differ by test-split noise only (models that learnt nothing) then moves the policy little."""
    budget_s: float = 120.0
    """Compute budget of an episode (the env truncates and scores final_model/ when it runs out)."""
    test_size: int = 200
    """Hidden test items of the final score."""
    dev_size: int = 50
    """Dev items of each decision's evaluation."""
    train_size: int = 5000
    max_steps: tuple[int, ...] = (20, 40, 80)
    """The training steps a decision chooses from."""
    lora_ranks: tuple[int, ...] = (0,)
    """The adapters a decision chooses from (0: all weights). LoRA is left out by default: at these learning rates
    and steps a LoRA adapter of `ptb-tiny` learns nothing (an uplift of 0.006 at rank 16, lr 3e-3, 60 steps), and every choice that
    never pays halves how often a random policy comes upon a rewarded episode."""
    workdir: str | None = None


def make_env(args: Args) -> PostTrainingDecisions:
    env = gym.make(args.env_id, budget_s=args.budget_s, test_size=args.test_size, dev_size=args.dev_size,
                   train_size=args.train_size, workdir=args.workdir)
    return PostTrainingDecisions(env, max_steps=args.max_steps, lora_ranks=args.lora_ranks, dev_items=args.dev_size)


class Policy:
    """An MLP from the observation to one categorical distribution per action component."""

    def __init__(self, observation_size: int, nvec: np.ndarray, seed: int):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.sizes = [int(n) for n in nvec]
        self.net = nn.Sequential(nn.Linear(observation_size, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                 nn.Linear(64, sum(self.sizes)))
        nn.init.zeros_(self.net[-1].weight)  # uniform at the start: the first iteration is a random policy
        nn.init.zeros_(self.net[-1].bias)

    def probabilities(self, observation: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            logits = self.net(torch.as_tensor(observation).unsqueeze(0))[0]
        return [part.softmax(-1).double().numpy() for part in logits.split(self.sizes)]

    def log_prob_and_entropy(self, observations, actions):
        from torch.distributions import Categorical

        parts = [Categorical(logits=logits) for logits in self.net(observations).split(self.sizes, dim=-1)]
        return sum(d.log_prob(actions[:, i]) for i, d in enumerate(parts)), sum(d.entropy() for d in parts)


def sampler(policy: Policy, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    return lambda observation: np.array([rng.choice(len(p), p=p / p.sum()) for p in policy.probabilities(observation)])


def greedy(policy: Policy) -> Callable[[np.ndarray], np.ndarray]:
    return lambda observation: np.array([int(p.argmax()) for p in policy.probabilities(observation)])


def play(env: PostTrainingDecisions, act: Callable[[np.ndarray], np.ndarray], seed: int) -> dict[str, Any]:
    """One episode: its observations, actions and decisions, reward, failure kind and wall time."""
    started = time.perf_counter()
    observation, _ = env.reset(seed=seed)
    episode: dict[str, Any] = {"seed": seed, "observations": [], "actions": [], "decisions": []}
    done = False
    while not done:
        action = act(observation)
        episode["observations"].append(observation)
        episode["actions"].append(action)
        observation, reward, terminated, truncated, info = env.step(action)
        episode["decisions"].append(describe(info["decision"]))
        done = terminated or truncated
    episode.update(reward=float(reward), valid=info.get("valid", True), truncated=truncated,
                   failure=(info.get("failure") or {}).get("kind"), seconds=time.perf_counter() - started)
    return episode


def play_batch(envs: list[PostTrainingDecisions], make_act: Callable[[int], Callable],
               seeds: list[int]) -> list[dict[str, Any]]:
    """The episodes of `seeds`, as many at a time as there are envs (each episode takes a free one)."""
    free: Queue = Queue()
    for env in envs:
        free.put(env)

    def one(seed: int) -> dict[str, Any]:
        env = free.get()
        try:
            return play(env, make_act(seed), seed)
        finally:
            free.put(env)

    pool = ThreadPoolExecutor(len(envs))
    try:
        return list(pool.map(one, seeds))
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, the episodes not yet started are not played


def describe(decision: dict[str, Any]) -> str:
    train = decision["train"]
    adapter = f"LoRA r{train['lora_rank']}" if train.get("lora") else "full"
    return (f"{decision['format']} data, lr {train['learning_rate']:g}, {train['max_steps']} steps, {adapter}, then "
            f"{'submit' if decision['submit'] else 'go on'}")


def train(args: Args, envs: list[PostTrainingDecisions], log: Callable[[str], Any] = print
          ) -> tuple[Policy, list[dict[str, Any]]]:
    """Train a policy on the envs; one record per iteration (its mean reward, its episodes)."""
    import torch

    torch.set_num_threads(1)
    env = envs[0]
    policy = Policy(env.observation_space.shape[0], env.action_space.nvec, args.seed)
    optimizer = torch.optim.Adam(policy.net.parameters(), lr=args.learning_rate)
    history = []
    for iteration in range(args.iterations):
        seeds = [args.seed * 1_000_000 + iteration * 1000 + i for i in range(args.episodes)]
        played = play_batch(envs, lambda seed: sampler(policy, np.random.default_rng(seed)), seeds)
        episodes = [e for e in played if e["valid"]]  # the env's own failures are no reward to learn from
        if not episodes:
            log(f"iteration {iteration}: no valid episode (infrastructure failures), no update")
            continue
        rewards = np.array([e["reward"] for e in episodes])
        advantages = (rewards - rewards.mean()) / max(rewards.std(), args.reward_scale)
        observations = torch.as_tensor(np.array([o for e in episodes for o in e["observations"]]))
        actions = torch.as_tensor(np.array([a for e in episodes for a in e["actions"]]))
        advantage = torch.tensor([a for a, e in zip(advantages, episodes) for _ in e["actions"]], dtype=torch.float32)
        with torch.no_grad():
            old_log_prob, _ = policy.log_prob_and_entropy(observations, actions)
        for _ in range(args.update_epochs):
            log_prob, entropy = policy.log_prob_and_entropy(observations, actions)
            ratio = (log_prob - old_log_prob).exp()
            clipped = ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
            loss = -torch.min(ratio * advantage, clipped * advantage).mean() - args.entropy_coef * entropy.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        first = describe(env.decode(greedy(policy)(episodes[0]["observations"][0])))  # at reset: always the same
        history.append({"iteration": iteration, "mean_reward": float(rewards.mean()), "first_decision_now": first,
                        "episodes": [{k: v for k, v in e.items() if k not in ("observations", "actions")}
                                     for e in played]})
        log(f"iteration {iteration}: mean reward {rewards.mean():+.3f} over {len(episodes)} episodes "
            f"({np.mean([e['seconds'] for e in played]):.0f} s each); most likely first decision now: {first}")
    return policy, history


def main(**overrides: Any) -> list[dict[str, Any]]:
    args = Args(**overrides)
    envs = [make_env(args) for _ in range(args.num_envs)]
    try:
        return train(args, envs)[1]
    finally:
        for env in envs:
            env.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        flag, default = "--" + field.name.replace("_", "-"), field.default
        if isinstance(default, tuple):
            parser.add_argument(flag, type=int, nargs="+", default=default)
        else:
            parser.add_argument(flag, type=str if default is None else type(default), default=default)
    main(**vars(parser.parse_args()))
