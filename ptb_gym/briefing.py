"""The agent's briefing: TASK.md, which is also the observation `reset` returns."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ptb_gym import budget as budget_module
from ptb_gym.config import EnvConfig
from ptb_gym.envs.task import Task


def task_md(task: Task, config: EnvConfig, tool_schemas: Sequence[dict[str, Any]], base_model: Path) -> str:
    tools = "\n".join(f"- `{s['function']['name']}`: {s['function']['description'].splitlines()[0]}"
                      for s in tool_schemas)
    quota = f"{config.disk_quota_bytes / 1024**3:.1f} GiB"
    extra = "".join(f"\n- `{path}` (described above)." for path in task.public_files())
    return f"""# Task: {task.title}

{task.goal}

## Workspace
- `base_model/`: the base model to post-train (read-only; load it with transformers `from_pretrained`).
- `data/train.jsonl` ({config.train_size} items) and `data/dev.jsonl` ({config.dev_size} items).{extra}
- Write anything else anywhere in the workspace (at most {quota} in all). Save your final model to
  `final_model/` with `save_pretrained` (safetensors), or a LoRA adapter there, then call `submit`.

## Budget and rules
- Budget: {config.budget_s:.0f} s of {budget_module.describe(config.budget_mode, config.budget_cpu_cores)}; at most
  {config.max_steps} tool calls.{_wall_limit(config)} When the budget runs out, `final_model/` is scored.
- The score is the accuracy on a hidden test split (drawn in secret for this episode, never in the workspace)
  under the harness above, normalized: 0 = the base model, 1 = the reference post-training.
- Commands run offline in a sandbox. The submission must be the base model post-trained (same architecture
  and tokenizer, every weight tensor descending from the base's), saved with safetensors, as regular files (no
  links). Training on test items is detected and scores 0, and so is a workspace the check cannot read
  (archives too large or corrupt, special files): delete what you do not need.

## Machine
{machine(config, base_model)}

## Tools
{tools}

An action is one tool call: {{"tool": "<name>", "arguments": {{...}}}}, its JSON string, or an OpenAI tool call.
"""


def machine(config: EnvConfig, base_model: Path) -> str:
    """What an agent may rightly know of where it trains: hardware, libraries, the tokenizer's special tokens."""
    device = training_device(config.device)
    versions = ", ".join(f"{name} {_version(name)}" for name in ("torch", "transformers", "peft", "trl", "datasets"))
    gpu = "a CUDA GPU" if device.startswith("cuda") else "no GPU"
    return (f"- Hardware: {os.cpu_count()} CPU cores, {gpu}; training runs on `{device}`. {_sharing(config)}\n"
            f"- Python libraries in the sandbox: {versions}; no internet.\n"
            f"- {tokenizer_facts(base_model)}")


def _sharing(config: EnvConfig) -> str:
    if config.budget_mode == "cpu":
        threads = os.environ.get("OMP_NUM_THREADS") or "1"
        return (f"Jobs that run at the same\n  time share the cores, and each is charged the CPU time it uses "
                f"(threads that wait use none). Commands\n  run with OMP_NUM_THREADS={threads} (torch's threads) "
                "unless they set it.")
    if config.budget_mode == "compute":
        return "Jobs that run at the same\n  time share it, and time when several run at once is charged once."
    return "Jobs that run at the same\n  time share it."


def _wall_limit(config: EnvConfig) -> str:
    if config.budget_mode != "cpu" or config.wall_limit_s is None:
        return ""
    return (f" Waiting costs no budget, but the episode\n  also ends after {config.wall_limit_s:.0f} s of wall-clock "
            "time.")


def training_device(device: str) -> str:
    """`checkpoints.resolve_device` without importing torch, which the env process never loads: a visible NVIDIA
    device node is what `torch.cuda.is_available()` needs."""
    if device != "auto":
        return device
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1")
    return "cuda" if not hidden and glob.glob("/dev/nvidia[0-9]*") else "cpu"


def tokenizer_facts(base_model: Path) -> str:
    """The base tokenizer's special tokens, whether it adds a bos token, and whether it has a chat template."""
    try:
        from tokenizers import Tokenizer

        config = json.loads((base_model / "tokenizer_config.json").read_text())
        tokenizer = Tokenizer.from_file(str(base_model / "tokenizer.json"))
    except Exception:  # a hub id or an unusual tokenizer: the agent reads base_model/ itself
        return "Tokenizer: see `base_model/`."

    def token(name: str) -> str:
        return f"`{config[name]}`" if isinstance(config.get(name), str) else "none"

    bos = tokenizer.token_to_id(config["bos_token"]) if isinstance(config.get("bos_token"), str) else None
    adds_bos = bos is not None and tokenizer.encode("1").ids[:1] == [bos]
    chat = config.get("chat_template") or (base_model / "chat_template.jinja").exists()
    return (f"Tokenizer: eos {token('eos_token')}, bos {token('bos_token')} "
            f"({'prepended' if adds_bos else 'not prepended'} when encoding), pad {token('pad_token')}; "
            f"{'a' if chat else 'no'} chat template.")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "(not installed)"
