"""Integrity checks that feed the reward: contamination, model lineage, tampering.

They run in the trusted env process when an episode is scored (`scoring.py`), before the submitted model is
evaluated, and they are deterministic: the same workspace and checkpoint give the same verdict, with no LLM
judge. A check that fires gives a `Flag` (which check, a message, the evidence); a flagged episode scores as
the base model (uplift 0) with `info["failure"]["kind"] == "integrity"` and the flags in `info["flags"]`.
Passing checks leave their statistics in `info["integrity"]`.

- **Contamination**: every file in the workspace (text, JSONL, anything; gzip, bz2, xz and zip archives are
  opened; links are not followed; safetensors files of float tensors, i.e. model weights, are skipped) is
  compared with the hidden test questions that are scored. Texts are normalised to lower-case
  words (letters or digits; punctuation, JSON escapes and layout dropped) and cut into word 8-grams; an
  8-gram that also occurs in the train or dev split the agent was given is no evidence and is ignored. A
  test question is *matched* when at least 80% of its remaining 8-grams occur within one window of twice
  its length in one file: exact copies and near-duplicates (reformatted, re-cased, a word or two changed,
  embedded in a prompt) match, paraphrases do not. The episode is flagged when at least
  `max(3, 2% of the scored test items)` questions are matched. Why 2%: the math task's problems come from
  templates, so data an agent generates in the same style meets test questions by chance - 200,000
  problems from the task's own generator (35 MB) match 1% of them - and a model that saw 2% of the test
  questions gains at most 2 points of accuracy, below the score's own 95% interval (about 3 points on 1,000
  items). About 0.3 s per 10 MB on one core; at most `MAX_SCAN_BYTES` are read, smallest files first (the
  model weights come last).
- **Lineage**: the submission must be the base model post-trained. Its architecture and shapes are checked
  when it is loaded (`evaluation.load_model`); a tokenizer saved with it must have the base's vocabulary;
  and its weights must descend from the base's: for every weight tensor of at least 1,024 elements, the
  Pearson correlation between the submitted and the base values (a fixed-stride sample of at most 2**20
  elements for big tensors, in float64), and the median over tensors must be at least 0.4. Measured: an
  independent model of the same architecture (a fresh initialisation) is at 0.00 +- 0.01, and 0.17 for the
  very initialisation ptb-tiny's pretraining started from (seed 0), whose trace pretraining keeps; 800 steps of
  full SFT at lr 1e-3 on ptb-tiny leave 0.98, and even a random-init model, whose weights move by more than
  their own norm under that recipe, stays at 0.68 (LoRA r16 at lr 1e-3, 300 steps: 0.99 and 0.85).
- **Tampering**: the evaluation code and the task's data and assets (`evaluation.py`, `scoring.py`, this
  module, and the whole `ptb_gym.envs` package: the test split's generator, the recorded scores, the
  embedded base model) are hashed when the env module is imported and again before scoring; any change
  flags the episode. The sandbox keeps these files out of the agent's sight and reach; this verifies it.

What these checks do not see: data that was deleted before the episode ended, or generated inside a script
and never written; encrypted or encoded test items; paraphrased test items; a submission that was
post-trained from the base by someone else (the full tier's instruct models descend from their base
models too - the sandbox's lack of network is what keeps them out).
"""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import io
import json
import lzma
import math
import os
import re
import stat
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ptb_gym.errors import IntegrityError

if TYPE_CHECKING:
    import torch

NGRAM = 8
"""Words per n-gram of the contamination check."""
MATCH_COVERAGE = 0.8
"""Share of a test question's distinctive n-grams that must occur close together for it to count as matched."""
MIN_MATCHED_SHARE = 0.02
"""Share of the scored test items that must be matched to flag the episode (and at least MIN_MATCHED_ITEMS)."""
MIN_MATCHED_ITEMS = 3
MAX_SCAN_BYTES = 256 * 1024**2
"""Bytes of workspace files read by the contamination check (smallest files first)."""
LINEAGE_MIN_CORRELATION = 0.4
"""Median over weight tensors of the correlation with the base weights below which a model is not the base's."""
LINEAGE_MIN_ELEMENTS = 1024
LINEAGE_SAMPLE = 2**20
_HASH_ONLY_BELOW = 64 * 1024**2  # larger sealed files are fingerprinted by size and mtime


