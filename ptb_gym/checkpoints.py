"""Checkpoints the agent submits: safe loading, and lineage (does it descend from the base model?) in one place.

What is loaded here is never the workspace itself but a snapshot the env copied out of it through the path gate
(`Workspace.copy_out`: regular files only, no links, sizes bounded), so the files checked are the files loaded.
What decides a score is fixed by the task and the base model, never by the agent's files: weights are read from
safetensors only (a pickle file is refused, never loaded), into a model built from the *base* model's config
(the agent's config.json cannot switch the architecture), with the base model's tokenizer, with
`trust_remote_code=False`.

Lineage: the submission's architecture and every weight shape must be the base's (checked while loading), a
tokenizer saved with it must have the base's vocabulary, and **every** weight tensor must still correlate with the
base's: the Pearson correlation of each floating tensor of at least `LINEAGE_MIN_ELEMENTS` non-constant values,
over all its values (float64, in chunks), must be at least `LINEAGE_MIN_CORRELATION`; a tensor that is constant in
the base model (a fresh norm weight) must not have moved by more than its own norm (or, for a zero tensor, by
more than a tensor of ones). A partial swap (some layers taken from another model) fails on the swapped tensors.
Measured on the embedded model: an independent model of the same architecture is within +-0.012 of 0 on every tensor; the reference recipe (800 steps of full SFT at lr 1e-3)
keeps every tensor above 0.96 (median 0.98). `tests/test_checkpoints.py` checks both sides and a partial swap.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptb_gym.errors import ToolError
from ptb_gym.integrity import Flag, IntegrityViolation

if TYPE_CHECKING:
    import torch

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Config fields that fix the architecture: a submission must keep every one of the base model's.
ARCHITECTURE_FIELDS = (
    "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "vocab_size", "tie_word_embeddings",
)
LINEAGE_MIN_CORRELATION = 0.3
"""Correlation with the base weights below which a tensor does not descend from the base model."""
LINEAGE_MIN_ELEMENTS = 64
"""Tensors with fewer values are too small for a correlation to mean anything (and too small to matter)."""
_CHUNK = 1 << 22


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def checkpoint_kind(path: Path, base_dir: Path) -> str:
    """'full' or 'adapter', after the checks that need no loading.

    Raises ToolError for what the agent can fix (no weights, a broken config) and IntegrityViolation for a pickle
    file or a config that is not the base model's architecture.
    """
    if not path.is_dir():
        raise ToolError(f"{path.name!r} is not a directory: a checkpoint is a directory saved with save_pretrained().")
    pickles = sorted(p.name for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise IntegrityViolation(
            "checkpoint",
            f"the checkpoint contains pickle files ({', '.join(pickles[:3])}), which can run code when loaded; "
            "they are never loaded. Save with save_pretrained(..., safe_serialization=True) and remove them.",
            {"pickle_files": pickles[:10]},
        )
    base_config = json.loads((base_dir / "config.json").read_text())
    if (path / "adapter_config.json").exists():
        if not (path / "adapter_model.safetensors").exists():
            raise ToolError(f"{path.name}/ has adapter_config.json but no adapter_model.safetensors.")
        _check_adapter_size(path, base_config)
        _check_headers(path, base_dir)
        return "adapter"
    if not list(path.glob("*.safetensors")):
        raise ToolError(f"{path.name}/ has no *.safetensors weights. Save the model with save_pretrained() "
                        "(or use the train tool, which does).")
    _check_headers(path, base_dir)
    config_path = path / "config.json"
    if config_path.exists():
        claimed = _json_object(config_path, path.name)
        base = base_config
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
    """A full checkpoint or a PEFT adapter (merged) as a model of the base model's architecture, in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kind = checkpoint_kind(path, base_dir)
    if kind == "adapter":
        from peft import PeftModel

        _json_object(path / "adapter_config.json", path.name)
        base = AutoModelForCausalLM.from_pretrained(base_dir, trust_remote_code=False, dtype=torch.float32)
        try:
            model = PeftModel.from_pretrained(base, path, is_trainable=False).merge_and_unload()
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - the agent's adapter files, not the env, are at fault
            raise ToolError(f"the adapter in {path.name}/ could not be loaded and merged "
                            f"({type(error).__name__}: {error}); save a LoRA adapter with save_pretrained()") from None
    else:
        from transformers.initialization import no_init_weights

        config = AutoConfig.from_pretrained(base_dir, trust_remote_code=False)
        # Random initialisation was 60% of a load: zeros instead, so that a weight the checkpoint does not set
        # (a tied one it breaks, say) holds the same values on every load, not whatever memory held.
        with no_init_weights():
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False, dtype=torch.float32)
        with torch.no_grad():
            for weight in model.parameters():
                weight.zero_()
        state = _read_state(path)
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
    """The base model's tokenizer, set up for batched left-padded generation."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_lineage(model: torch.nn.Module, base_dir: Path, checkpoint: Path) -> tuple[Flag | None, dict[str, Any]]:
    """Does the loaded submission descend from the base model? Its tokenizer, and every weight tensor."""
    tokenizer_flag = _check_tokenizer(checkpoint, base_dir)
    if tokenizer_flag is not None:
        return tokenizer_flag, tokenizer_flag.evidence
    base = _read_state(base_dir)
    if not base:
        return None, {"skipped": "the base model has no safetensors weights to compare with"}
    similarity = weight_correlations(model.state_dict(), base)
    if not similarity:
        return None, {"skipped": "no weight tensor of the base model is large enough to compare"}
    below = {name: value for name, value in similarity.items() if value < LINEAGE_MIN_CORRELATION}
    lowest = sorted(similarity, key=similarity.get)[:3]
    stats = {"min_correlation": round(similarity[lowest[0]], 4),
             "median_correlation": round(sorted(similarity.values())[len(similarity) // 2], 4),
             "threshold": LINEAGE_MIN_CORRELATION, "tensors": len(similarity), "below_threshold": len(below),
             "least_correlated": {name: round(similarity[name], 4) for name in lowest}}
    if not below:
        return None, stats
    message = (f"{len(below)} of the {len(similarity)} weight tensors of the submission do not descend from the base "
               f"model's (correlation with the base weights below {LINEAGE_MIN_CORRELATION}, e.g. "
               f"{lowest[0]}: {similarity[lowest[0]]:.3f}; a post-trained base model stays above it on every tensor, "
               "an independent model is near 0)")
    return Flag("lineage", message, stats), stats


def weight_correlations(state: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per base weight tensor (floating, at least LINEAGE_MIN_ELEMENTS values): the Pearson correlation of all its
    values with the same tensor of `state`, in float64. A tensor that is constant in the base model scores 1 minus
    how far it moved relative to its norm or that of a tensor of ones, whichever is larger."""
    import torch

    result = {}
    for name in sorted(base):
        reference = base[name]
        if name not in state or not reference.is_floating_point() or reference.numel() < LINEAGE_MIN_ELEMENTS:
            continue
        other = state[name]
        if tuple(other.shape) != tuple(reference.shape):
            result[name] = -1.0
            continue
        x, y = reference.detach().reshape(-1), other.detach().reshape(-1).to(reference.device)
        sums = torch.zeros(5, dtype=torch.float64)  # sum x, sum y, sum x^2, sum y^2, sum xy
        for start in range(0, x.numel(), _CHUNK):
            a = x[start:start + _CHUNK].to("cpu", torch.float64)
            b = y[start:start + _CHUNK].to("cpu", torch.float64)
            sums += torch.stack([a.sum(), b.sum(), (a * a).sum(), (b * b).sum(), (a * b).sum()])
        n = x.numel()
        sx, sy, sxx, syy, sxy = (float(v) for v in sums)
        var_x, var_y = sxx - sx * sx / n, syy - sy * sy / n
        if var_x <= 1e-12 * max(1.0, sxx):  # constant in the base: how far did it move?
            # Relative to its norm, or to a tensor of ones where that is larger: Gemma's norm weights start at 0
            # (the layer scales by 1 + w), so any training would move them infinitely far relative to their norm.
            moved = math.sqrt(max(0.0, sxx - 2 * sxy + syy)) / max(math.sqrt(sxx), math.sqrt(n))
            result[name] = 1.0 - moved
        elif var_y <= 0 or not math.isfinite(var_y):
            result[name] = 0.0
        else:
            value = (sxy - sx * sy / n) / math.sqrt(var_x * var_y)
            result[name] = value if math.isfinite(value) else 0.0
    return result


