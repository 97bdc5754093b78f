"""Scoring a checkpoint: `score_checkpoint` takes paths and gives a per-harness report. The `evaluate` tool (dev
split), the final scoring (hidden test split) and calibration all use it, in the verifier process.

A report holds, per harness: the score (mean per-item score), its 95% bootstrap interval and the number of items;
with recorded base and reference scores, the normalized uplift and its interval, or `uplift: None` with a reason
when the harness's reference-base gap is within noise (then no uplift under it means anything).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ptb_gym.envs.task import Harness, Task

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class HarnessScore:
    """A model's score under one harness: mean per-item score, its 95% bootstrap interval, per-item results."""

    harness: str
    score: float
    interval: tuple[float, float]
    n: int
    item_scores: tuple[float, ...]
    completions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "interval": list(self.interval), "n": self.n}

    def failures(self, items: Sequence[Mapping[str, Any]], task: Task, k: int) -> list[dict[str, Any]]:
        """Up to `k` items the model got wrong, with its completion (feedback for the agent, on dev only)."""
        wrong = [i for i, value in enumerate(self.item_scores) if value < 1.0][:k]
        return [{"question": task.question(items[i]), "expected": task.expected(items[i]),
                 "completion": self.completions[i]} for i in wrong]


@dataclass(frozen=True)
class CheckpointScores:
    """What `score_checkpoint` found: the scores per harness and the lineage statistics."""

    scores: dict[str, HarnessScore]
    lineage: dict[str, Any]
    generation_s: float
    """Seconds spent generating completions (the compute of an evaluation; benchmarks/episode.py reports it)."""


def score_checkpoint(checkpoint: Path, base_dir: Path, task: Task, items: Sequence[dict[str, Any]], *,
                     harnesses: Sequence[Harness] | None = None, device: str = "cpu", batch_size: int | None = None,
                     check_lineage: bool = True, loaded: Callable[[], None] | None = None,
                     progress: Callable[[int], None] | None = None) -> CheckpointScores:
    """Load a checkpoint (a trusted snapshot: see `Workspace.copy_out`), check that it descends from the base model,
    and score it on `items` under each harness. `loaded` is called once the checkpoint is loaded and checked. On a
    GPU the model generates in bf16 (after the lineage check, which reads its weights as saved), 256 prompts a
    batch by default (benchmarks/eval_throughput.py: on the H200, gemma-3-270m on GSM8K ran 1.06 times faster
    than in fp32 with 64; decoding there is bound by kernel launches, not arithmetic).

    Raises ToolError when the checkpoint cannot be loaded (the agent can fix it) and IntegrityViolation when it is
    unsafe (pickle files) or not the base model post-trained (lineage)."""
    from ptb_gym import checkpoints
    from ptb_gym.integrity import IntegrityViolation

    device = checkpoints.resolve_device(device)
    model = checkpoints.load_model(checkpoint, base_dir, device)
    lineage: dict[str, Any] = {}
    if check_lineage:
        flag, lineage = checkpoints.check_lineage(model, base_dir, checkpoint)
        if flag:
            raise IntegrityViolation(flag.check, flag.message, flag.evidence)
    if device == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            model.to(torch.bfloat16)
    if loaded:
        loaded()
    tokenizer = checkpoints.load_tokenizer(base_dir)
    batch_size = batch_size or (256 if device == "cuda" else 64)
    timing: dict[str, float] = {}
    scores = evaluate_model(model, tokenizer, task, items, harnesses, batch_size=batch_size, progress=progress,
                            timing=timing)
    return CheckpointScores(scores, lineage, timing.get("generation_s", 0.0))


