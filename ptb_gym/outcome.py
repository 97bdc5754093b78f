"""The end of an episode as its users see it: the reward, the final info, a summary for the agent, the footer.

Failures are classified by one rule, so RL trainers can drop infrastructure failures without an agent being able
to hide its own behind one: **only what the agent cannot cause is `infrastructure`**. Anything caused by the
workspace's contents (a checkpoint that does not load, crashes or stalls the verifier while it reads it, a file
the contamination scan cannot read) is `agent` or `integrity`; running out of budget or steps with nothing to
score is `budget`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ptb_gym.evaluation import SCORE_COLUMNS, score_rows

FAILURE_KINDS = {
    "agent": "the agent's model or files could not be scored",
    "budget": "the budget or the step limit ended the episode before there was a model to score",
    "integrity": "an integrity check flagged the episode; it scores as the base model",
    "infrastructure": "the env failed, not the agent: drop this episode (info['valid'] is False)",
}


def failure(kind: str, message: str, **evidence: Any) -> dict[str, Any]:
    if kind not in FAILURE_KINDS:
        raise ValueError(f"unknown failure kind {kind!r}")
    return {"kind": kind, "message": message, **evidence}


@dataclass
class Outcome:
    """Reward, the final info entries, a text summary for the agent, and the recording's footer."""

    reward: float
    info: dict[str, Any]
    summary: str
    footer: dict[str, Any] = field(default_factory=dict)


def build_outcome(primary_harness: str, *, submitted: bool, truncated_by: str | None, checkpoint: str | None,
                  answer: dict[str, Any] | None, failed: dict[str, Any] | None, extra: dict[str, Any],
                  retried: Sequence[dict[str, Any]] = ()) -> Outcome:
    """The outcome from the verifier's answer (or the failure that kept it from answering); `retried`: the
    infrastructure failures of earlier scoring attempts."""
    if answer is not None and not answer.get("ok"):
        failed = failure(answer["kind"], answer["message"],
                         **({"checks": [f["check"] for f in answer["flags"]]} if answer.get("flags") else {}))
    report = answer["report"] if answer is not None and answer.get("ok") else {}
    primary = report.get(primary_harness, {})
    if failed is not None or not primary:
        reward, uplift = 0.0, (0.0 if failed is not None else None)
    elif primary.get("uplift") is not None:
        reward = uplift = float(primary["uplift"])
    else:  # no recorded reference for this base model: the raw score gain, labelled as such
        reward, uplift = float(primary["score"] - primary.get("base", 0.0)), None
    info: dict[str, Any] = {
        "submitted": submitted, "truncated_by": truncated_by, "checkpoint": checkpoint,
        "primary_harness": primary_harness, "scores": report, "uplift": uplift,
        "reward_kind": "normalized_uplift" if uplift is not None or failed else "raw_gain",
        "failure": failed, "valid": failed is None or failed["kind"] != "infrastructure",
        "flags": (answer or {}).get("flags", []), "integrity": (answer or {}).get("integrity", {}),
        "verifier_seconds": (answer or {}).get("seconds", {}), "retried_failures": list(retried),
    }
    if primary.get("uplift_interval"):
        info["uplift_interval"] = primary["uplift_interval"]
    footer = {**info, **extra, "reward": reward}
    return Outcome(reward, info, summary(info), footer)


def summary(info: dict[str, Any]) -> str:
    """The episode's last observation: failure, the score table, the reward."""
    lines = ["Episode over."]
    if info["failure"]:
        lines.append(f"Failure ({info['failure']['kind']}): {info['failure']['message']}")
    if info["scores"]:
        rows = [list(SCORE_COLUMNS), *score_rows(info["scores"], info["primary_harness"])]
        widths = [max(len(row[i]) for row in rows) for i in range(len(SCORE_COLUMNS))]
        lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        notes = [f"  {name}: {entry['uplift_note']}" for name, entry in info["scores"].items() if "uplift_note" in entry]
        lines += notes
    if info.get("uplift") is not None:
        lines.append(f"Normalized uplift: {info['uplift']:+.3f}")
    elif info["scores"] and not info["failure"]:
        lines.append("No reference is recorded for this base model: the reward is the raw gain over the base score.")
    return "\n".join(lines)