@dataclass(frozen=True)
class Flag:
    """A check that fired: which one, why in words, and the evidence (never the hidden test items)."""

    check: str
    """`contamination`, `lineage`, `tampering` or `checkpoint` (an unsafe file format)."""
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, "evidence": self.evidence}


class IntegrityViolation(IntegrityError):
    """An IntegrityError that says which check fired and on what evidence."""

    def __init__(self, check: str, message: str, evidence: dict[str, Any] | None = None):
        super().__init__(message)
        self.flag = Flag(check, message, evidence or {})


# -------------------------------------------------------------------------------------------- contamination

# Bytes to lower-case letters and digits; everything else separates words.
_WORD_BYTES = bytearray(b" " * 256)
for _c in range(ord("a"), ord("z") + 1):
    _WORD_BYTES[_c] = _WORD_BYTES[_c - 32] = _c
for _c in range(ord("0"), ord("9") + 1):
    _WORD_BYTES[_c] = _c
_WORD_TABLE = bytes(_WORD_BYTES)
_ESCAPES = re.compile(rb"\\[nrtu]")  # JSON's \n, \t, \u00e9, ...: not part of the neighbouring word
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def words(data: bytes) -> list[bytes]:
    """The normalised words of a text: lower-case runs of letters or digits."""
    return _ESCAPES.sub(b" ", data).translate(_WORD_TABLE).split()


