"""Episode tools: the budget left, and submitting the final model."""

from __future__ import annotations

import os

from ptb_gym.episode import CHECKPOINT_MAX_FILES, Episode
from ptb_gym.errors import ToolError
from ptb_gym.protocol import ToolResult, tool


@tool
def budget(episode: Episode) -> ToolResult:
    """Show the compute budget used and left, and the running jobs."""
    snapshot = episode.budget.snapshot()
    running = [job.id for job in episode.jobs.running]
    return ToolResult(
        f"Budget: {snapshot['used_s']:.0f} s used of {snapshot['limit_s']:.0f} s, {snapshot['remaining_s']:.0f} s "
        f"left (counting {episode.budget.counting}). Running jobs: {', '.join(running) or 'none'}.",
        {"running_jobs": running},
    )


@tool
def submit(episode: Episode, checkpoint: str = "final_model") -> ToolResult:
    """Submit a checkpoint as the final model and end the episode; it is scored on the hidden test split.

    Args:
        checkpoint: Checkpoint directory (a full model saved with save_pretrained, or a LoRA adapter).
    """
    relative = episode.workspace.check(checkpoint)
    try:
        os.close(episode.workspace.open_fd(relative, expect="dir"))
    except ToolError as error:
        raise ToolError(f"Cannot submit {checkpoint}: {error}") from None
    try:  # links or special files inside: say so now (the final snapshot refuses them anyway)
        episode.workspace.list_tree(relative, max_files=CHECKPOINT_MAX_FILES)
    except ToolError as error:
        raise ToolError(f"Cannot submit {checkpoint}: {error}") from None
    names = {entry.relative.rsplit("/", 1)[-1] for entry in episode.workspace.walk(relative, max_depth=1)
             if entry.kind == "file"}
    if not any(name.endswith(".safetensors") for name in names):
        raise ToolError(f"Cannot submit {checkpoint}: it has no *.safetensors weights. Save the model with "
                        "save_pretrained() (or use the train tool, which does), then submit again.")
    episode.submission = relative
    return ToolResult(f"Submitted {checkpoint}. The episode is over; it is being scored on the hidden test split.",
                      {"submitted": relative})
