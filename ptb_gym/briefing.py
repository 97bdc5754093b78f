"""The agent's briefing: TASK.md, which is also the observation `reset` returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ptb_gym.config import BUDGET_MODES, EnvConfig
from ptb_gym.envs.task import Task


def task_md(task: Task, config: EnvConfig, tool_schemas: Sequence[dict[str, Any]]) -> str:
    tools = "\n".join(f"- `{s['function']['name']}`: {s['function']['description'].splitlines()[0]}"
                      for s in tool_schemas)
    quota = f"{config.disk_quota_bytes / 1024**3:.1f} GiB"
    return f"""# Task: {task.title}

{task.goal}

## Workspace
- `base_model/`: the base model to post-train (read-only; load it with transformers `from_pretrained`).
- `data/train.jsonl` ({config.train_size} items) and `data/dev.jsonl` ({config.dev_size} items).
- Write anything else anywhere in the workspace (at most {quota} in all). Save your final model to
  `final_model/` with `save_pretrained` (safetensors), or a LoRA adapter there, then call `submit`.

## Budget and rules
- Budget: {config.budget_s:.0f} s of {BUDGET_MODES[config.budget_mode]}; at most {config.max_steps} tool calls.
  When the budget runs out, `final_model/` is scored.
- The score is the accuracy on a hidden test split (drawn in secret for this episode, never in the workspace)
  under the harness above, normalized: 0 = the base model, 1 = the reference post-training.
- Commands run offline in a sandbox. The submission must be the base model post-trained (same architecture
  and tokenizer, every weight tensor descending from the base's), saved with safetensors, as regular files (no
  links). Training on test items is detected and scores 0, and so is a workspace the check cannot read
  (archives too large or corrupt, special files): delete what you do not need.

## Tools
{tools}

An action is one tool call: {{"tool": "<name>", "arguments": {{...}}}}, its JSON string, or an OpenAI tool call.
"""
