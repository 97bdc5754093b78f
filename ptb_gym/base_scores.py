"""The base model's own scores, for a base model whose scores are not recorded in the task's scores file: measured
once, by the verifier, and cached in `$PTB_GYM_CACHE/base-scores/`.

An entry is keyed by everything its number depends on: the weights (a digest of the checkpoint's safetensors
files), the task (name and version), the harness, the exact test items and the decoding device's kind. Change any
of them and the score is measured again; nothing else invalidates it. The embedded tasks draw a new test split per
episode, so for them an entry is reused only when a split is (a replay); the real benchmarks' test splits are
fixed, so their base is measured once per machine.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ptb_gym.cache import cache_root

CHUNK = 1 << 24


def cache_dir() -> Path:
    return cache_root() / "base-scores"


@functools.lru_cache(maxsize=8)
def weights_digest(checkpoint: Path, stamp: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 over the checkpoint's weights files, in name order (`stamp`, their names, sizes and mtimes, keys the
    memo: a base model's gigabytes are read once per process)."""
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(name.encode() + b"\x00")
        with open(checkpoint / name, "rb") as weights:
            while chunk := weights.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _stamp(checkpoint: Path) -> tuple[tuple[str, int, int], ...]:
    files = sorted(p for p in checkpoint.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def key(checkpoint: Path, task: str, harness: str, items: Sequence[dict[str, Any]], device: str) -> str:
    items_digest = hashlib.sha256(json.dumps(list(items), sort_keys=True).encode()).hexdigest()
    parts = [weights_digest(checkpoint, _stamp(checkpoint)), task, harness, items_digest, device]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def cached_or_measured(checkpoint: Path, task: str, harnesses: Sequence[str], items: Sequence[dict[str, Any]],
                       device: str, measure: Callable[[list[str]], dict[str, dict[str, Any]]]) -> dict[str, dict]:
    """Per harness, `{"base": score, "base_interval": [low, high], "base_source": "cached" | "measured"}`;
    `measure(names)` scores the base under the harnesses not cached yet (one model load for all of them)."""
    keys = {name: key(checkpoint, task, name, items, device) for name in harnesses}
    found = {name: _read(keys[name]) for name in harnesses}
    missing = [name for name, entry in found.items() if entry is None]
    measured = measure(missing) if missing else {}
    out = {}
    for name in harnesses:
        if name in measured:
            entry = {"base": measured[name]["score"], "base_interval": list(measured[name]["interval"])}
            _write(keys[name], {**entry, "task": task, "harness": name, "n": len(items)})
            out[name] = {**entry, "base_source": "measured"}
        else:
            out[name] = {"base": found[name]["base"], "base_interval": found[name]["base_interval"],
                         "base_source": "cached"}
    return out


def _read(entry_key: str) -> dict[str, Any] | None:
    try:
        entry = json.loads((cache_dir() / f"{entry_key}.json").read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry.get("base"), (int, float)) else None


def _write(entry_key: str, entry: dict[str, Any]) -> None:
    """Atomically (a reader sees a whole entry or none); a cache that cannot be written only costs a re-measure."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f"{entry_key}.json.partial-{os.getpid()}"
        partial.write_text(json.dumps(entry) + "\n")
        partial.replace(directory / f"{entry_key}.json")
    except OSError:
        pass