# ---------------------------------------------------------------------------------------------- internals

def _read_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for shard in sorted(path.glob("*.safetensors")):
        try:
            state.update(load_file(shard))
        except Exception as error:  # noqa: BLE001 - a corrupt or foreign file is the agent's to fix
            raise ToolError(f"{path.name}/{shard.name} is not a readable safetensors file "
                            f"({type(error).__name__}: {error})") from None
    return state


def _check_headers(path: Path, base_dir: Path) -> None:
    """Every safetensors file's header is well formed, small, names no more tensors than a checkpoint of the base
    model can have, and its offsets fit the file: checked before anything is allocated for it."""
    limit = 4 * max(len(_header(shard)) for shard in base_dir.glob("*.safetensors")) + 64
    for shard in sorted(path.glob("*.safetensors")):
        tensors = _header(shard)
        if len(tensors) > limit:
            raise ToolError(f"{path.name}/{shard.name} names {len(tensors)} tensors; a checkpoint of the base model "
                            f"has far fewer (at most {limit} are read).")


def _header(shard: Path) -> dict[str, Any]:
    """The tensors a safetensors file declares, or ToolError if its header does not describe the file."""
    size = shard.stat().st_size
    with open(shard, "rb") as data:
        length = int.from_bytes(data.read(8), "little")
        if size < 8 or not 2 <= length <= min(size - 8, 100 * 1024**2):
            raise ToolError(f"{shard.name} is not a safetensors file (its header length {length} does not fit it).")
        try:
            header = json.loads(data.read(length))
        except (ValueError, RecursionError):
            raise ToolError(f"{shard.name} is not a safetensors file (its header is not JSON).") from None
    if not isinstance(header, dict):
        raise ToolError(f"{shard.name} is not a safetensors file (its header is not an object).")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    try:
        end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    except (TypeError, KeyError, ValueError, IndexError):
        raise ToolError(f"{shard.name} is not a safetensors file (a tensor has no valid data_offsets).") from None
    if 8 + length + end > size:
        raise ToolError(f"{shard.name} declares more data than it holds: the file is truncated.")
    return tensors