class TestSetIndex:
    """The scored test questions as word n-gram hashes, minus the n-grams of the data the agent was given.

    Hashes are a 64-bit polynomial over word ids, so they are the same in every process (unlike `hash()`).
    """

    def __init__(self, questions: Sequence[str], public_texts: Iterable[str] = (), n: int = NGRAM):
        self.n = n
        self.size = len(questions)
        tokenized = [words(q.encode()) for q in questions]
        self._vocab: dict[bytes, int] = {}
        for question in tokenized:
            for word in question:
                self._vocab.setdefault(word, len(self._vocab) + 1)
        public = np.unique(self._ngrams(words(b"\n".join(t.encode() for t in public_texts)))[0])
        hashes, items = [], []
        self.lengths = np.array([len(q) for q in tokenized])
        self.distinct = np.zeros(self.size, dtype=np.int64)
        for index, question in enumerate(tokenized):
            own = np.unique(self._ngrams(question)[0])
            own = own[~_in_sorted(own, public)]
            self.distinct[index] = len(own)
            hashes.append(own)
            items.append(np.full(len(own), index))
        all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        order = np.argsort(all_hashes, kind="stable")
        self._hashes = all_hashes[order]
        self._items = np.concatenate(items)[order] if items else np.zeros(0, np.int64)

    @property
    def checkable(self) -> int:
        """Test items that can be matched at all (some of their n-grams are in no public split)."""
        return int((self.distinct > 0).sum())

    def _ngrams(self, tokens: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of the n-grams made only of test-question words, and their start positions."""
        get = self._vocab.get
        ids = np.fromiter((get(w, 0) for w in tokens), dtype=np.uint64, count=len(tokens))
        if len(ids) < self.n:
            return np.zeros(0, np.uint64), np.zeros(0, np.int64)
        count = len(ids) - self.n + 1
        hashes = np.zeros(count, dtype=np.uint64)
        for k in range(self.n):
            hashes = hashes * _MULTIPLIER + ids[k : k + count]
        unknown = np.concatenate(([0], np.cumsum(ids == 0)))
        valid = np.flatnonzero(unknown[self.n :] - unknown[: count] == 0)
        return hashes[valid], valid

    def best_matches(self, data: bytes) -> np.ndarray:
        """Per test item: most of its distinctive n-grams found within one window of `data`."""
        best = np.zeros(self.size, dtype=np.int64)
        if not len(self._hashes):
            return best
        hashes, positions = self._ngrams(words(data))
        hit = _in_sorted(hashes, self._hashes)
        hashes, positions = hashes[hit], positions[hit]
        if not len(hashes):
            return best
        # One (item, position, hash) row per test item an n-gram belongs to.
        low = np.searchsorted(self._hashes, hashes, "left")
        high = np.searchsorted(self._hashes, hashes, "right")
        repeat = high - low
        rows = np.repeat(low, repeat) + np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        items, positions, hashes = self._items[rows], np.repeat(positions, repeat), self._hashes[rows]
        order = np.lexsort((positions, items))
        items, positions, hashes = items[order], positions[order], hashes[order]
        starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
        for start, end in zip(starts, np.r_[starts[1:], len(items)], strict=True):
            item = int(items[start])
            best[item] = _most_distinct_in_window(positions[start:end], hashes[start:end],
                                                  2 * int(self.lengths[item]))
        return best


def _in_sorted(values: np.ndarray, sorted_array: np.ndarray) -> np.ndarray:
    """Which of `values` occur in `sorted_array` (binary search: cheaper than np.isin for repeated calls)."""
    if not len(sorted_array):
        return np.zeros(len(values), dtype=bool)
    slots = np.minimum(np.searchsorted(sorted_array, values), len(sorted_array) - 1)
    return sorted_array[slots] == values


def _most_distinct_in_window(positions: np.ndarray, hashes: np.ndarray, window: int) -> int:
    """Most distinct hashes among rows whose positions lie within `window` of each other (sorted positions)."""
    counts: Counter = Counter()
    best = first = 0
    for last in range(len(positions)):
        counts[hashes[last]] += 1
        while positions[last] - positions[first] > window:
            counts[hashes[first]] -= 1
            if not counts[hashes[first]]:
                del counts[hashes[first]]
            first += 1
        best = max(best, len(counts))
    return best


def check_contamination(root: Path, index: TestSetIndex, *, max_bytes: int = MAX_SCAN_BYTES,
                        ) -> tuple[Flag | None, dict[str, Any]]:
    """Scan the workspace for copies of test questions; returns the flag (or None) and the scan's statistics."""
    started = time.monotonic()
    best = np.zeros(index.size, dtype=np.int64)
    where: dict[int, str] = {}
    scanned, scanned_bytes, unscanned = 0, 0, []
    for relative, data in _workspace_texts(root, max_bytes, unscanned):
        scanned += 1
        scanned_bytes += len(data)
        found = index.best_matches(data)
        better = np.flatnonzero(found > best)
        best[better] = found[better]
        for item in better:
            where[int(item)] = relative
    coverage = np.where(index.distinct > 0, best / np.maximum(index.distinct, 1), 0.0)
    matched = np.flatnonzero(coverage >= MATCH_COVERAGE)
    threshold = max(MIN_MATCHED_ITEMS, math.ceil(MIN_MATCHED_SHARE * index.size))
    files = Counter(where[int(i)] for i in matched)
    stats = {
        "matched_items": len(matched), "threshold_items": threshold, "test_items": index.size,
        "checkable_items": index.checkable, "ngram": index.n, "match_coverage": MATCH_COVERAGE,
        "files_scanned": scanned, "bytes_scanned": scanned_bytes, "seconds": round(time.monotonic() - started, 3),
        "files": dict(files.most_common(10)),
    }
    if unscanned:
        stats["unscanned"] = unscanned[:10]
    if len(matched) < threshold:
        return None, stats
    stats["examples"] = [{"test_item": int(i), "file": where[int(i)], "coverage": round(float(coverage[i]), 2)}
                         for i in matched[:5]]
    top = ", ".join(f"{name} ({count})" for name, count in files.most_common(3))
    message = (f"training data contains {len(matched)} of the {index.size} hidden test questions (exact or "
               f"near-duplicate copies; {threshold} flag an episode), in {top}")
    return Flag("contamination", message, stats), stats


def _workspace_texts(root: Path, max_bytes: int, unscanned: list[str]) -> Iterator[tuple[str, bytes]]:
    """(relative path, content) of the workspace's regular files, smallest first, archives opened.
    Symbolic links are not followed (they could point anywhere, or at /dev/zero)."""
    entries = []
    for directory, _subdirs, names in os.walk(root, followlinks=False):
        for name in names:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                entries.append((info.st_size, os.path.relpath(path, root)))
    budget = max_bytes
    for size, relative in sorted(entries):
        path = os.path.join(root, relative)
        if _float_weights_only(path, size):
            continue  # model weights: no text in them (text hidden in float bits is encoding, not copying)
        if size > budget:
            unscanned.append(relative)
            continue
        try:
            # No links, and never block on a FIFO swapped in since the listing.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with open(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                data = handle.read(budget)
        except OSError:
            continue
        budget -= len(data)
        yield relative, data
        for member, content in _unpacked(data, budget):
            budget -= len(content)
            yield (f"{relative}:{member}" if member else f"{relative} (unpacked)"), content


def _float_weights_only(path: str, size: int) -> bool:
    """Is this a well-formed safetensors file whose tensors are all floating point?"""
    if size < 16:
        return False
    try:
        with open(path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            if not 2 <= header_size <= min(size - 8, 100 * 1024**2):
                return False
            header = json.loads(handle.read(header_size))
        tensors = [v for k, v in header.items() if k != "__metadata__"]
        end = max((t["data_offsets"][1] for t in tensors), default=0)
        return (8 + header_size + end == size
                and all(t["dtype"] in ("F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2") for t in tensors))
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return False


def _unpacked(data: bytes, budget: int) -> Iterator[tuple[str, bytes]]:
    """The contents of a gzip, bz2, xz or zip archive (bounded by `budget` bytes), or nothing."""
    openers = {b"\x1f\x8b": gzip.GzipFile, b"BZh": bz2.BZ2File, b"\xfd7zXZ": lzma.LZMAFile}
    try:
        for magic, opener in openers.items():
            if data.startswith(magic):
                with opener(fileobj=io.BytesIO(data)) as stream:
                    yield "", stream.read(max(0, budget))
                return
        if data.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.infolist():
                    if member.is_dir() or budget <= 0:
                        continue
                    with archive.open(member) as stream:
                        content = stream.read(budget)
                    budget -= len(content)
                    yield member.filename, content
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, RuntimeError, NotImplementedError):
        return


_INDEXES: dict[tuple[str, int, int, int], TestSetIndex] = {}


def test_set_index(task: Any, test_size: int, train_size: int, dev_size: int) -> TestSetIndex:
    """The index of a task's scored test questions, minus its public splits (cached per process)."""
    key = (task.name, test_size, train_size, dev_size)
    if key not in _INDEXES:
        _INDEXES.clear()  # one task and size at a time is the common case; keep memory bounded
        _INDEXES[key] = _build_index(task, test_size, train_size, dev_size)
    return _INDEXES[key]


def _build_index(task: Any, test_size: int, train_size: int, dev_size: int) -> TestSetIndex:
    questions = [_question(item) for item in task.records("test", test_size)]
    public = [" ".join(str(v) for v in record.values() if isinstance(v, str))
              for split, size in (("train", train_size), ("dev", dev_size)) for record in task.records(split, size)]
    return TestSetIndex(questions, public)


def _question(item: Mapping[str, Any]) -> str:
    for key in ("question", "prompt", "problem", "text"):
        if isinstance(item.get(key), str):
            return item[key]
    return " ".join(str(v) for v in item.values() if isinstance(v, str))


# ------------------------------------------------------------------------------------------------- lineage

def weight_correlations(state: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Pearson correlation of each base weight tensor (of at least LINEAGE_MIN_ELEMENTS non-constant values)
    with the same tensor of `state`, on a fixed-stride sample of at most LINEAGE_SAMPLE values, in float64."""
    import torch

    correlations = {}
    for name in sorted(base):
        reference = base[name]
        if name not in state or not reference.is_floating_point() or reference.numel() < LINEAGE_MIN_ELEMENTS:
            continue
        other = state[name]
        if tuple(other.shape) != tuple(reference.shape):
            continue
        stride = max(1, math.ceil(reference.numel() / LINEAGE_SAMPLE))
        x = reference.detach().reshape(-1)[::stride].to("cpu", torch.float64)
        y = other.detach().reshape(-1)[::stride].to("cpu", torch.float64)
        x, y = x - x.mean(), y - y.mean()
        norm = float(x.norm() * y.norm())
        if float(x.norm()) == 0.0:
            continue  # a constant tensor (a fresh norm weight) says nothing
        correlations[name] = float(x @ y) / norm if norm > 0 else 0.0
    return correlations


def check_lineage(model: torch.nn.Module, base_dir: Path, checkpoint: Path) -> tuple[Flag | None, dict[str, Any]]:
    """Does the loaded submission descend from the base model? Tokenizer and weights (architecture and shapes
    were checked when it was loaded)."""
    from safetensors.torch import load_file

    tokenizer_flag = _check_tokenizer(checkpoint, base_dir)
    if tokenizer_flag is not None:
        return tokenizer_flag, tokenizer_flag.evidence
    base: dict[str, torch.Tensor] = {}
    for shard in sorted(base_dir.glob("*.safetensors")):
        base.update(load_file(shard))
    if not base:
        return None, {"skipped": "the base model has no safetensors weights to compare with"}
    correlations = weight_correlations(model.state_dict(), base)
    if not correlations:
        return None, {"skipped": "no weight tensor of the base model is large enough to compare"}
    values = sorted(correlations.values())
    median = float(np.median(values))
    lowest = sorted(correlations, key=correlations.get)[:3]
    stats = {"median_correlation": round(median, 4), "min_correlation": round(values[0], 4),
             "threshold": LINEAGE_MIN_CORRELATION, "tensors": len(values),
             "least_correlated": {name: round(correlations[name], 4) for name in lowest}}
    if median >= LINEAGE_MIN_CORRELATION:
        return None, stats
    message = (f"the submitted weights do not descend from the base model's: their median correlation with the "
               f"base weights is {median:.3f} over {len(values)} tensors (a post-trained base model stays above "
               f"{LINEAGE_MIN_CORRELATION}; an independent model is near 0)")
    return Flag("lineage", message, stats), stats


def _check_tokenizer(checkpoint: Path, base_dir: Path) -> Flag | None:
    """A tokenizer saved with the submission must be the base's (it is never used: scoring uses the base's)."""
    mine, theirs = checkpoint / "tokenizer.json", base_dir / "tokenizer.json"
    if not (mine.is_file() and not mine.is_symlink() and theirs.is_file()):
        return None
    try:
        submitted, base = json.loads(mine.read_text()), json.loads(theirs.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return Flag("lineage", "the submission's tokenizer.json is not valid JSON", {"file": "tokenizer.json"})

    def vocabulary(tokenizer: dict) -> tuple[Any, list]:
        model = tokenizer.get("model") or {}
        added = sorted((t.get("id"), t.get("content")) for t in tokenizer.get("added_tokens") or [])
        return model.get("vocab"), added

    (vocab, added), (base_vocab, base_added) = vocabulary(submitted), vocabulary(base)
    if vocab == base_vocab and added == base_added:
        return None
    evidence = {"file": "tokenizer.json", "vocab_size": len(vocab or ()), "base_vocab_size": len(base_vocab or ()),
                "added_tokens": len(added), "base_added_tokens": len(base_added)}
    return Flag("lineage", "the submission's tokenizer is not the base model's (its vocabulary differs); a "
                           "submission must keep the base tokenizer", evidence)


# ----------------------------------------------------------------------------------------------- tampering

def evaluation_files() -> list[Path]:
    """The files whose integrity the final score depends on: the scoring code and the task packages."""
    import ptb_gym
    import ptb_gym.envs

    core = Path(ptb_gym.__file__).resolve().parent
    files = [core / name for name in ("evaluation.py", "scoring.py", "integrity.py")]
    for directory in ptb_gym.envs.__path__:
        for path in sorted(Path(directory).resolve().rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def fingerprint(paths: Iterable[Path]) -> dict[str, str]:
    """sha256 of each file (size and mtime for files over 64 MiB); 'missing' for files that are gone."""
    prints = {}
    for path in paths:
        try:
            info = path.stat()
            if info.st_size >= _HASH_ONLY_BELOW:
                prints[str(path)] = f"size={info.st_size} mtime_ns={info.st_mtime_ns}"
            else:
                prints[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            prints[str(path)] = "missing"
    return prints


@functools.cache
def seal() -> dict[str, str]:
    """The fingerprint of the evaluation files, taken once per process (when the env module is imported)."""
    return fingerprint(evaluation_files())


def check_tampering(sealed: Mapping[str, str]) -> tuple[Flag | None, dict[str, Any]]:
    """Compare the evaluation files with their seal: changed, removed or added files flag the episode."""
    now = fingerprint(evaluation_files() + [Path(p) for p in sealed])
    changed = sorted(p for p in set(now) | set(sealed) if now.get(p) != sealed.get(p))
    stats = {"files": len(sealed), "changed": changed[:10]}
    if not changed:
        return None, {"files": len(sealed)}
    message = (f"the evaluation code or the task's data changed during the episode ({len(changed)} file(s), "
               f"e.g. {Path(changed[0]).name}); the score cannot be trusted")
    return Flag("tampering", message, stats), stats
