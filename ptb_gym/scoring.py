"""What the verifier process does with a request: score a checkpoint on dev (`evaluate`), or check and score the
episode's final model on the hidden test split (`final`). Runs only in the verifier (`ptb_gym/verifier.py`).

Every answer is a dict: `{"ok": True, "report": {...}, ...}`, or `{"ok": False, "kind": "agent" | "integrity",
"message": ..., "flags": [...]}` for what the agent's files caused. Anything else raised here is reported by the
verifier with the stage it was in.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ptb_gym import integrity
from ptb_gym.envs import load_task
from ptb_gym.errors import IntegrityError, ToolError

FAILED_ITEMS_SHOWN = 3


def handle(request: dict[str, Any], stage: Callable[[str], None]) -> dict[str, Any]:
    """Answer one request; `stage` announces each step (the env classifies a crash by the last one)."""
    operations = {"evaluate": evaluate, "final": final, "prepare": prepare}
    if request.get("op") not in operations:
        raise ValueError(f"unknown verifier request {request.get('op')!r}")
    marks: list[tuple[str, float]] = [("request", time.perf_counter())]

    def timed(name: str) -> None:
        marks.append((name, time.perf_counter()))
        stage(name)

    try:
        answer = operations[request["op"]](request, timed)
        marks.append(("end", time.perf_counter()))
        answer.setdefault("seconds", {})["stages"] = {
            name: round(end - start, 4) for (name, start), (_, end) in zip(marks, marks[1:])}
        return answer
    except integrity.IntegrityViolation as violation:
        return {"ok": False, "kind": "integrity", "message": violation.flag.message, "flags": [violation.flag.to_dict()]}
    except IntegrityError as error:
        flag = integrity.Flag("checkpoint", str(error))
        return {"ok": False, "kind": "integrity", "message": flag.message, "flags": [flag.to_dict()]}
    except ToolError as error:
        return {"ok": False, "kind": "agent", "message": str(error), "flags": []}


def warm_up(base_dir: Path) -> None:
    """Load the base model and generate one token, so that a request does not pay for the first use."""
    from ptb_gym.checkpoints import load_model, load_tokenizer
    from ptb_gym.generation import generate

    generate(load_model(base_dir, base_dir), load_tokenizer(base_dir), ["Question: 1+1?\nAnswer:"], max_new_tokens=1)


def prepare(request: dict[str, Any], stage: Callable[[str], None]) -> dict[str, Any]:
    """Build the contamination index of the episode's secret test split ahead of the final request (the env
    queues this when the verifier starts, while the agent trains)."""
    from ptb_gym import contamination

    index = _index(request["task"], request["test_seed"], request["test_size"], request["train_size"],
                   request["dev_size"])
    contamination.prepare(index)
    return {"ok": True}


def evaluate(request: dict[str, Any], stage: Callable[[str], None]) -> dict[str, Any]:
    """A checkpoint on the first `items` dev items under every harness, with failing items of the primary one."""
    from ptb_gym.evaluation import report, score_checkpoint

    task, base_dir = load_task(request["task"]), Path(request["base_model"])
    items = task.records("dev", request["items"])
    stage("load")
    result = score_checkpoint(Path(request["checkpoint"]), base_dir, task, items, device=request["device"],
                              batch_size=request["batch_size"], loaded=lambda: stage("score"))
    primary = result.scores[task.primary_harness]
    return {"ok": True, "report": report(result.scores), "lineage": result.lineage,
            "seconds": {"generation": result.generation_s},
            "failures": primary.failures(items, task, request.get("failures", FAILED_ITEMS_SHOWN))}


def final(request: dict[str, Any], stage: Callable[[str], None]) -> dict[str, Any]:
    """Tampering, contamination, lineage, then the scores on the hidden test split (drawn from the secret seed)."""
    from ptb_gym.evaluation import report, score_checkpoint

    task, base_dir = load_task(request["task"]), Path(request["base_model"])
    items = task.records("test", request["test_size"], seed=request["test_seed"])
    checks: dict[str, Any] = {}
    flags = []
    stage("tampering")
    flag, checks["tampering"] = integrity.check_tampering(request["sealed"], request["task"])
    flags += [flag] if flag else []
    stage("scan")
    flag, checks["contamination"] = _contamination(request)
    flags += [flag] if flag else []
    if flags:
        return {"ok": False, "kind": "integrity", "message": "; ".join(f.message for f in flags),
                "flags": [f.to_dict() for f in flags], "integrity": checks}
    stage("load")
    result = score_checkpoint(Path(request["checkpoint"]), base_dir, task, items, device=request["device"],
                              batch_size=request["batch_size"], loaded=lambda: stage("score"))
    checks["lineage"] = result.lineage
    recorded = task.scores_for(request["model_key"]) or {}
    unrecorded = [h.name for h in task.harnesses if "base" not in recorded.get(h.name, {})]
    base = {}
    if unrecorded:  # no calibrated base scores for this base model: measured once, then cached
        stage("base")
        base = _base_scores(task, base_dir, items, unrecorded, request["device"], request["batch_size"])
    return {"ok": True, "report": report(result.scores, base=base, recorded=recorded), "integrity": checks,
            "flags": [], "seconds": {"generation": result.generation_s}}


def _contamination(request: dict[str, Any]) -> tuple[integrity.Flag | None, dict[str, Any]]:
    from ptb_gym import contamination
    from ptb_gym.workspace import Workspace

    index = _index(request["task"], request["test_seed"], request["test_size"], request["train_size"],
                   request["dev_size"])
    extra = []
    for path in map(Path, request.get("scan_files", [])):  # what each train job was given (snapshots)
        with open(path, "rb") as data:
            extra.append((f"train tool input {path.parent.name}/{path.name}",
                          data.read(contamination.MAX_SCAN_BYTES + 1)))
    public = [bytes.fromhex(digest) for digest in request.get("public_digests", [])]
    return contamination.scan_workspace(Workspace(Path(request["workspace"])), index, extra_files=extra,
                                        public_digests=public)


@functools.lru_cache(maxsize=2)
def _index(task_name: str, test_seed: int, test_size: int, train_size: int, dev_size: int):
    """The contamination index of a secret test split, minus the public splits' n-grams."""
    from ptb_gym import contamination

    task = load_task(task_name)
    return contamination.TestSetIndex(
        [task.question(item) for item in task.records("test", test_size, seed=test_seed)],
        [" ".join(str(v) for v in record.values() if isinstance(v, str))
         for split, size in (("train", train_size), ("dev", dev_size)) for record in task.records(split, size)],
        any_number=task.contamination_any_number)


def _base_scores(task, base_dir: Path, items: list[dict[str, Any]], harnesses: list[str], device: str,
                 batch_size: int | None) -> dict[str, dict[str, Any]]:
    from ptb_gym import base_scores, checkpoints
    from ptb_gym.evaluation import score_checkpoint

    def measure(names: list[str]) -> dict[str, dict[str, Any]]:
        result = score_checkpoint(base_dir, base_dir, task, items, device=device, batch_size=batch_size,
                                  harnesses=[task.harness(name) for name in names], check_lineage=False)
        return {name: {"score": score.score, "interval": score.interval} for name, score in result.scores.items()}

    return base_scores.cached_or_measured(base_dir, task.name, harnesses, items,
                                          checkpoints.resolve_device(device), measure)