def _check_adapter_size(path: Path, base_config: dict[str, Any]) -> None:
    """A LoRA rank that the adapter's own file could not hold is refused before PEFT allocates for it."""
    adapter = _json_object(path / "adapter_config.json", path.name)
    rank = adapter.get("r", 8)
    hidden = int(base_config.get("hidden_size", 0) or 0)
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ToolError(f"{path.name}/adapter_config.json has a LoRA rank r={rank!r}; it must be a positive integer.")
    # Each adapted matrix holds at least rank * 2 values (its A and B are rank x in and out x rank, in >= 1).
    smallest = rank * 2 * 2  # bytes: two bf16 values per rank at the very least
    if hidden and rank > 4 * hidden or smallest > (path / "adapter_model.safetensors").stat().st_size:
        raise ToolError(f"{path.name}/adapter_config.json claims a LoRA rank of {rank}, which its "
                        "adapter_model.safetensors is too small to hold (or is above 4 times the hidden size).")


def _json_object(path: Path, where: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ToolError(f"{where}/{path.name} is not valid JSON ({type(error).__name__}: {error}).") from None
    if not isinstance(value, dict):
        raise ToolError(f"{where}/{path.name} is not a JSON object.")
    return value


def _check_tokenizer(checkpoint: Path, base_dir: Path) -> Flag | None:
    """A tokenizer saved with the submission must be the base's (it is never used: scoring uses the base's)."""
    mine, theirs = checkpoint / "tokenizer.json", base_dir / "tokenizer.json"
    if not (mine.is_file() and theirs.is_file()):
        return None
    try:
        if mine.stat().st_size == theirs.stat().st_size and mine.read_bytes() == theirs.read_bytes():
            return None  # the same file (as the train tool saves it): parsing Gemma's took 2.4 s
        submitted, base = json.loads(mine.read_text()), json.loads(theirs.read_text())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return Flag("lineage", "the submission's tokenizer.json is not valid JSON", {"file": "tokenizer.json"})

    def vocabulary(tokenizer: Any) -> tuple[Any, list]:
        tokenizer = tokenizer if isinstance(tokenizer, dict) else {}
        model = tokenizer.get("model") if isinstance(tokenizer.get("model"), dict) else {}
        added = tokenizer.get("added_tokens") if isinstance(tokenizer.get("added_tokens"), list) else []
        return model.get("vocab"), sorted((str(t.get("id")), str(t.get("content"))) for t in added if isinstance(t, dict))

    (vocab, added), (base_vocab, base_added) = vocabulary(submitted), vocabulary(base)
    if vocab == base_vocab and added == base_added:
        return None
    evidence = {"file": "tokenizer.json", "vocab_size": len(vocab) if isinstance(vocab, (dict, list)) else 0,
                "base_vocab_size": len(base_vocab or ()), "added_tokens": len(added), "base_added_tokens": len(base_added)}
    return Flag("lineage", "the submission's tokenizer is not the base model's (its vocabulary differs); a "
                           "submission must keep the base tokenizer", evidence)


def _tied_keys(model) -> set[str]:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    keys = set(tied) if isinstance(tied, (dict, list, set, tuple)) else set()
    if getattr(model.config, "tie_word_embeddings", False):
        keys.add("lm_head.weight")
    return keys
