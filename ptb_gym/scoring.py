"""The end of an episode: score the submitted (or last saved) model on the hidden test split.

Runs in the trusted env process. The outcome classifies failures so RL trainers can tell an agent's failure
(reward 0 is the truth) from an infrastructure failure (drop the episode: `info["valid"]` is False).
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptb_gym import integrity
from ptb_gym.episode import Episode
from ptb_gym.errors import IntegrityError, ToolError

logger = logging.getLogger("ptb_gym")

EMBEDDED_MODEL_KEY = "ptb-tiny"

# The evaluation code and the task's data as they are when the env is imported, before any agent acts;
# verified again before every final evaluation (integrity.check_tampering).
_SEAL = integrity.seal()


@dataclass
class Outcome:
    """Reward, the final info entries, a text summary for the agent, and the recording's footer."""

    reward: float
    info: dict[str, Any]
    summary: str
    footer: dict[str, Any] = field(default_factory=dict)


def score_episode(episode: Episode, truncated_by: str | None = None) -> Outcome:
    """Score the episode's model: the submission, else `final_model/` if the episode was truncated."""
    started = time.monotonic()
    task = episode.task
    checkpoint = episode.submission
    if checkpoint is None and (episode.root / "final_model").is_dir():
        checkpoint = episode.root / "final_model"
    episode.jobs.close()  # nothing of the agent's runs while its model is scored
    info: dict[str, Any] = {"submitted": episode.submission is not None, "truncated_by": truncated_by,
                            "primary_harness": task.primary_harness, "flags": [], "scores": {}}
    report, failure = None, None
    if checkpoint is None:
        why = "the budget ran out" if truncated_by == "budget" else f"the {truncated_by or 'episode'} ended it"
        failure = {"kind": "budget",
                   "message": f"{why} before a model was submitted, and there is no final_model/ in the workspace"}
    else:
        info["checkpoint"] = episode.workspace.relative(checkpoint)
        info["integrity"] = checks = {}
        report, failure, flags = _evaluate_with_checks(episode, checkpoint, checks)
        info["flags"] = [flag.to_dict() for flag in flags]

    primary = report[task.primary_harness] if report else {}
    # Without a recorded reference for this base model, the reward is the raw score gain over the base.
    reward = float(primary.get("uplift", primary.get("score", 0.0) - primary.get("base", 0.0))) if report else 0.0
    info.update(scores=report or {}, uplift=primary.get("uplift", 0.0 if failure else None), failure=failure,
                valid=failure is None or failure["kind"] != "infrastructure")
    if "uplift_interval" in primary:
        info["uplift_interval"] = primary["uplift_interval"]
    footer = {**info, "reward": reward, "budget": episode.budget.snapshot(),
              "duration_s": round(time.monotonic() - started, 2)}
    return Outcome(reward, info, _summary(info, task.primary_harness), footer)


def _evaluate_with_checks(episode: Episode, checkpoint: Path, checks: dict[str, Any]
                          ) -> tuple[dict | None, dict[str, Any] | None, list[integrity.Flag]]:
    """(report, failure, flags): integrity checks first (a flagged episode is never evaluated), then scoring."""
    flags: list[integrity.Flag] = []
    try:
        flags = integrity_flags(episode, checks)
        if not flags:
            return evaluate_checkpoint(episode, checkpoint, checks), None, []
    except integrity.IntegrityViolation as violation:
        flags.append(violation.flag)
    except IntegrityError as error:
        flags.append(integrity.Flag("checkpoint", str(error)))
    except ToolError as error:
        return None, {"kind": "agent", "message": f"the model could not be scored: {error}"}, []
    except Exception as error:  # noqa: BLE001 - an env failure must be reported as such, never as a plain 0
        logger.exception("final evaluation failed")
        return None, {"kind": "infrastructure", "message": f"{type(error).__name__}: {error}",
                      "traceback": traceback.format_exc(limit=5)}, []
    return None, {"kind": "integrity", "message": "; ".join(flag.message for flag in flags),
                  "checks": [flag.check for flag in flags]}, flags


def integrity_flags(episode: Episode, checks: dict[str, Any]) -> list[integrity.Flag]:
    """The checks that need no model: tampering with the evaluation files, test items in the workspace."""
    config = episode.config
    flags = []
    flag, checks["tampering"] = integrity.check_tampering(_SEAL)
    flags += [flag] if flag else []
    index = integrity.test_set_index(episode.task, config.test_size, config.train_size, config.dev_size)
    flag, checks["contamination"] = integrity.check_contamination(episode.root, index)
    flags += [flag] if flag else []
    return flags


def evaluate_checkpoint(episode: Episode, checkpoint,
                        checks: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Scores of a checkpoint on the hidden test split under every harness, with base, reference and uplift.

    Raises IntegrityViolation when the checkpoint does not descend from the base model (before scoring it)."""
    from ptb_gym.evaluation import evaluate_model, load_model, load_tokenizer, resolve_device, uplift_report

    task, config = episode.task, episode.config
    device = resolve_device(config.device)
    model = load_model(checkpoint, episode.base_model_dir, device)
    flag, lineage = integrity.check_lineage(model, episode.base_model_dir, checkpoint)
    if checks is not None:
        checks["lineage"] = lineage
    if flag:
        raise integrity.IntegrityViolation(flag.check, flag.message, flag.evidence)
    tokenizer = load_tokenizer(episode.base_model_dir)
    items = task.records("test", config.test_size)
    logger.info("scoring %s on %d hidden test items", checkpoint.name, len(items))
    scores = evaluate_model(model, tokenizer, task, items, batch_size=config.eval_batch_size)
    recorded = task.scores_for(model_key(config.base_model))
    if recorded is None:
        # No calibrated scores for this base model: score the base model too, for the raw gain.
        base_model = load_model(episode.base_model_dir, episode.base_model_dir, device)
        base_scores = evaluate_model(base_model, tokenizer, task, items, batch_size=config.eval_batch_size)
        report = uplift_report(scores, None)
        for name, entry in report.items():
            entry["base"] = base_scores[name].score
        return report
    return uplift_report(scores, recorded)


def model_key(base_model: str | None) -> str:
    return EMBEDDED_MODEL_KEY if base_model is None else base_model


def _summary(info: dict[str, Any], primary: str) -> str:
    lines = ["Episode over."]
    if info["failure"]:
        lines.append(f"Failure ({info['failure']['kind']}): {info['failure']['message']}")
    for name, entry in info["scores"].items():
        mark = " (primary)" if name == primary else ""
        text = f"  {name:<20} test {entry['score']:6.1%}"
        if "reference" in entry:
            text += f"  base {entry['base']:6.1%}  reference {entry['reference']:6.1%}  uplift {entry['uplift']:+.3f}"
        elif "base" in entry:
            text += f"  base {entry['base']:6.1%}  (no reference recorded for this base model)"
        lines.append(text + mark)
    if info.get("uplift") is not None:
        lines.append(f"Normalized uplift: {info['uplift']:+.3f}")
    return "\n".join(lines)
