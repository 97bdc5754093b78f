"""The evaluate tool: score a checkpoint on the dev split under every harness of the task."""

from __future__ import annotations

from ptb_gym.episode import Episode
from ptb_gym.errors import IntegrityError, ToolError
from ptb_gym.protocol import ToolResult, tool


@tool
def evaluate(episode: Episode, checkpoint: str = "final_model", limit: int = 200) -> ToolResult:
    """Score a checkpoint on data/dev.jsonl under every evaluation harness (as the final evaluation does).

    Args:
        checkpoint: Checkpoint directory (a full model or a LoRA adapter), e.g. "checkpoints/sft" or "base_model".
        limit: Evaluate on the first `limit` dev items.
    """
    from ptb_gym.evaluation import evaluate_model, load_model, load_tokenizer, resolve_device

    path = episode.workspace.resolve(checkpoint, must_exist=True)
    task = episode.task
    items = task.records("dev", min(max(1, limit), episode.config.dev_size))
    try:
        model = load_model(path, episode.base_model_dir, resolve_device(episode.config.device))
    except IntegrityError as error:
        raise ToolError(f"{checkpoint} cannot be evaluated: {error}") from None
    tokenizer = load_tokenizer(episode.base_model_dir)
    scores = evaluate_model(model, tokenizer, task, items, batch_size=episode.config.eval_batch_size)
    lines = [f"Dev scores of {checkpoint} ({len(items)} items):"]
    for name, result in scores.items():
        primary = " (primary: the reward uses this one)" if name == task.primary_harness else ""
        low, high = result.interval
        lines.append(f"  {name:<20} {result.score:6.1%}  [95% CI {low:.1%}-{high:.1%}]{primary}")
    return ToolResult("\n".join(lines), {"dev_scores": {name: s.to_dict() for name, s in scores.items()},
                                         "checkpoint": checkpoint})
