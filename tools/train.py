"""The train tool: the bundled TRL recipe (SFT, full fine-tuning or LoRA) as a background job."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from ptb_gym.episode import Episode
from ptb_gym.errors import ToolError
from ptb_gym.protocol import ToolResult, tool
from ptb_gym.tools.jobs import describe
from ptb_gym.training import TrainConfig

SAVE_MARGIN_S = 20.0  # budget kept for saving the model when training stops early at the budget's end


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
) -> ToolResult:
    """Fine-tune with TRL's SFTTrainer in the background; returns a job id (follow it with wait or job_status).

    Args:
        data: JSONL file of {"prompt", "completion"} records (loss on the completion) or {"text"} records.
        output_dir: Directory the trained model (or LoRA adapter) is saved to, with safetensors.
        lora: Train a LoRA adapter through PEFT instead of all weights.
        lora_rank: LoRA rank (alpha is twice the rank).
        learning_rate: Peak learning rate (cosine schedule with warmup).
        max_steps: Optimizer steps.
        batch_size: Examples per step.
        max_length: Longest tokenized example; longer ones are truncated.
        model: Checkpoint to start from: "base_model" or an earlier output directory.
    """
    workspace = episode.workspace
    data_path = workspace.resolve(data, expect="file")
    first = data_path.open().readline()
    try:
        keys = set(json.loads(first)) if first.strip() else set()
    except json.JSONDecodeError:
        raise ToolError(f"{data} is not JSONL: its first line is not valid JSON.") from None
    if not ({"prompt", "completion"} <= keys or "text" in keys):
        raise ToolError(f"{data} records have keys {sorted(keys)}; the train tool needs 'prompt' and 'completion' "
                        "or 'text'. Write such records with write_data.")
    model_path = workspace.resolve(model, expect="dir")
    if not (model_path / "config.json").exists():
        raise ToolError(f"{model!r} is not a full checkpoint (no config.json); start from base_model or a full "
                        "fine-tuning output.")
    output_path = workspace.resolve(output_dir)
    for name, value, low in (("max_steps", max_steps, 1), ("batch_size", batch_size, 1), ("lora_rank", lora_rank, 1),
                             ("max_length", max_length, 8)):
        if value < low:
            raise ToolError(f"{name} must be at least {low}, got {value}.")
    if not 0 < learning_rate < 1:
        raise ToolError(f"learning_rate must be between 0 and 1, got {learning_rate}.")
    config = TrainConfig(
        data=workspace.relative(data_path), model=workspace.relative(model_path),
        output_dir=workspace.relative(output_path), lora=lora, lora_rank=lora_rank, learning_rate=learning_rate,
        max_steps=max_steps, batch_size=batch_size, max_length=max_length, seed=episode.seed,
        device=episode.config.device, time_limit_s=max(1.0, episode.budget.remaining_s - SAVE_MARGIN_S),
    )
    config_name = f"train-{len(episode.jobs.jobs) + 1}.json"
    with os.fdopen(workspace.create_file("runs", config_name), "w") as out:  # never through a planted link
        out.write(json.dumps(dataclasses.asdict(config), indent=2))
    job = episode.jobs.launch(
        [sys.executable, "-m", "ptb_gym.training", f"runs/{config_name}"],
        kind="train", meta={"output_dir": config.output_dir, "config": f"runs/{config_name}"},
    )
    from ptb_gym.evaluation import preload_evaluation

    preload_evaluation()  # the model will be scored: import torch and transformers now, while the job starts
    return ToolResult(
        f"Started {job.id}: SFT ({'LoRA' if lora else 'full'}) on {config.data} for {max_steps} steps -> "
        f"{config.output_dir}\n{describe(job)}\nFollow it with wait(\"{job.id}\") or job_status(\"{job.id}\").",
        {"job": job.summary()},
    )
