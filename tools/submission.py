"""Episode tools: the budget left, and submitting the final model."""

from __future__ import annotations

from ptb_gym.episode import Episode
from ptb_gym.errors import IntegrityError, ToolError
from ptb_gym.protocol import ToolResult, tool


@tool
def budget(episode: Episode) -> ToolResult:
    """Show the compute budget used and left, and the running jobs."""
    snapshot = episode.budget.snapshot()
    running = [job.id for job in episode.jobs.running]
    mode = "tool calls and running jobs" if snapshot["mode"] == "compute" else "wall-clock time since reset"
    return ToolResult(
        f"Budget: {snapshot['used_s']:.0f} s used of {snapshot['limit_s']:.0f} s, {snapshot['remaining_s']:.0f} s "
        f"left (counting {mode}). Running jobs: {', '.join(running) or 'none'}.",
        {"running_jobs": running},
    )


@tool
def submit(episode: Episode, checkpoint: str = "final_model") -> ToolResult:
    """Submit a checkpoint as the final model and end the episode; it is scored on the hidden test split.

    Args:
        checkpoint: Checkpoint directory (a full model saved with save_pretrained, or a LoRA adapter).
    """
    from ptb_gym.evaluation import check_checkpoint

    path = episode.workspace.resolve(checkpoint, must_exist=True)
    try:
        check_checkpoint(path, episode.base_model_dir)
    except IntegrityError:
        pass  # accepted; the final evaluation flags it and says why
    except ToolError as error:
        raise ToolError(f"Cannot submit {checkpoint}: {error}") from None
    episode.jobs.close()
    episode.submission = path
    return ToolResult(f"Submitted {checkpoint}. The episode is over; it is being scored on the hidden test split.",
                      {"submitted": checkpoint})
