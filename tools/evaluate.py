"""The evaluate tool: score a checkpoint on the dev split under every harness of the task."""

from __future__ import annotations

from ptb_gym.episode import SCORING_S_PER_ITEM, SCORING_TIMEOUT_S, Episode
from ptb_gym.errors import ToolError
from ptb_gym.evaluation import score_rows
from ptb_gym.protocol import ToolResult, tool
from ptb_gym.text import shorten
from ptb_gym.verifier import VerifierFailure


@tool
def evaluate(episode: Episode, checkpoint: str = "final_model", limit: int = 200) -> ToolResult:
    """Score a checkpoint on data/dev.jsonl under every evaluation harness (as the final evaluation does), and show
    a few dev items the model got wrong.

    Args:
        checkpoint: Checkpoint directory (a full model or a LoRA adapter), e.g. "checkpoints/sft" or "base_model".
        limit: Evaluate on the first `limit` dev items.
    """
    items = min(max(1, limit), episode.config.dev_size)
    snapshot = episode.copy_checkpoint(checkpoint, "evaluate")
    try:
        answer = episode.verifier.request({
            "op": "evaluate", "task": episode.task.name, "base_model": str(episode.base_model_dir),
            "checkpoint": str(snapshot), "items": items, "device": episode.config.device,
            "batch_size": episode.config.eval_batch_size}, timeout_s=SCORING_TIMEOUT_S + SCORING_S_PER_ITEM * items)
    except VerifierFailure as error:
        raise ToolError(f"{checkpoint} could not be evaluated: {error}") from None
    if not answer["ok"]:
        raise ToolError(f"{checkpoint} cannot be evaluated: {answer['message']}")
    report = answer["report"]
    lines = [f"Dev scores of {checkpoint} ({items} items; the reward uses the primary harness):",
             *("  " + "  ".join(row[:3]) for row in score_rows(report, episode.task.primary_harness))]
    if answer["failures"]:
        lines.append(f"Some dev items the model got wrong under {episode.task.primary_harness}:")
        for failure in answer["failures"]:
            lines.append(f"- {shorten(str(failure['question']), 300)}\n  expected {failure['expected']!s:.100}; "
                         f"the model wrote: {shorten(failure['completion'], 300)!r}")
    return ToolResult("\n".join(lines), {"dev_scores": report, "checkpoint": checkpoint,
                                         "dev_failures": answer["failures"], "verifier_seconds": answer["seconds"]})
