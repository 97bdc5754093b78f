"""Scoring models: safe checkpoint loading, batched greedy generation, harness scores, uplift.

The final evaluation runs here, in the trusted env process, never in the agent's sandbox. What decides a
score is fixed by the task's harness and the base model, never by files the agent wrote: weights are read
from safetensors only (a pickle file is refused, never loaded), into a model built from the *base* model's
config (the agent's config.json cannot switch the architecture or the chat template), with the base model's
tokenizer, with `trust_remote_code=False`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ptb_gym.envs.task import Harness, Task
from ptb_gym.errors import IntegrityError, ToolError

if TYPE_CHECKING:
    import torch

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Config fields that fix the architecture: a submission must keep every one of the base model's.
ARCHITECTURE_FIELDS = (
    "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "vocab_size", "tie_word_embeddings",
)


@dataclass(frozen=True)
class HarnessScore:
    """A model's score under one harness: accuracy and its 95% bootstrap interval."""

    harness: str
    score: float
    interval: tuple[float, float]
    n: int
    correct: tuple[bool, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "interval": list(self.interval), "n": self.n}


def normalized_uplift(score: float, base: float, reference: float) -> float:
    """(score - base) / (reference - base): 0 is the base model, 1 the reference post-training."""
    if reference == base:
        return 0.0
    return (score - base) / (reference - base)


def bootstrap_interval(correct: Sequence[bool], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the accuracy."""
    values = np.asarray(correct, dtype=np.float64)
    if len(values) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_checkpoint(path: Path, base_dir: Path) -> str:
    """Check a checkpoint directory without loading it; returns 'full' or 'adapter'.

    Raises ToolError for what the agent can fix (a missing directory or weights) and IntegrityError for a
    pickle file or an architecture that is not the base model's.
    """
    if not path.is_dir():
        raise ToolError(f"{path.name!r} is not a directory: a checkpoint is a directory saved with save_pretrained().")
    pickles = sorted(p.name for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise IntegrityError(
            f"the checkpoint contains pickle files ({', '.join(pickles[:3])}), which can run code when loaded; "
            "they are never loaded. Save with save_pretrained(..., safe_serialization=True) and remove them."
        )
    if (path / "adapter_config.json").exists():
        if not (path / "adapter_model.safetensors").exists():
            raise ToolError(f"{path.name}/ has adapter_config.json but no adapter_model.safetensors.")
        return "adapter"
    if not list(path.glob("*.safetensors")):
        raise ToolError(
            f"{path.name}/ has no *.safetensors weights. Save the model with save_pretrained() "
            "(or use the train tool, which does)."
        )
    config_path = path / "config.json"
    if config_path.exists():
        claimed, base = json.loads(config_path.read_text()), json.loads((base_dir / "config.json").read_text())
        changed = [f for f in ARCHITECTURE_FIELDS if f in base and claimed.get(f, base[f]) != base[f]]
        if changed or claimed.get("architectures", base.get("architectures")) != base.get("architectures"):
            fields = changed or ["architectures"]
            raise IntegrityError(
                f"the checkpoint's config.json changes the base model's architecture ({', '.join(fields)}: "
                f"{[claimed.get(f) for f in fields]} instead of {[base.get(f) for f in fields]}); "
                "a submission must be the base model post-trained, with its architecture."
            )
    return "full"


def load_model(path: Path, base_dir: Path, device: str = "cpu") -> torch.nn.Module:
    """Load a full checkpoint or a PEFT adapter as a model of the base model's architecture."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    kind = check_checkpoint(path, base_dir)
    if kind == "adapter":
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_dir, trust_remote_code=False, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, path, is_trainable=False).merge_and_unload()
    else:
        config = AutoConfig.from_pretrained(base_dir, trust_remote_code=False)
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False, dtype=torch.float32)
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(path.glob("*.safetensors")):
            state.update(load_file(shard))
        expected = model.state_dict()
        wrong = {k: (tuple(v.shape), tuple(expected[k].shape)) for k, v in state.items()
                 if k in expected and v.shape != expected[k].shape}
        unexpected = sorted(set(state) - set(expected))
        missing = sorted(set(expected) - set(state) - _tied_keys(model))
        if wrong or unexpected or missing:
            detail = wrong or unexpected[:3] or missing[:3]
            raise IntegrityError(f"the checkpoint's weights do not fit the base model's architecture: {detail}")
        model.load_state_dict(state, strict=False)
        model.tie_weights()
    return model.to(device).eval()


def load_tokenizer(base_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int = 64,
             progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy completions of `prompts`, batched by length to waste little compute on padding."""
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    completions: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            inputs = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(device)
            output = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )
            texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(batch, texts):
                completions[i] = text
            if progress:
                progress(len(batch))
    return completions


def evaluate_model(model, tokenizer, task: Task, items: Sequence[dict[str, Any]],
                   harnesses: Sequence[Harness] | None = None, *, batch_size: int = 64,
                   progress: Callable[[int], None] | None = None) -> dict[str, HarnessScore]:
    """Score a loaded model under each harness; harnesses that share prompts and decoding share generation."""
    harnesses = list(harnesses or task.harnesses)
    groups: dict[tuple[int, int], list[Harness]] = {}
    for harness in harnesses:
        groups.setdefault((harness.shots, harness.max_new_tokens), []).append(harness)
    scores: dict[str, HarnessScore] = {}
    for group in groups.values():
        prompts = [task.prompt(item, group[0]) for item in items]
        completions = generate(model, tokenizer, prompts, max_new_tokens=group[0].max_new_tokens,
                               batch_size=batch_size, progress=progress)
        for harness in group:
            correct = tuple(task.is_correct(item, text, harness) for item, text in zip(items, completions))
            score = sum(correct) / max(1, len(correct))
            scores[harness.name] = HarnessScore(harness.name, score, bootstrap_interval(correct), len(correct), correct)
    return {h.name: scores[h.name] for h in harnesses}


def uplift_report(scores: dict[str, HarnessScore], recorded: dict[str, dict[str, Any]] | None) -> dict[str, dict]:
    """Per harness: score, its interval, the recorded base and reference scores, uplift and its interval."""
    report = {}
    for name, result in scores.items():
        entry: dict[str, Any] = result.to_dict()
        if recorded and name in recorded:
            base, reference = recorded[name]["base"], recorded[name]["reference"]
            low, high = (normalized_uplift(x, base, reference) for x in result.interval)
            entry.update(base=base, reference=reference, uplift=normalized_uplift(result.score, base, reference),
                         uplift_interval=[min(low, high), max(low, high)])
        report[name] = entry
    return report


def _tied_keys(model) -> set[str]:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    keys = set(tied) if isinstance(tied, (dict, list, set, tuple)) else set()
    if getattr(model.config, "tie_word_embeddings", False):
        keys.add("lm_head.weight")
    return keys


def is_finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