def evaluate_model(model: torch.nn.Module, tokenizer, task: Task, items: Sequence[dict[str, Any]],
                   harnesses: Sequence[Harness] | None = None, *, batch_size: int = 64,
                   progress: Callable[[int], None] | None = None,
                   timing: dict[str, float] | None = None) -> dict[str, HarnessScore]:
    """Score a loaded model under each harness (`timing["generation_s"]` gets the seconds spent generating). Harnesses whose prompts and decoding are the same share one
    generation: the key is the rendered prompts themselves, so harnesses that differ in anything that changes a
    prompt never share completions."""
    from ptb_gym import generation
    from ptb_gym.generation import cut_at_stop, render_prompts

    harnesses = list(harnesses or task.harnesses)
    generated: dict[tuple[str, int, frozenset[int]], list[str]] = {}
    scores: dict[str, HarnessScore] = {}
    for harness in harnesses:
        prompts = render_prompts(tokenizer, [task.prompt(item, harness) for item in items])
        ends = generation.end_token_ids(tokenizer, harness.stop)
        key = (_digest(prompts), harness.max_new_tokens, ends)
        if key not in generated:
            started = time.perf_counter()
            generated[key] = generation.generate(model, tokenizer, prompts, max_new_tokens=harness.max_new_tokens,
                                                 batch_size=batch_size, stop=harness.stop, progress=progress)
            if timing is not None:
                timing["generation_s"] = timing.get("generation_s", 0.0) + time.perf_counter() - started
        completions = [cut_at_stop(text, harness.stop) for text in generated[key]]
        values = tuple(float(v) for v in task.score(items, completions, harness))
        score = sum(values) / max(1, len(values))
        scores[harness.name] = HarnessScore(harness.name, score, bootstrap_interval(values), len(values), values,
                                            tuple(completions))
    return scores


def report(scores: Mapping[str, HarnessScore], *, base: Mapping[str, Mapping[str, Any]] | None = None,
           recorded: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The one score table: per harness, score and interval, the base score (recorded, else `base`: measured or
    cached, see `ptb_gym.base_scores`), and with a known reference the uplift and its interval (None with a reason
    when not meaningful). Without a reference there is no uplift: the outcome reports the raw gain, as such."""
    table = {}
    for name, result in scores.items():
        entry: dict[str, Any] = result.to_dict()
        known = {**(base or {}).get(name, {}), **(recorded or {}).get(name, {})}
        if "base" in known:
            entry["base"] = known["base"]
            if "base_source" in known:
                entry["base_source"] = known["base_source"]
        if "base" in known and "reference" in known:
            entry["reference"] = known["reference"]
            reason = _not_meaningful(known)
            if reason:
                entry.update(uplift=None, uplift_interval=None, uplift_note=reason)
            else:
                low, high = (normalized_uplift(x, known["base"], known["reference"]) for x in result.interval)
                entry.update(uplift=normalized_uplift(result.score, known["base"], known["reference"]),
                             uplift_interval=[min(low, high), max(low, high)])
        table[name] = entry
    return table


def normalized_uplift(score: float, base: float, reference: float) -> float:
    """(score - base) / (reference - base): 0 is the base model, 1 the reference post-training."""
    if reference == base:
        return 0.0
    return (score - base) / (reference - base)


def bootstrap_interval(values: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, len(array), size=(resamples, len(array)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def score_rows(table: Mapping[str, Mapping[str, Any]], primary: str | None = None) -> list[list[str]]:
    """The score table as text cells (harness, score, 95% CI, base, reference, uplift) for every view of it."""
    rows = []
    for name, entry in table.items():
        low, high = entry["interval"]
        uplift = entry.get("uplift")
        rows.append([name + (" (primary)" if name == primary else ""), f"{entry['score']:.1%}",
                     f"{low:.1%}-{high:.1%}",
                     f"{entry['base']:.1%}" if "base" in entry else "-",
                     f"{entry['reference']:.1%}" if "reference" in entry else "-",
                     f"{uplift:+.3f}" if uplift is not None else ("n/m" if "uplift_note" in entry else "-")])
    return rows


SCORE_COLUMNS = ("harness", "score", "95% CI", "base", "reference", "uplift")


MIN_MEANINGFUL_GAP = 0.05
"""Smallest reference-base gap under which an uplift means something: below it, one episode's score noise
(about +-2 to 3 points on 1,000 test items) is as large as the gap itself."""


def _not_meaningful(known: Mapping[str, Any]) -> str | None:
    """Why an uplift under this harness means nothing (its reference-base gap is within the scores' noise)."""
    gap = known["reference"] - known["base"]
    noise = sum((interval[1] - interval[0]) / 2 for interval in
                (known.get("base_interval"), known.get("reference_interval")) if interval)
    if gap <= max(noise, MIN_MEANINGFUL_GAP):
        return (f"the reference ({known['reference']:.1%}) is not above the base ({known['base']:.1%}) by more than "
                f"the noise ({max(noise, MIN_MEANINGFUL_GAP):.1%}): an uplift under this harness is not meaningful")
    return None


def _digest(prompts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for prompt in prompts:
        digest.update(prompt.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()
