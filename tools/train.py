"""The train tool: the bundled SFT recipe (full fine-tuning or LoRA, `ptb_gym.training`) as a background job.

The job never reads its inputs from the workspace: the data file is copied (through the path gate, bounded) with
the run's config into the episode's `inputs/` directory, outside the workspace and read-only in the sandbox. What
the job trains on is exactly what was checked, and the final contamination scan covers it even if the agent
deletes its data afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from ptb_gym.budget import Budget
from ptb_gym.episode import Episode
from ptb_gym.errors import ToolError
from ptb_gym.protocol import ToolResult, tool
from ptb_gym.records import RecordError, record_kind
from ptb_gym.tools.jobs import describe
from ptb_gym.training import TrainConfig

SAVE_MARGIN_S = 20.0  # budget kept for saving the model when training stops early at the budget's end
MAX_DATA_BYTES = 512 * 1024**2


@tool
def train(
    episode: Episode,
    data: str,
    output_dir: str = "checkpoints/sft",
    lora: bool = False,
    lora_rank: int = 16,
    learning_rate: float = 1e-3,
    max_steps: int = 300,
    batch_size: int = 16,
    max_length: int = 256,
    model: str = "base_model",
    packing: bool = False,
) -> ToolResult:
    """Fine-tune in the background (AdamW, cosine schedule); returns a job id (follow it with wait or job_status).

    Args:
        data: JSONL file of {"prompt", "completion"} records (loss on the completion), {"text"} or {"messages"} records.
        output_dir: Directory the trained model (or LoRA adapter) is saved to, with safetensors.
        lora: Train a LoRA adapter through PEFT instead of all weights.
        lora_rank: LoRA rank (alpha is twice the rank).
        learning_rate: Peak learning rate (cosine schedule with warmup).
        max_steps: Optimizer steps.
        batch_size: Examples per step.
        max_length: Longest tokenized example; longer ones are truncated.
        model: Checkpoint to start from: "base_model" or an earlier output directory.
        packing: Pack examples into rows of max_length tokens (batch_size rows a step, each example attending only to
            itself): many short examples a step at the cost of one. Full fine-tuning of prompt/completion or text
            records only.
    """
    workspace = episode.workspace
    for name, value, low, high in (("max_steps", max_steps, 1, 10**7), ("batch_size", batch_size, 1, 4096),
                                   ("lora_rank", lora_rank, 1, 1024), ("max_length", max_length, 8, 1 << 20)):
        if not low <= value <= high:
            raise ToolError(f"{name} must be between {low} and {high}, got {value}.")
    if packing and lora:
        raise ToolError("packing is for full fine-tuning: set lora=false, or packing=false to train a LoRA adapter.")
    if not 0 < learning_rate < 1:
        raise ToolError(f"learning_rate must be between 0 and 1, got {learning_rate}.")
    model_path = workspace.check(model)
    try:
        os.close(workspace.open_fd(f"{model_path}/config.json"))
    except ToolError:
        raise ToolError(f"{model!r} is not a full checkpoint (no config.json); start from base_model or a full "
                        "fine-tuning output.") from None
    output_path = workspace.check(output_dir)
    if output_path.split("/")[0] == "base_model":
        raise ToolError("base_model/ is read-only: save to another directory, e.g. checkpoints/sft.")

    episode.train_runs += 1
    inputs = episode.disk.root / "inputs" / f"train-{episode.train_runs}"
    inputs.mkdir(mode=0o755, parents=True)
    data_copy = _copy_data(episode, data, inputs / "data.jsonl")
    config = TrainConfig(
        data=str(data_copy), model=model_path, output_dir=output_path, lora=lora, lora_rank=lora_rank,
        learning_rate=learning_rate, max_steps=max_steps, batch_size=batch_size, max_length=max_length,
        packing=packing, seed=episode.seed, device=episode.config.device,
        **_time_limit(episode.budget),
    )
    config_path = inputs / "config.json"
    config_path.write_text(json.dumps(dataclasses.asdict(config), indent=2))
    os.chmod(config_path, 0o644)
    job = episode.jobs.launch([sys.executable, "-m", "ptb_gym.training", str(config_path)], kind="train",
                              meta={"output_dir": output_path, "config": str(config_path)})
    episode.warm_verifier()  # the model will be scored: start the verifier while the job runs
    return ToolResult(
        f"Started {job.id}: SFT ({'LoRA' if lora else 'full'}{', packed' if packing else ''}) on {data} for "
        f"{max_steps} steps -> "
        f"{output_path}\n{describe(job)}\nFollow it with wait(\"{job.id}\") or job_status(\"{job.id}\").",
        {"job": job.summary()},
    )


def _time_limit(budget: Budget) -> dict[str, float]:
    """When the job must stop and save: at the budget left, less a margin for saving, in the budget's unit."""
    left = max(1.0, budget.remaining_s - SAVE_MARGIN_S)
    return {"cpu_time_limit_s": left * budget.cpu_cores} if budget.mode == "cpu" else {"time_limit_s": left}


def _copy_data(episode: Episode, data: str, destination: Path) -> Path:
    """Copy the agent's data file out of the workspace (bounded, no links), checking its first record."""
    used = sum(path.stat().st_size for path in episode.train_inputs if path.exists())
    limit = min(MAX_DATA_BYTES, max(0, episode.config.disk_quota_bytes - used))
    fd = episode.workspace.open_fd(data)
    try:
        with open(fd, "rb", closefd=False) as source, open(destination, "xb") as out:
            first = source.readline(1 << 20)
            try:
                record = json.loads(first) if first.strip() else None
            except (ValueError, RecursionError):
                raise ToolError(f"{data} is not JSONL: its first line is not valid JSON.") from None
            try:
                record_kind(record)
            except RecordError as error:
                raise ToolError(f"{data}: {error} Write such records with write_data.") from None
            chunk, copied = first, len(first)
            while chunk:  # the first line counts too: it may be a whole file of one line
                if copied > limit:
                    raise ToolError(f"{data} is over {limit / 1024**2:.0f} MiB, more than the train tool takes "
                                    "(its data files together may not exceed the disk quota): use fewer records.")
                out.write(chunk)
                chunk = source.read(1 << 20)
                copied += len(chunk)
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    os.chmod(destination, 0o644)
    episode.train_inputs.append(destination)
    return destination
