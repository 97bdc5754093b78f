"""Gymnasium wrappers for training policies on ptb-gym.

`RetryInfrastructureFailures` keeps the env's own failures out of the rewards a policy learns from.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from ptb_gym.errors import PTBError


class RetryInfrastructureFailures(gym.Wrapper[str, str, str, str]):
    """Score an episode again when the env, not the agent, failed to score it; mask the ending if it still fails.

    An episode can end without a true reward when the env fails rather than the agent (the verifier dies while it
    generates, a bug of ptb-gym raises while scoring): then `info["failure"]["kind"] == "infrastructure"`,
    `info["valid"] is False` and the reward is 0.0, which says nothing about the policy's work. With this wrapper:

    1. **The model is scored again**, up to `max_retries` more times, inside the ending step: the same checkpoint
       (the submission, or `final_model/`), the same secret test split, the same greedy decoding, so a retry that
       works gives the reward the first attempt would have given. Nothing is replayed and nothing the policy did
       is undone. The step is then the ending the env gives (reward, `terminated`/`truncated`, info).
    2. **An ending that still fails is masked as a truncation**: the terminal observation, reward 0.0,
       `terminated=False`, `truncated=True` (`info["valid"]` stays False). In Gymnasium's terms the episode was
       cut off by something outside the MDP, as by a time limit, rather than ending in a terminal state: a
       value-based or actor-critic learner bootstraps the last step from its value estimate instead of learning a
       return of 0, and a trainer that drops invalid episodes (`info["valid"] is False`) drops it.

    Every ending step's info has `info["retry"] = {"attempts": n, "failures": [...], "masked": bool}`: scorings
    run (0 when there was no model to score), the infrastructure failures met (the retried ones, then the last
    one if it failed too), whether the ending was masked. Other steps pass through unchanged; the trainer resets
    as usual after an ending.

    Why not re-run the episode (`reset` with the same seed, the same actions): the actions were the policy's
    answers to observations that a new run (training is nondeterministic) would not reproduce, the run would cost
    the whole episode's compute again, and a reset inside `step` breaks the Gymnasium contract.

    Only infrastructure failures are retried or masked, and only what the agent cannot cause is classified as one
    (`ptb_gym.outcome`): a checkpoint that does not load, crashes or stalls the verifier while it is read, a
    workspace the contamination scan cannot read, a full disk or a killed job is the agent's (`agent`,
    `integrity`, `budget`), so a policy cannot turn its bad episode into a retry or a masked ending; and a retry
    scores the same model on the same test split, so it is no second draw of the test set either.
    """

    def __init__(self, env: gym.Env, max_retries: int = 2):
        super().__init__(env)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise PTBError(f"max_retries must be a non-negative integer, got {max_retries!r}.")
        if not hasattr(env.unwrapped, "episode"):
            raise PTBError(f"RetryInfrastructureFailures wraps a ptb-gym env (PTB/...), got {env.unwrapped!r}.")
        self.max_retries = max_retries

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        self.env.unwrapped.episode.scoring_retries = self.max_retries
        return observation, info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        if not (terminated or truncated):
            return observation, reward, terminated, truncated, info
        retried = list(info.get("retried_failures", []))
        attempts = len(retried) + 1 if info.get("checkpoint") is not None else 0  # no model, no scoring
        masked = info.get("valid") is False
        if masked:
            retried.append(info["failure"])
            reward, terminated, truncated = 0.0, False, True
        info = {**info, "retry": {"attempts": attempts, "failures": retried, "masked": masked}}
        return observation, reward, terminated, truncated, info
