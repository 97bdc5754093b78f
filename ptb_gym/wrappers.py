"""Gymnasium wrappers for training policies on ptb-gym.

`RetryInfrastructureFailures` keeps the env's own failures out of the rewards a policy learns from;
`PostTrainingDecisions` gives the env numeric actions and observations, for classic RL libraries.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

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


class PostTrainingDecisions(gym.Wrapper[np.ndarray, np.ndarray, str, str], gym.utils.RecordConstructorArgs):
    """A ptb-gym env as classic RL sees one: each action is a post-training decision, each observation a few
    numbers, so that a Stable-Baselines3 or CleanRL policy can drive it. Nothing is scored here: a decision is
    played as the env's own tool calls, and the reward is the env's.

    The action is `MultiDiscrete([formats, learning rates, steps, adapters, 2])`, one index per component:

    0. the training data: the data script of one of the task's recipes (`Task.recipes`; `self.formats` names
       them by the recipes that use them, `reference` and `naive` for `PTB/math-v0`);
    1. the peak learning rate, from `learning_rates`;
    2. the optimizer steps, from `max_steps`;
    3. the weights trained, from `lora_ranks`: 0 fine-tunes all of them, `r` trains a LoRA adapter of rank `r`;
    4. when to stop: 1 submits the model just trained, which ends the episode; 0 leaves it open for another
       decision, whose model replaces this one.

    A decision writes and runs the format's data script, removes the previous `final_model/`, trains the base
    model into `final_model/` with the `train` tool, waits for the job, evaluates `final_model` on `dev_items`
    dev items and, when it stops, submits it (the base model, if training failed). The env ends the episode
    too when the budget runs out (truncation): then it scores `final_model/`, as trained so far (the train
    tool stops and saves before the budget's end).

    The observation is a float32 `Box` of `OBSERVATION`: the budget left (fraction), whether a trained model
    exists (0 or 1), its dev score under the task's primary harness, and its last training loss (clipped to
    `MAX_LOSS`); zeros until a model is trained. The reward is the env's: 0 until the episode ends, then the
    normalized uplift of the scored model. `info` is the last tool call's (the final one has `scores`, `uplift`,
    `failure`, `valid`), with `info["decision"]`, what the action stood for (`decode`). Actions outside the space
    raise `PTBError`: a policy samples from the space, so one is a bug of the trainer, not a choice to learn from.
    """

    OBSERVATION = ("budget_left", "has_model", "dev_score", "train_loss")
    MAX_LOSS = 10.0

    def __init__(self, env: gym.Env, learning_rates: tuple[float, ...] = (3e-4, 1e-3, 3e-3),
                 max_steps: tuple[int, ...] = (20, 40, 80), lora_ranks: tuple[int, ...] = (0, 16),
                 dev_items: int = 50):
        gym.utils.RecordConstructorArgs.__init__(self, learning_rates=learning_rates, max_steps=max_steps,
                                                 lora_ranks=lora_ranks, dev_items=dev_items)  # env.spec remakes it
        super().__init__(env)
        task = getattr(env.unwrapped, "task", None)
        if not hasattr(env.unwrapped, "episode") or task is None:
            raise PTBError(f"PostTrainingDecisions wraps a ptb-gym env (PTB/...), got {env.unwrapped!r}.")
        scripts: dict[tuple[str, str], list[str]] = {}
        for name, recipe in task.recipes.items():
            scripts.setdefault((recipe.data_script, recipe.data), []).append(name)
        if not scripts:
            raise PTBError(f"Task {task.name!r} has no recipes, so there is no data format to choose from.")
        for name, grid in (("learning_rates", learning_rates), ("max_steps", max_steps), ("lora_ranks", lora_ranks)):
            if not grid:
                raise PTBError(f"{name} must list at least one value, got {grid!r}.")
        self.formats = ["+".join(names) for names in scripts.values()]
        self._scripts = list(scripts)
        self.learning_rates, self.max_steps, self.lora_ranks = tuple(learning_rates), tuple(max_steps), tuple(lora_ranks)
        self.dev_items = dev_items
        self.primary_harness = task.primary_harness
        self.action_space = gym.spaces.MultiDiscrete(
            [len(self.formats), len(self.learning_rates), len(self.max_steps), len(self.lora_ranks), 2])
        self.observation_space = gym.spaces.Box(0.0, np.array([1.0, 1.0, 1.0, self.MAX_LOSS], dtype=np.float32),
                                                dtype=np.float32)
        self._model: dict[str, float] | None = None
        self._budget: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = self.env.reset(seed=seed, options=options)
        self._model, self._budget = None, info["budget"]
        return self._observation(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        decision = self.decode(action)
        script = self._scripts[self.formats.index(decision["format"])][0]
        reward, terminated, truncated, info = self._train(script, decision["train"])
        if decision["submit"] and not (terminated or truncated):
            _, reward, terminated, truncated, info = self._call(
                "submit", checkpoint="final_model" if self._model else "base_model")
        return self._observation(), reward, terminated, truncated, {**info, "decision": decision}

    def decode(self, action: Any) -> dict[str, Any]:
        """What an action stands for: the data format, the `train` tool's arguments, and whether to submit."""
        index = np.asarray(action)
        if (index.shape != self.action_space.shape or not np.issubdtype(index.dtype, np.integer)
                or (index < 0).any() or (index >= self.action_space.nvec).any()):
            raise PTBError(f"The action must be in {self.action_space}: an index per component (data format, "
                           f"learning rate, steps, adapter, stop) below {self.action_space.nvec.tolist()}, got "
                           f"{action!r}.")
        data, rate, steps, rank, stop = (int(i) for i in index)
        train = {"data": self._scripts[data][1], "output_dir": "final_model",
                 "learning_rate": self.learning_rates[rate], "max_steps": self.max_steps[steps]}
        if self.lora_ranks[rank]:
            train.update(lora=True, lora_rank=self.lora_ranks[rank])
        return {"format": self.formats[data], "train": train, "submit": bool(stop)}

    def _train(self, script: str, arguments: dict[str, Any]) -> tuple[float, bool, bool, dict[str, Any]]:
        """Data, training and the dev evaluation as tool calls; stops at the first that fails or ends the episode."""
        self._model = None  # the run removes the previous final_model/
        calls = [("write_file", {"path": "make_data.py", "content": script}),
                 ("run", {"command": "rm -rf final_model && python make_data.py"}), ("train", arguments)]
        for tool, tool_arguments in calls:
            _, reward, terminated, truncated, info = self._call(tool, **tool_arguments)
            if terminated or truncated or "error" in info or info.get("exit_code", 0) != 0:
                return reward, terminated, truncated, info
        job = info["job"]
        while job["state"] == "running":
            _, reward, terminated, truncated, info = self._call("wait", job_id=job["id"], timeout_s=600)
            if terminated or truncated or "job" not in info:
                return reward, terminated, truncated, info
            job = info["job"]
        if job["state"] != "succeeded":
            return reward, terminated, truncated, info
        losses = info.get("loss_curve") or [{"loss": self.MAX_LOSS}]
        _, reward, terminated, truncated, info = self._call("evaluate", checkpoint="final_model", limit=self.dev_items)
        if "dev_scores" in info:
            self._model = {"dev_score": info["dev_scores"][self.primary_harness]["score"],
                           "train_loss": losses[-1]["loss"]}
        return reward, terminated, truncated, info

    def _call(self, tool: str, **arguments: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        step = self.env.step({"tool": tool, "arguments": arguments})
        self._budget = step[4].get("budget", self._budget)
        return step

    def _observation(self) -> np.ndarray:
        budget = self._budget
        left = budget["remaining_s"] / budget["limit_s"] if budget.get("limit_s") else 0.0
        model = self._model or {"dev_score": 0.0, "train_loss": 0.0}
        values = [left, float(self._model is not None), model["dev_score"], min(model["train_loss"], self.MAX_LOSS)]
        return np.clip(np.array(values, dtype=np.float32), self.observation_space.low, self.observation_space.high)
