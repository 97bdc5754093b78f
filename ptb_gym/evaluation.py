"""Scoring models: safe checkpoint loading, batched greedy generation, harness scores, uplift.

The final evaluation runs here, in the trusted env process, never in the agent's sandbox. What decides a
score is fixed by the task's harness and the base model, never by files the agent wrote: weights are read
from safetensors only (a pickle file is refused, never loaded), into a model built from the *base* model's
config (the agent's config.json cannot switch the architecture or the chat template), with the base model's
tokenizer, with `trust_remote_code=False`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ptb_gym.envs.task import Harness, Task
from ptb_gym.errors import ToolError
from ptb_gym.integrity import IntegrityViolation

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("ptb_gym")

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

    Raises ToolError for what the agent can fix (a missing directory or weights) and IntegrityViolation (an
    IntegrityError naming the check: `checkpoint` or `lineage`) for a pickle file or an architecture that is
    not the base model's.
    """
    if not path.is_dir():
        raise ToolError(f"{path.name!r} is not a directory: a checkpoint is a directory saved with save_pretrained().")
    trusted = path.resolve() == base_dir.resolve()  # the env's own base model (an HF cache snapshot has links)
    pickles = [] if trusted else sorted(p.name for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise IntegrityViolation(
            "checkpoint",
            f"the checkpoint contains pickle files ({', '.join(pickles[:3])}), which can run code when loaded; "
            "they are never loaded. Save with save_pretrained(..., safe_serialization=True) and remove them.",
            {"pickle_files": pickles[:10]},
        )
    # The env process reads these files: a link could make it read (and echo) a file outside the workspace.
    links = [] if trusted else sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_symlink())
    if links:
        raise ToolError(f"{path.name}/ contains links ({', '.join(links[:3])}); a checkpoint must hold its own "
                        "files: copy them in instead.")
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
        try:
            claimed = json.loads(config_path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ToolError(f"{path.name}/config.json is not valid JSON ({error}).") from None
        if not isinstance(claimed, dict):
            raise ToolError(f"{path.name}/config.json is not a JSON object.")
        base = json.loads((base_dir / "config.json").read_text())
        changed = [f for f in ARCHITECTURE_FIELDS if f in base and claimed.get(f, base[f]) != base[f]]
        if changed or claimed.get("architectures", base.get("architectures")) != base.get("architectures"):
            fields = changed or ["architectures"]
            raise IntegrityViolation(
                "lineage",
                f"the checkpoint's config.json changes the base model's architecture ({', '.join(fields)}: "
                f"{[claimed.get(f) for f in fields]} instead of {[base.get(f) for f in fields]}); "
                "a submission must be the base model post-trained, with its architecture.",
                {"config_fields": {f: {"submitted": claimed.get(f), "base": base.get(f)} for f in fields}},
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
        try:
            model = PeftModel.from_pretrained(base, path, is_trainable=False).merge_and_unload()
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - the agent's adapter files, not the env, are at fault
            raise ToolError(f"the adapter in {path.name}/ could not be loaded and merged "
                            f"({type(error).__name__}: {error}); save a LoRA adapter with save_pretrained()") from None
    else:
        config = AutoConfig.from_pretrained(base_dir, trust_remote_code=False)
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False, dtype=torch.float32)
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(path.glob("*.safetensors")):
            try:
                state.update(load_file(shard))
            except Exception as error:  # noqa: BLE001 - a corrupt or foreign file is the agent's to fix
                raise ToolError(f"{path.name}/{shard.name} is not a readable safetensors file "
                                f"({type(error).__name__}: {error})") from None
        expected = model.state_dict()
        wrong = {k: (tuple(v.shape), tuple(expected[k].shape)) for k, v in state.items()
                 if k in expected and v.shape != expected[k].shape}
        unexpected = sorted(set(state) - set(expected))
        missing = sorted(set(expected) - set(state) - _tied_keys(model))
        if wrong or unexpected or missing:
            detail = wrong or unexpected[:3] or missing[:3]
            raise IntegrityViolation(
                "lineage", f"the checkpoint's weights do not fit the base model's architecture: {detail}",
                {"wrong_shapes": {k: [list(a), list(b)] for k, (a, b) in list(wrong.items())[:10]},
                 "unexpected": unexpected[:10], "missing": missing[:10]})
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


def preload_evaluation() -> None:
    """Import the libraries that loading and scoring a model need (torch, transformers: about 3 s of CPU), so
    that the first evaluation of an episode does not wait for them. The train tool calls it right after it
    launches a job: the imports then run while the job starts (on the other core), not in the evaluation.

    It imports in the calling thread, not in a background one: a thread importing transformers while another
    thread (the env's, or the user's) imports it too can leave it half-initialised for the rest of the process."""
    if "transformers.modeling_utils" in sys.modules:
        return
    try:
        import safetensors.torch  # noqa: F401
        import torch  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer, modeling_utils  # noqa: F401 (from_config's bulk)
    except Exception as error:  # noqa: BLE001 - only a head start: the evaluation imports (and reports) for itself
        logger.debug("preloading the evaluation libraries failed: %s", error)


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int = 64,
             progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy completions of `prompts`: for each prompt, the text that `model.generate(do_sample=False)` gives
    for it alone (up to float rounding), computed in batches.

    Where evaluation spends its time (benchmarks/eval_throughput.py measures it): prompts are batched by length,
    so that little compute goes to padding; the token prefix that every prompt shares (the few-shot examples)
    goes through the model once, and the rows attend to its keys and values without each holding a copy (which
    made few-shot generation three times slower than zero-shot); and rows that have written the end-of-sequence
    token leave the batch, so that a batch does not run at full width until its longest completion ends.
    """
    import torch

    if not prompts:
        return []
    device = next(model.parameters()).device
    ids = tokenizer(list(prompts))["input_ids"]
    prefix = _shared_prefix(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    completions: list[str] = [""] * len(prompts)
    with torch.inference_mode(), _cpu_threads(model, device), _prefix_attention(model, prefix, ids[0], device) as shared:
        skip = len(prefix) if shared else 0  # without the shared-prefix attention, every row holds its whole prompt
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            new_tokens = _greedy_batch(model, [ids[i][skip:] for i in batch], skip, max_new_tokens,
                                       tokenizer.eos_token_id, tokenizer.pad_token_id, device)
            for i, text in zip(batch, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                completions[i] = text
            if progress:
                progress(len(batch))
    return completions


# A shorter shared prefix is not worth the bookkeeping.
_MIN_SHARED_PREFIX = 16
# Finished rows leave a batch once they are this share of it (each removal copies the rows' cache).
_DROP_FINISHED_SHARE = 0.125
# Models under this many parameters generate on one CPU thread. A second thread made the embedded 2.2M-parameter
# model 1.3 to 1.6 times faster on an idle 2-core machine, but 3 to 18 times slower while other processes used
# the cores (OpenMP's threads spin-wait for each other), the usual case when episodes run side by side.
_SINGLE_THREAD_MAX_PARAMS = 20_000_000
_PREFIX_ATTENTION = "ptb_shared_prefix"


def _shared_prefix(ids: list[list[int]]) -> list[int]:
    """The token prefix common to all prompts, leaving at least one token of each prompt after it."""
    first, shortest = ids[0], min(len(x) for x in ids)
    length = 0
    while length < shortest - 1 and all(x[length] == first[length] for x in ids):
        length += 1
    return first[:length] if length >= _MIN_SHARED_PREFIX else []


def _forward(model, cache, **inputs):
    """The next-token logits of the last position, with `cache` extended in place."""
    return model(**inputs, use_cache=True, logits_to_keep=1, **{_cache_argument(type(model)): cache}).logits[:, -1, :]


@functools.cache
def _cache_argument(model_class: type) -> str:
    # transformers 5.2x renamed the forward's `past_key_values` to `cache` (the old name warns until 5.40).
    import inspect

    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _new_cache(model):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)  # sliding-window layers (Gemma 3, ...) keep only their window
    except TypeError:
        return DynamicCache()


def _prefill(model, prefix: list[int], device):
    import torch

    cache = _new_cache(model)
    _forward(model, cache, input_ids=torch.tensor([prefix], device=device))
    return cache


def _greedy_batch(model, suffixes: list[list[int]], prefix_len: int, max_new_tokens: int, eos_id: int | None,
                  pad_id: int | None, device) -> list[list[int]]:
    """Greedy decoding of one batch of prompts, each a shared prefix of `prefix_len` tokens (held by the attention
    modules, see `_prefix_attention`; none if 0) and then its suffix. Returns each row's new tokens up to and
    including the end-of-sequence token, as `model.generate` writes them."""
    import torch

    rows, width = len(suffixes), max(len(s) for s in suffixes)
    pad = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)
    # Each suffix is padded on the left (after the prefix): the attention mask hides the pads and the positions
    # skip them, so that every row sees exactly its own prompt.
    input_ids = torch.full((rows, width), pad, dtype=torch.long)
    row_mask = torch.zeros((rows, width), dtype=torch.long)
    for row, suffix in enumerate(suffixes):
        input_ids[row, width - len(suffix):] = torch.tensor(suffix)
        row_mask[row, width - len(suffix):] = 1
    position_ids = (prefix_len + row_mask.cumsum(-1) - 1).clamp(min=0).to(device)
    input_ids, row_mask = input_ids.to(device), row_mask.to(device)
    cache = _new_cache(model)  # the rows' own tokens (the prefix's keys and values are the attention modules')
    # The shared-prefix attention takes the rows' part of the mask (every query sees the whole prefix). SDPA takes
    # the same boolean mask, which saves the model building it at every step (12% of generation on a CPU).
    own_mask = prefix_len > 0 or (model.config._attn_implementation == "sdpa" and _full_attention(model.config))

    def mask(query_len: int):
        return _causal_row_mask(row_mask, query_len) if own_mask else row_mask

    generated: list[list[int]] = [[] for _ in range(rows)]
    active = list(range(rows))  # the rows still in the batch, as indices into `generated`
    done = [False] * rows  # per row of the batch: has it written the end-of-sequence token?
    next_position = position_ids[:, -1:] + 1
    for step in range(max_new_tokens):
        next_tokens = _forward(model, cache, input_ids=input_ids, attention_mask=mask(input_ids.shape[1]),
                               position_ids=position_ids).argmax(dim=-1)
        for slot, token in enumerate(next_tokens.tolist()):
            if not done[slot]:
                generated[active[slot]].append(token)
                done[slot] = token == eos_id
        if all(done) or step + 1 == max_new_tokens:
            break
        if sum(done) >= _DROP_FINISHED_SHARE * len(done):
            slots = [slot for slot, finished in enumerate(done) if not finished]
            keep = torch.tensor(slots, device=device)
            cache.batch_select_indices(keep)
            active, done = [active[slot] for slot in slots], [False] * len(slots)
            row_mask, next_tokens, next_position = row_mask[keep], next_tokens[keep], next_position[keep]
        row_mask = torch.cat([row_mask, row_mask.new_ones((len(active), 1))], dim=1)
        input_ids, position_ids, next_position = next_tokens[:, None], next_position, next_position + 1
    return generated


def _causal_row_mask(row_mask, query_len: int):
    """[rows, 1, queries, keys] booleans: the last `query_len` tokens see the earlier ones, pads hidden."""
    import torch

    keys = row_mask.shape[1]
    query_positions = torch.arange(keys - query_len, keys, device=row_mask.device)
    causal = torch.arange(keys, device=row_mask.device)[None, :] <= query_positions[:, None]
    return row_mask.bool()[:, None, None, :] & causal[None, None]


@contextmanager
def _prefix_attention(model, prefix: list[int], first_prompt: list[int], device):
    """Give the attention modules the shared prefix's keys and values, and switch the model to an attention
    that reads them once for all rows (`_shared_prefix_attention`). Yields whether it did: it does not for a
    model whose attention it cannot stand in for (sliding windows, soft-capping, other kernels), nor when the
    first prompt's next-token logits differ from those of the model's own attention."""
    import torch

    modules = _attention_modules(model) if prefix else []
    if not modules:
        yield False
        return
    from transformers import AttentionInterface

    AttentionInterface.register(_PREFIX_ATTENTION, _shared_prefix_attention)
    prefix_cache = _prefill(model, prefix, device)
    for module in modules:
        layer = prefix_cache.layers[module.layer_idx]
        module._ptb_prefix_kv = (layer.keys, layer.values)
    config = model.config
    saved = config._attn_implementation
    try:
        expected = _forward(model, _new_cache(model), input_ids=torch.tensor([first_prompt], device=device))
        config._attn_implementation = _PREFIX_ATTENTION
        suffix = torch.tensor([first_prompt[len(prefix):]], device=device)
        got = _forward(model, _new_cache(model), input_ids=suffix,
                       attention_mask=_causal_row_mask(torch.ones_like(suffix), suffix.shape[1]),
                       position_ids=torch.arange(len(prefix), len(first_prompt), device=device)[None])
        tolerance = 1e-3 if got.dtype == torch.float32 else 5e-2
        shared = bool((got - expected).abs().max() <= tolerance * max(1.0, float(expected.abs().max())))
    except Exception:  # noqa: BLE001 - an attention module it cannot stand in for: the model's own attention then
        shared = False
    config._attn_implementation = _PREFIX_ATTENTION if shared else saved
    try:
        yield shared
    finally:
        config._attn_implementation = saved
        for module in modules:
            del module._ptb_prefix_kv


def _attention_modules(model) -> list:
    """The model's attention modules, if its attention is plain full attention that `_shared_prefix_attention`
    computes the same way; otherwise an empty list."""
    config = model.config
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager") or not _full_attention(config):
        return []
    if getattr(config, "attn_logit_softcapping", None) is not None:
        return []
    modules = [m for m in model.modules() if type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx")]
    return modules if len(modules) == getattr(config, "num_hidden_layers", -1) else []


def _full_attention(config) -> bool:
    """Whether every layer attends to all earlier tokens (no sliding windows, whose caches keep only the window)."""
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or []):
        return False
    return getattr(config, "sliding_window", None) is None or not getattr(config, "use_sliding_window", True)


def _shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention of the rows' queries over the shared prefix's keys (one copy for all rows, attached to the
    module) and over their own keys (`key`, `value`, masked by the boolean `attention_mask`)."""
    import torch

    prefix_key, prefix_value = module._ptb_prefix_kv  # [1, kv heads, prefix, dim]
    rows, heads, queries, dim = query.shape
    kv_heads, prefix_len = key.shape[1], prefix_key.shape[2]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # The prefix part as one product per kv head, with every row's queries stacked: the prefix is read once.
    grouped = query.reshape(rows, kv_heads, groups, queries, dim)
    stacked = grouped.permute(1, 0, 2, 3, 4).reshape(kv_heads, rows * groups * queries, dim)
    prefix_scores = torch.bmm(stacked, prefix_key[0].transpose(1, 2))
    prefix_scores = prefix_scores.view(kv_heads, rows, groups, queries, prefix_len).permute(1, 0, 2, 3, 4)
    own_scores = torch.matmul(grouped, key[:, :, None].transpose(-1, -2))
    own_scores = own_scores.masked_fill(~attention_mask[:, :, None], float("-inf"))
    weights = (torch.cat([prefix_scores, own_scores], dim=-1).float() * scale).softmax(dim=-1).to(query.dtype)
    prefix_weights = weights[..., :prefix_len].permute(1, 0, 2, 3, 4).reshape(kv_heads, -1, prefix_len)
    prefix_out = torch.bmm(prefix_weights, prefix_value[0]).view(kv_heads, rows, groups, queries, dim)
    out = prefix_out.permute(1, 0, 2, 3, 4) + torch.matmul(weights[..., prefix_len:], value[:, :, None])
    return out.reshape(rows, heads, queries, dim).transpose(1, 2).contiguous(), None


@contextmanager
def _cpu_threads(model, device):
    """One torch thread while a small model runs on the CPU (see _SINGLE_THREAD_MAX_PARAMS); restored after."""
    import torch

    if device.type != "cpu" or sum(p.numel() for p in model.parameters()) >= _SINGLE_THREAD_MAX_PARAMS:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


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
