"""The contamination scan: are the hidden test questions anywhere in the agent's workspace or training data?

It runs in the trusted env process (at scoring, over the whole workspace: `scan_workspace`; when the `train`
tool starts a job, over its data file: `scan_data`), is deterministic, and never raises on workspace content.

**Matching.** Texts are cut into lower-case words (letters or digits; everything else separates words) and
word 8-grams; an 8-gram that also occurs in the train or dev split the agent was given is no evidence and is
ignored. A test question is *matched* when at least 80% of its remaining 8-grams occur within one window of
twice its length in one text: exact copies and near-duplicates (reformatted, re-cased, a word or two changed,
embedded in a prompt, split across JSON fields) match, paraphrases do not. The index also holds each question
rot13-encoded and reversed, so those forms match in any text for free. Letters spread apart (`L i l y`,
`L-i-l-y`, one zero-width character between each) are matched on letters alone (24-character shingles of the
text with everything but letters and digits dropped). The episode is flagged when at least
`max(3, 2% of the scored test items)` questions are matched. Why 2%: the math task's problems come from
templates, so data an agent generates in the same style meets test questions by chance (200,000 problems from
the task's own generator, 38 MB, match 1% of them), and a model that saw 2% of the test questions gains at
most 2 points of accuracy, below the score's own 95% interval (about 3 points on 1,000 items).

**What is read.** Every regular file of the workspace, smallest first, up to `MAX_SCAN_BYTES` read or unpacked
in all. Each text is seen through several views, each matched:
- JSON and JSONL are decoded (`\\u` escapes and all): each record's values joined with spaces, its values
  joined with nothing (a word split across two fields is whole again), and its keys;
- text that is not ASCII is Unicode-normalised (NFKD, combining marks and format characters such as
  zero-width joiners dropped, casefolded): fullwidth letters, ligatures, accents and odd cases match;
- UTF-16 and UTF-32 (little or big endian, with or without a byte-order mark) are decoded;
- percent-encoding, HTML entities and backslash escapes (`\\x41`, `\\u0041`, `\\101`) are undone where at
  least 16 of them occur; ASCII text is also read rot47-decoded; runs of at least 40 base64/base64url or
  base32 characters (MIME line breaks allowed) and of
  at least 20 hex-encoded bytes (`4c69`, `4c:69`, `0x4c, 0x69`, `\\x4c`) are decoded, and what they decode to
  is scanned in turn (it may be an archive, UTF-16, more base64...), up to `MAX_DEPTH` levels;
- gzip, zlib, bz2, xz, zip and tar archives (tar.gz and the like are gzip holding a tar) are unpacked
  recursively, streamed with bounded reads, up to `MAX_DEPTH` levels, `MAX_MEMBERS` members and a compression
  ratio of `MAX_RATIO` (a zip bomb is stopped after about a megabyte of output); members are scanned like files;
- safetensors files whose header is well formed, whose tensors are all floating point, whose size is exactly
  what the header says and whose sampled values are signed like weights (about half negative: printable text
  never sets a float's sign bit) are skipped unread; any other "safetensors" file is data.

**What cannot be scanned flags the episode.** A file over the remaining byte budget, a sparse file, an archive
over its limits, a corrupt, encrypted or unsupported (7z, rar, zstd, lz4) archive, a file whose decodings
exceed `MAX_WORK_FACTOR` times its size (unpacked bytes count as a file's), a device, a tree past the walk's limits: each is listed in the
statistics (`unscannable`) and the episode gets a `contamination` flag whose message names them and says to
delete them. A workspace that cannot be scanned cannot be trusted. Links, FIFOs and sockets hold no content of
their own and are listed as `skipped` (a link's target is scanned where it lies: the sandbox lets the agent write
nowhere but the workspace).

**Cost.** Measured on one core (tests/test_contamination.py::test_scan_speed_on_30_mb_of_jsonl): 30 MB of
JSONL in the task's style in 1.8 to 2.7 s of CPU (runs on a shared 2-core machine), about 0.6 to 0.9 s per
10 MB (plain text is cheaper: one view). Worst case,
measured on 16 MB inputs crafted to hit the slow paths (percent escapes, HTML entities or backslash escapes
on every other character; millions of tiny JSONL records; NFKD-expanding text): 3 to 7 s per 16 MB, so at
most about 0.45 s per MB, about 2 minutes of CPU for a workspace that fills the whole 256 MB budget that way.
Bounded by construction: every byte read or unpacked counts against `MAX_SCAN_BYTES`, each file's views and
decodings together against `MAX_WORK_FACTOR` times its size, nesting against `MAX_DEPTH`. Memory stays within
a small multiple of a 16 MB segment beyond the bytes read (large texts are parsed, normalised and matched a
segment at a time, words 4 MB at a time); archives are unpacked in 1 MB steps.

What it does not see: data deleted before the episode ended or generated in memory and never written;
encryption, compression or encodings it does not know (a custom cipher; base64 misaligned by a stray leading
character; UTF-16-BE without a byte-order mark holding only non-Latin text); homoglyphs (Cyrillic letters for
Latin ones); paraphrases; a question cut in parts stored far apart (two files, or halves in separate blocks),
or broken every few words by junk words (tests/test_review_attacks.py documents both as open); test items
hidden in the bits of float weights. The test items are drawn in secret for each episode, so an agent has
none to hide unless it guesses them.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import codecs
import functools
import hashlib
import html
import io
import json
import lzma
import math
import os
import re
import stat
import sys
import tarfile
import time
import unicodedata
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ptb_gym.integrity import Flag

if TYPE_CHECKING:
    from ptb_gym.workspace import Workspace

NGRAM = 8
"""Words per n-gram."""
CHAR_NGRAM = 24
"""Letters and digits per shingle where letters are spread apart."""
MATCH_COVERAGE = 0.8
"""Share of a test question's distinctive n-grams that must occur close together for it to count as matched."""
MIN_MATCHED_SHARE = 0.02
"""Share of the scored test items that must be matched to flag the episode (and at least MIN_MATCHED_ITEMS)."""
MIN_MATCHED_ITEMS = 3
MAX_SCAN_BYTES = 256 * 1024**2
"""Bytes read from workspace files or unpacked from archives, in all (smallest files first)."""
MAX_DEPTH = 5
"""Levels of archives and encodings within one another."""
MAX_MEMBERS = 20_000
"""Archive members, in all."""
MAX_RATIO = 100
"""Unpacked bytes per compressed byte above which an archive is a bomb (honest text: 5 to 15)."""
MAX_WORK_FACTOR = 8
"""Bytes matched (all views, all decodings) per byte read, per file (honest JSONL: 2)."""
WALK_MAX_DEPTH = 64
WALK_MAX_ENTRIES = 200_000
SPARSE_SLACK = 1024**2
"""A file whose allocated blocks fall short of its size by more than this is sparse."""

_CHUNK = 4 * 1024**2
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"}

# ------------------------------------------------------------------------------------------------ words

# Bytes to lower-case letters and digits; everything else separates words.
_WORD_BYTES = bytearray(b" " * 256)
for _c in range(ord("a"), ord("z") + 1):
    _WORD_BYTES[_c] = _WORD_BYTES[_c - 32] = _c
for _c in range(ord("0"), ord("9") + 1):
    _WORD_BYTES[_c] = _c
_WORD_TABLE = bytes(_WORD_BYTES)
_NON_WORD = bytes(c for c in range(256) if _WORD_BYTES[c] == ord(" "))
_ESCAPES = re.compile(rb"\\[nrtu]")  # JSON's \n, \t, \u00e9, ...: not part of the neighbouring word
_NON_WORD_BYTE = re.compile(rb"[^A-Za-z0-9]")
_ROT13 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                         b"NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")
_ROT47 = bytes.maketrans(bytes(range(33, 127)), bytes(33 + (c - 33 + 47) % 94 for c in range(33, 127)))


def words(data: bytes) -> list[bytes]:
    """The normalised words of a text: lower-case runs of letters or digits."""
    return _ESCAPES.sub(b" ", data).translate(_WORD_TABLE).split()


def squeezed(data: bytes) -> bytes:
    """The letters and digits of a text, lower-cased, nothing between them."""
    return data.translate(_WORD_TABLE, _NON_WORD)


def _variants(text: bytes) -> tuple[bytes, bytes, bytes]:
    """The forms of a question the index holds: as is, rot13, reversed."""
    return text, text.translate(_ROT13), text[::-1]


# ------------------------------------------------------------------------------------------------ index

class TestSetIndex:
    """The scored test questions as word n-gram hashes, minus the n-grams of the data the agent was given.

    Hashes are a 64-bit polynomial over word ids, so they are the same in every process (unlike `hash()`).
    Each question is held in three forms (as is, rot13, reversed) that count as the same item. Questions and
    public texts are normalised as the scan normalises what it reads (`normalise_text`).
    """

    __test__ = False  # not a pytest class

    def __init__(self, questions: Sequence[str], public_texts: Iterable[str] = (), n: int = NGRAM, *,
                 any_number: bool = False):
        self.n = n
        self.any_number = any_number
        self.size = len(questions)
        plain = [normalise_text(q.encode()) for q in questions]
        public_plain = b"\n".join(normalise_text(t.encode()) for t in public_texts)
        self._plain, self._public = plain, public_plain
        forms = [_variants(q) for q in plain]
        tokenized = [[self._words(form) for form in item] for item in forms]
        self._vocab: dict[bytes, int] = {}
        for item in tokenized:
            for form in item:
                for word in form:
                    self._vocab.setdefault(word, len(self._vocab) + 1)
        public = np.unique(np.concatenate(
            [self._ngrams(words(form))[0] for form in _variants(public_plain)]))
        hashes, items = [], []
        self.lengths = np.array([len(item[0]) for item in tokenized], dtype=np.int64)
        self.distinct = np.zeros(self.size, dtype=np.int64)
        for index, item in enumerate(tokenized):
            for variant, form in enumerate(item):
                own = np.unique(self._ngrams(form)[0])
                own = own[~_in_sorted(own, public)]
                if variant == 0:
                    self.distinct[index] = len(own)
                hashes.append(own)
                items.append(np.full(len(own), index, dtype=np.int64))
        all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        order = np.argsort(all_hashes, kind="stable")
        self._hashes = all_hashes[order]
        self._items = np.concatenate(items)[order] if items else np.zeros(0, np.int64)
        self._overlap = 2 * int(self.lengths.max(initial=0)) + n
        self._chars: _CharIndex | None = None

    def _words(self, text: bytes) -> list[bytes]:
        return [b"0" if w.isdigit() else w for w in words(text)] if self.any_number else words(text)

    @property
    def checkable(self) -> int:
        """Test items that can be matched at all (some of their n-grams are in no public split)."""
        return int((self.distinct > 0).sum())

    def _ngrams(self, tokens: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of the n-grams made only of test-question words, and their start positions. With `any_number`
        every number is one word: a question rewritten with other numbers (GSM-Symbolic) still matches."""
        if self.any_number:
            tokens = [b"0" if token.isdigit() else token for token in tokens]
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
        """Per test item: most of its distinctive n-grams found within one window of `data` (4 MB chunks
        that overlap by enough words that no window is cut)."""
        best = np.zeros(self.size, dtype=np.int64)
        if not len(self._hashes):
            return best
        for tokens in _word_chunks(data, self._overlap):
            np.maximum(best, self._best_in(tokens), out=best)
        return best

    def _best_in(self, tokens: list[bytes]) -> np.ndarray:
        best = np.zeros(self.size, dtype=np.int64)
        hashes, positions = self._ngrams(tokens)
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

    def coverage(self, data: bytes) -> np.ndarray:
        """Per test item: the share of its distinctive n-grams found close together in `data`."""
        return self.best_matches(data) / np.maximum(self.distinct, 1)

    def spread_coverage(self, data: bytes) -> np.ndarray:
        """Per test item: the share of its distinctive letter shingles found close together in `data` with
        everything but letters and digits dropped (for letters spread apart by spaces or symbols)."""
        if self._chars is None:
            self._chars = _CharIndex(self._plain, self._public)
        return self._chars.coverage(squeezed(data))


class _CharIndex:
    """Letter-and-digit shingles of the questions (all three forms), minus those of the public splits."""

    def __init__(self, questions: Sequence[bytes], public: bytes, k: int = CHAR_NGRAM):
        self.k = k
        public_shingles: set[bytes] = set()
        for line in public.split(b"\n"):
            for form in _variants(squeezed(line)):
                public_shingles.update(form[i : i + k] for i in range(len(form) - k + 1))
        self.owners: dict[bytes, list[int]] = {}
        self.lengths = np.zeros(len(questions), dtype=np.int64)
        self.distinct = np.zeros(len(questions), dtype=np.int64)
        for item, question in enumerate(questions):
            text = squeezed(question)
            self.lengths[item] = len(text)
            for variant, form in enumerate(_variants(text)):
                own = {form[i : i + k] for i in range(len(form) - k + 1)} - public_shingles
                if variant == 0:
                    self.distinct[item] = len(own)
                for shingle in own:
                    self.owners.setdefault(shingle, []).append(item)

    def coverage(self, text: bytes) -> np.ndarray:
        found: dict[int, tuple[list[int], list[bytes]]] = {}
        owners, k = self.owners, self.k
        for i in range(len(text) - k + 1):
            shingle = text[i : i + k]
            for item in owners.get(shingle, ()):
                positions, shingles = found.setdefault(item, ([], []))
                positions.append(i)
                shingles.append(shingle)
        best = np.zeros(len(self.lengths), dtype=np.int64)
        for item, (positions, shingles) in found.items():
            best[item] = _most_distinct_in_window(np.array(positions), shingles, 2 * int(self.lengths[item]))
        return best / np.maximum(self.distinct, 1)


def _word_chunks(data: bytes, overlap: int) -> Iterator[list[bytes]]:
    """The words of `data` in pieces of about 4 MB, each starting with the last `overlap` words before it."""
    tail: list[bytes] = []
    position = 0
    while position < len(data):
        end = min(len(data), position + _CHUNK)
        if end < len(data):
            boundary = _NON_WORD_BYTE.search(data, end)  # never cut a word
            end = boundary.start() if boundary else len(data)
        tokens = tail + words(data[position:end])
        yield tokens
        tail = tokens[-overlap:] if overlap else []
        position = end


def _in_sorted(values: np.ndarray, sorted_array: np.ndarray) -> np.ndarray:
    """Which of `values` occur in `sorted_array` (binary search: cheaper than np.isin for repeated calls)."""
    if not len(sorted_array):
        return np.zeros(len(values), dtype=bool)
    slots = np.minimum(np.searchsorted(sorted_array, values), len(sorted_array) - 1)
    return sorted_array[slots] == values


def _most_distinct_in_window(positions: Sequence[int], hashes: Sequence[Any], window: int) -> int:
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


# -------------------------------------------------------------------------------------------- normalising

# Format characters (zero-width joiners and spaces, bidi marks, soft hyphens, BOMs) are dropped: they are
# invisible, so a tokenizer sees through them less than we would.
@functools.cache
def _dropped() -> dict[int, None]:
    return dict.fromkeys(c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in ("Cf", "Mn", "Me"))


_MAX_EXPANSION = 4  # NFKD output per input character (a few characters expand 18-fold)


def normalise_text(data: bytes) -> bytes:
    """ASCII text as is; other text decoded as UTF-8, NFKD-normalised, marks and format characters dropped,
    casefolded, encoded as UTF-8 again. Raises _Unscannable if normalisation blows the text up."""
    if data.isascii():
        return data
    text = data.decode("utf-8", "replace")
    drop = _dropped()
    out, size = [], 0
    for start in range(0, len(text), 1 << 20):
        piece = unicodedata.normalize("NFKD", text[start : start + (1 << 20)]).translate(drop).casefold()
        size += len(piece)
        if size > _MAX_EXPANSION * len(text) + 4096:
            raise _Unscannable("text that expands many times over under Unicode normalisation")
        out.append(piece)
    return "".join(out).encode("utf-8", "replace")


def _json_views(data: bytes) -> tuple[bytes, bytes, bytes, bool] | None:
    """The strings of a JSON document or of JSONL lines: each record's values (strings and numbers) joined with
    spaces and joined with nothing, and its keys; and whether every line was JSON. None if it is neither."""
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] not in (b"{", b"[", b'"'):
        return None
    records, complete = _json_records(data)
    if not records:
        return None
    spaced, joined, keys = [], [], []
    for record in records:
        values, names = _strings(record)
        spaced.append(" ".join(values))
        # Joined only where a word may straddle two fields (honest records: "...Answer:" + " 42": never).
        if any(a[-1:].isalnum() and b[:1].isalnum() for a, b in zip(values, values[1:], strict=False)):
            joined.append("".join(values))
        keys.append(" ".join(names))
    return (*("\n".join(texts).encode("utf-8", "surrogatepass") for texts in (spaced, joined, keys)), complete)


def _json_records(data: bytes) -> tuple[list[Any], bool]:
    """The JSON document, or the JSONL lines that parse (one C-speed parse when all do); and whether all did."""
    for candidate in (data, b"[" + b",".join(line for line in data.splitlines() if line.strip()) + b"]"):
        try:
            value = json.loads(candidate)
            return ([value] if candidate is data else value), True
        except (ValueError, RecursionError):
            continue
    records = []
    for line in data.splitlines():
        try:
            records.append(json.loads(line))
        except (ValueError, RecursionError):
            continue
    return records, False


def _strings(value: Any) -> tuple[list[str], list[str]]:
    """The values (strings, numbers) and the keys in a JSON value, in document order (iterative: no recursion
    limit)."""
    values: list[str] = []
    keys: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            values.append(item)
        elif isinstance(item, dict):
            keys.extend(item)
            stack.extend(reversed(item.values()))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif item is not None:
            values.append(str(item))
    return values, keys


def _wide_text(data: bytes) -> list[tuple[str, bytes]]:
    """UTF-16 or UTF-32 decodings of `data`, by byte-order mark or by where its zero bytes are."""
    boms = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
            (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    for bom, codec in boms:
        if data.startswith(bom):
            unit = 4 if codec == "utf-32" else 2
            return [(codec, data[: len(data) // unit * unit].decode(codec, "replace").encode("utf-8", "replace"))]
    if len(data) < 64 or data.count(0) < len(data) // 10:
        return []
    quads = np.frombuffer(data[: len(data) // 4 * 4], dtype=np.uint8).reshape(-1, 4)
    zeros = (quads == 0).mean(axis=0)
    views = []
    offset16 = 0 if zeros[0] + zeros[2] <= zeros[1] + zeros[3] else 1  # LE: the high (zero) byte second
    views.append(("utf-16", data[offset16:]))
    offset32 = int(np.argmin(zeros))  # LE: the one byte that is not zero comes first
    if zeros.max() > 0.5 and np.sort(zeros)[1] > 0.5:
        views.append(("utf-32", data[offset32:]))
    out = []
    for codec, chunk in views:
        unit = 4 if codec == "utf-32" else 2
        text = chunk[: len(chunk) // unit * unit].decode(codec + "-le", "replace")
        out.append((codec, text.encode("utf-8", "replace")))
    return out


_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_ENTITY = re.compile(rb"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_TRIGGER = 16  # occurrences of an escape before a text is unescaped


def _unescaped(data: bytes) -> bytes | None:
    """The text with percent-encoding, backslash escapes and HTML entities undone (those that occur at least
    16 times), or None if none does."""
    out, changed = data, False
    if out.count(b"%") >= _TRIGGER:
        decoded = _PERCENT.sub(lambda m: bytes.fromhex(m.group(1).decode()), out)
        changed |= decoded != out
        out = decoded
    if out.count(b"\\") >= _TRIGGER:
        # unicode_escape reads other bytes as Latin-1: escape what is not ASCII first, so UTF-8 survives.
        ascii_text = out.decode("utf-8", "replace").encode("ascii", "backslashreplace")
        with warnings.catch_warnings():  # "invalid escape sequence" for every stray backslash
            warnings.simplefilter("ignore", DeprecationWarning)
            out = codecs.decode(ascii_text, "unicode_escape", "ignore").encode("utf-8", "replace")
        changed = True
    if out.count(b"&") >= _TRIGGER and _ENTITY.search(out):
        out = html.unescape(out.decode("utf-8", "replace")).encode("utf-8", "replace")
        changed = True
    return out if changed else None


_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{40,}={0,2}(?:\r?\n[A-Za-z0-9+/_-]+={0,2})*")
_BASE32_RUN = re.compile(rb"[A-Z2-7]{40,}={0,6}")
_HEX_RUN = re.compile(rb"(?:(?:0[xX]|\\x)?[0-9A-Fa-f]{2}(?:, ?|[ :])?){20,}")
_HEX_NOISE = re.compile(rb"0[xX]|\\x|[^0-9A-Fa-f]")
_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _class_table(members: str) -> bytes:
    return bytes(ord("a") if chr(c) in members else ord(" ") for c in range(256))


_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_BASE64_CLASS = _class_table(_ALNUM + "+/_-\r\n")
_BASE32_CLASS = _class_table("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_HEX_CLASS = _class_table("0123456789abcdefABCDEFxX\\,: ")
_ALNUM_MASK = bytes(1 if chr(c) in _ALNUM else 0 for c in range(256))


def _regions(text: bytes, table: bytes, length: int) -> Iterator[bytes]:
    """The stretches of `text` made only of the characters `table` maps to "a", at least `length` long (a
    C-speed prefilter before the exact regular expressions), with a few bytes of margin."""
    classes = text.translate(table)
    needle = b"a" * length
    position = classes.find(needle)
    while position >= 0:
        end = classes.find(b" ", position + length)
        end = len(text) if end < 0 else end
        yield text[max(0, position - 2) : end + 4]
        position = classes.find(needle, end)


def _decoded_runs(text: bytes) -> Iterator[tuple[str, bytes]]:
    """What the base64 and hex runs of a text decode to."""
    for region in _regions(text, _BASE64_CLASS, 40):
        for match in _BASE64_RUN.finditer(region):
            yield "base64", _base64_lines(match.group(0))
    for region in _regions(text, _BASE32_CLASS, 40):
        for match in _BASE32_RUN.finditer(region):
            run = match.group(0).rstrip(b"=")
            try:
                yield "base32", base64.b32decode(run[: len(run) // 8 * 8])
            except (binascii.Error, ValueError):
                continue
    for region in _regions(text, _HEX_CLASS, 40):
        for match in _HEX_RUN.finditer(region):
            digits = _HEX_NOISE.sub(b"", match.group(0))
            yield "hex", bytes.fromhex(digits[: len(digits) // 2 * 2].decode())


def _base64_lines(run: bytes) -> bytes:
    """Decode a base64 run line by line: lines that end a value (padded, or not a whole number of quartets)
    end with a newline, others (MIME's 76-character lines) continue on the next."""
    out = bytearray()
    for line in run.translate(_URLSAFE, b"\r").split(b"\n"):
        body = line.rstrip(b"=")
        ended = len(body) != len(line) or len(body) % 4
        body = body[: len(body) - 1] if len(body) % 4 == 1 else body + b"=" * (-len(body) % 4)
        try:
            out += binascii.a2b_base64(body)
        except (binascii.Error, ValueError):
            ended = True
        if ended:
            out += b"\n"
    return bytes(out)


def _spread_letters(text: bytes, least: int = 12, gap: int = 12) -> bytes:
    """The runs of at least `least` single letters or digits, each `gap` characters or fewer from the next
    (`L i l y`, `L.i.l.y`), joined by newlines (numpy over the letter mask: no per-character Python)."""
    if len(text) < 2 * least:
        return b""
    mask = np.frombuffer(text.translate(_ALNUM_MASK), dtype=np.int8)
    edges = np.diff(np.concatenate(([0], mask, [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    linked = (ends[:-1] - starts[:-1] == 1) & (ends[1:] - starts[1:] == 1) & (starts[1:] - ends[:-1] <= gap)
    if linked.sum() < least - 1:
        return b""
    steps = np.diff(np.concatenate(([0], linked.astype(np.int8), [0])))
    run_starts, run_ends = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    keep = run_ends - run_starts >= least - 1
    return b"\n".join(text[starts[a] : ends[b]] for a, b in zip(run_starts[keep], run_ends[keep], strict=True))


# --------------------------------------------------------------------------------------------- archives

class _Unscannable(Exception):
    """Why a file (or a part of it) cannot be scanned."""


_UNSUPPORTED = {b"7z\xbc\xaf\x27\x1c": "7z", b"Rar!\x1a\x07": "rar", b"\x28\xb5\x2f\xfd": "zstd",
                b"\x04\x22\x4d\x18": "lz4"}
_STREAMS = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
_BZ2_BLOCK = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")
_ZLIB_HEADERS = {b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"}
_STEP = 1024**2


def _archive_kind(data: bytes) -> str | None:
    for magic, kind in _STREAMS.items():
        if data.startswith(magic) and (kind != "bz2" or _BZ2_BLOCK.match(data)):
            return kind
    if data[:2] in _ZLIB_HEADERS and len(data) > 8:
        return "zlib"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")) or b"PK\x05\x06" in data[-65_557:]:
        return "zip"
    if data[257:262] == b"ustar":
        return "tar"
    for magic, kind in _UNSUPPORTED.items():
        if data.startswith(magic):
            raise _Unscannable(f"a {kind} archive, which the scan cannot open (store it uncompressed, or as "
                               f"zip, tar, gzip, bz2 or xz)")
    return None


def _decompress(kind: str, data: bytes, limit: int) -> tuple[bytes, bytes]:
    """(unpacked, trailing bytes) of a gzip, zlib, bz2 or xz stream (gzip: all its members), at most `limit`
    bytes and at most MAX_RATIO times the input, in bounded steps."""
    out = bytearray()
    rest = data
    while True:
        if kind in ("gzip", "zlib"):
            decoder: Any = zlib.decompressobj(31 if kind == "gzip" else 15)
            pending = rest
            while not decoder.eof:
                piece = decoder.decompress(pending, _STEP)
                pending = decoder.unconsumed_tail
                out += piece
                _check_growth(len(out), len(data), limit)
                if not piece and not pending:
                    raise _Unscannable(f"a truncated {kind} stream")
            rest = decoder.unused_data
        else:
            decoder = bz2.BZ2Decompressor() if kind == "bz2" else lzma.LZMADecompressor()
            out += decoder.decompress(rest, _STEP)
            _check_growth(len(out), len(data), limit)
            while not decoder.eof:
                if decoder.needs_input:
                    raise _Unscannable(f"a truncated {kind} stream")
                out += decoder.decompress(b"", _STEP)
                _check_growth(len(out), len(data), limit)
            rest = decoder.unused_data
        if not (kind == "gzip" and rest.startswith(b"\x1f\x8b")) and not (kind == "bz2" and rest.startswith(b"BZh")):
            return bytes(out), rest


def _check_growth(size: int, compressed: int, limit: int) -> None:
    if size > _STEP and size > MAX_RATIO * compressed:
        raise _Unscannable(f"an archive bomb (it unpacks to more than {MAX_RATIO} times its size)")
    if size > limit:
        raise _Unscannable("an archive that unpacks past the scan budget "
                           f"({MAX_SCAN_BYTES // 1024**2} MiB for the whole workspace)")


def _zip_entries(data: bytes) -> int:
    """How many entries the zip's central directory may hold, from its size (bounds zipfile's own parse)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        raise _Unscannable("a corrupt zip archive (no end of central directory)")
    size = int.from_bytes(data[end + 12 : end + 16], "little")
    if size == 0xFFFFFFFF:  # zip64: the size is in the zip64 end record the locator points to
        locator = end - 20
        if locator < 0 or data[locator : locator + 4] != b"PK\x06\x07":
            raise _Unscannable("a corrupt zip64 archive")
        record = int.from_bytes(data[locator + 8 : locator + 16], "little")
        size = int.from_bytes(data[record + 40 : record + 48], "little") if record + 48 <= len(data) else 1 << 62
    return size // 46  # the smallest central directory entry is 46 bytes


def _members(kind: str, data: bytes, scan: _Scan) -> Iterator[tuple[str, bytes]]:
    """(name, content) of a zip's or tar's regular members, each read in bounded steps."""
    if kind == "zip":
        if _zip_entries(data) > scan.members_left:
            raise _Unscannable(f"an archive with more than {MAX_MEMBERS} members")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                scan.count_member()
                if info.file_size > _STEP and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                    raise _Unscannable(f"an archive bomb (a member unpacks to more than {MAX_RATIO} times its size)")
                if info.file_size > scan.bytes_left:
                    raise _Unscannable("an archive that unpacks past the scan budget")
                with archive.open(info) as stream:
                    yield info.filename, _read_bounded(stream, info.file_size)
    else:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            while (member := archive.next()) is not None:
                scan.count_member()
                if member.issparse():
                    raise _Unscannable("a tar archive with a sparse member")
                if not member.isreg():
                    continue  # directories, links and devices in a tar carry no content
                if member.size > scan.bytes_left:
                    raise _Unscannable("an archive that unpacks past the scan budget")
                stream = archive.extractfile(member)
                if stream is not None:
                    yield member.name, _read_bounded(stream, member.size)


def _read_bounded(stream: Any, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        piece = stream.read(min(_STEP, size - len(out)))
        if not piece:
            break
        out += piece
    return bytes(out)


def float_weights_only(data: bytes, size: int | None = None) -> bool:
    """Is this (the start of) a well-formed safetensors file whose tensors are all floating point and whose
    size (`size`, else len(data)) is exactly what its header says? Model weights: there is no text in them."""
    size = len(data) if size is None else size
    if len(data) < 10:
        return False
    header_size = int.from_bytes(data[:8], "little")
    if not 2 <= header_size <= min(size - 8, len(data) - 8, 100 * 1024**2) or data[8:9] != b"{":
        return False
    try:
        header = json.loads(data[8 : 8 + header_size])
        if not isinstance(header, dict):
            return False
        tensors = [v for k, v in header.items() if k != "__metadata__"]
        spans = sorted((int(t["data_offsets"][0]), int(t["data_offsets"][1])) for t in tensors)
        contiguous = all(b[0] == a[1] for a, b in zip(spans, spans[1:], strict=False))
        end = spans[-1][1] if spans else 0
        return (bool(spans) and spans[0][0] == 0 and contiguous
                and all(a <= b for a, b in spans) and 8 + header_size + end == size
                and all(isinstance(t, dict) and t.get("dtype") in _FLOAT_DTYPES for t in tensors))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        return False


_SIGN_SAMPLE = 16 * 1024
_SIGN_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}


def _header_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


def _sample_offsets(start: int, size: int) -> list[int]:
    """Three places to sample a tensor region from: its start, middle and end."""
    span = max(0, size - start - _SIGN_SAMPLE)
    return sorted({start, start + span // 2, start + span})


def _signed_like_weights(head: bytes, samples: list[bytes]) -> bool:
    """Do the sampled values look like trained weights, about half of them negative? A text under a float
    header does not: printable characters never set the sign bit (the top bit of each value's last byte)."""
    try:
        header = json.loads(head[8 : _header_end(head)])
        width = next(_SIGN_BYTES[t["dtype"]] for k, t in header.items() if k != "__metadata__")
    except (ValueError, KeyError, StopIteration, TypeError, AttributeError):
        return False
    data = b"".join(sample[: len(sample) // width * width] for sample in samples)
    if len(data) < 64 * width:
        return False  # too few values to tell: scanned as bytes, which costs little at this size
    signs = np.frombuffer(data, dtype=np.uint8)[width - 1 :: width] >> 7
    return 0.1 <= float(signs.mean()) <= 0.9


# ------------------------------------------------------------------------------------------------- scan

_SEGMENT = 16 * 1024**2
_SEGMENT_OVERLAP = 64 * 1024


def _segments(data: bytes) -> Iterator[bytes]:
    """`data` in pieces of about 16 MB, each cut after a newline and starting 64 KB before the previous cut."""
    start = 0
    while start < len(data):
        cut = data.find(b"\n", start + _SEGMENT)
        end = len(data) if cut < 0 or len(data) - cut < _SEGMENT_OVERLAP else cut + 1
        yield data[max(0, start - _SEGMENT_OVERLAP) if start else 0 : end]
        start = end


class _Scan:
    """One scan's state: the best coverage per test item and where, budgets, what could not be scanned."""

    def __init__(self, index: TestSetIndex, max_bytes: int):
        self.index = index
        self.best = np.zeros(index.size)
        self.where: dict[int, tuple[str, str]] = {}
        self.bytes_left = max_bytes
        self.members_left = MAX_MEMBERS
        self.work_left = 0
        self.files = self.bytes = self.weights_skipped = 0
        self.unscannable: list[dict[str, str]] = []
        self.skipped: list[dict[str, str]] = []
        self.known: set[bytes] = set()
        """sha256 digests of the bytes scanned so far and of the public files (nothing to find in them)."""
        self.duplicates = 0
        self.started = time.monotonic()

    def count_member(self) -> None:
        self.members_left -= 1
        if self.members_left < 0:
            raise _Unscannable(f"more than {MAX_MEMBERS} archive members in all")

    def file(self, name: str, data: bytes) -> None:
        """Scan one file's bytes; whatever stops it is recorded as unscannable, never raised. A file whose bytes
        were scanned already (the train tool's copy of a data file), or that are exactly a public file the env
        wrote itself (the train and dev splits), is not scanned again: the same bytes give the same matches."""
        digest = hashlib.sha256(data).digest()
        if digest in self.known:
            self.duplicates += 1
            return
        self.known.add(digest)
        self.files += 1
        self.bytes += len(data)
        self.work_left = MAX_WORK_FACTOR * len(data) + 64 * 1024
        try:
            self._blob(name, "", data, 0, set())
        except _Unscannable as why:
            self.unscannable.append({"path": name, "why": str(why)})
        except (MemoryError, RecursionError):
            self.unscannable.append({"path": name, "why": "too large or too deeply nested to scan"})
        except Exception as error:  # noqa: BLE001 - hostile bytes reach odd corners of the stdlib's parsers
            self.unscannable.append({"path": name, "why": f"a corrupt file ({type(error).__name__})"})

    def _blob(self, name: str, how: str, data: bytes, depth: int, seen: set[int]) -> None:
        if depth > MAX_DEPTH:
            if _archive_kind(data):
                raise _Unscannable(f"archives nested more than {MAX_DEPTH} deep")
            return
        kind = _archive_kind(data)
        if kind in _STREAMS.values() or kind == "zlib":
            try:
                content, rest = _decompress(kind, data, self.bytes_left)
            except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError, _Unscannable) as error:
                if kind != "zlib" or isinstance(error, _Unscannable) and "truncated" not in str(error):
                    why = error if isinstance(error, _Unscannable) else f"a corrupt {kind} stream ({error})"
                    raise _Unscannable(str(why)) from None
                content, rest = None, b""  # two bytes that look like a zlib header ("x^2 ..."): text
            if content is not None:
                self.bytes_left -= len(content)
                self.work_left += MAX_WORK_FACTOR * len(content)  # unpacked bytes count as a file's (bounded above)
                self._blob(name if name.endswith(" (unpacked)") else f"{name} (unpacked)",
                           how, content, depth + 1, seen)
                if rest.strip(b"\x00"):
                    self._blob(name, how, rest, depth + 1, seen)
                return
        if kind in ("zip", "tar"):
            try:
                for member, content in _members(kind, data, self):
                    self.bytes_left -= len(content)
                    self.work_left += MAX_WORK_FACTOR * len(content)
                    self._blob(f"{name}:{member}", how, content, depth + 1, seen)
            except (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError,
                    RuntimeError, NotImplementedError, ValueError) as error:
                raise _Unscannable(f"a corrupt, encrypted or unsupported {kind} archive "
                                   f"({type(error).__name__})") from None
            # The bytes themselves too: text may be glued before the archive, and tar members are plain.
        if float_weights_only(data) and _signed_like_weights(
                data, [data[offset : offset + _SIGN_SAMPLE] for offset in _sample_offsets(_header_end(data), len(data))]):
            self.weights_skipped += 1
            return
        if len(data) > _SEGMENT:
            # Large texts a segment at a time (cut after a newline, overlapping): parsing and normalising never
            # hold more than a segment's worth of Python objects.
            for segment in _segments(data):
                self._text(name, how, segment, depth, seen)
        else:
            self._text(name, how, data, depth, seen)

    def _text(self, name: str, how: str, data: bytes, depth: int, seen: set[int]) -> None:
        for view, text in self._views(data):
            label = "+".join(filter(None, (how, view)))
            self._match(name, label, text)
            if depth < MAX_DEPTH:
                self._decode_runs(name, label, text, depth, seen)

    def _views(self, data: bytes) -> Iterator[tuple[str, bytes]]:
        """The texts `data` is matched as (see the module docstring)."""
        parsed = _json_views(data)
        # A file that is all JSON: its decoded strings say all its raw bytes say, and more.
        primary, how = (parsed[0], "json") if parsed is not None and parsed[3] else (data, "")
        yield how, normalise_text(primary)
        if parsed is not None:
            if not parsed[3]:
                yield "json", normalise_text(parsed[0])
            yield "json-joined", normalise_text(parsed[1])
            yield "json-keys", normalise_text(parsed[2])
        for codec, text in _wide_text(data):
            yield codec, normalise_text(text)
        unescaped = _unescaped(primary)
        if unescaped is not None:
            yield f"{how}+unescaped".lstrip("+"), normalise_text(unescaped)
        if primary.isascii():  # rot47 changes case and digits, so it is decoded here, not held in the index
            yield f"{how}+rot47".lstrip("+"), primary.translate(_ROT47)

    def _decode_runs(self, name: str, how: str, text: bytes, depth: int, seen: set[int]) -> None:
        pieces: dict[str, list[bytes]] = {}
        for codec, decoded in _decoded_runs(text):
            key = hash(decoded)
            if key in seen or len(decoded) < 16:
                continue
            seen.add(key)
            if _archive_kind(decoded) or decoded.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) \
                    or decoded.count(0) > len(decoded) // 10:
                self._blob(name, f"{how}+{codec}".lstrip("+"), decoded, depth + 1, seen)
            else:
                pieces.setdefault(codec, []).append(decoded)
        for codec, parts in pieces.items():
            self._blob(name, f"{how}+{codec}".lstrip("+"), b"\n".join(parts), depth + 1, seen)

    def _match(self, name: str, how: str, text: bytes) -> None:
        self.work_left -= len(text)
        if self.work_left < 0:
            raise _Unscannable(f"decodes to more than {MAX_WORK_FACTOR} times its size (encodings within "
                               f"encodings)")
        coverage = self.index.coverage(text)
        spread = _spread_letters(text)
        if spread:
            self.work_left -= len(spread)
            np.maximum(coverage, self.index.spread_coverage(spread), out=coverage)
        better = np.flatnonzero(coverage > self.best)
        self.best[better] = coverage[better]
        for item in better:
            self.where[int(item)] = (name, how or "plain")

    def verdict(self) -> tuple[Flag | None, dict[str, Any]]:
        index = self.index
        coverage = np.where(index.distinct > 0, self.best, 0.0)
        matched = np.flatnonzero(coverage >= MATCH_COVERAGE)
        threshold = max(MIN_MATCHED_ITEMS, math.ceil(MIN_MATCHED_SHARE * index.size))
        files = Counter(self.where[int(i)][0] for i in matched)
        stats: dict[str, Any] = {
            "matched_items": len(matched), "threshold_items": threshold, "test_items": index.size,
            "checkable_items": index.checkable, "ngram": index.n, "match_coverage": MATCH_COVERAGE,
            "files_scanned": self.files, "bytes_scanned": self.bytes, "weights_skipped": self.weights_skipped,
            "seconds": round(time.monotonic() - self.started, 3), "files": dict(files.most_common(10)),
            "unscannable_count": len(self.unscannable), "unscannable": self.unscannable[:20],
            "skipped_count": len(self.skipped), "skipped": self.skipped[:20], "duplicates": self.duplicates,
        }
        messages = []
        if len(matched) >= threshold:
            stats["examples"] = [{"test_item": int(i), "file": self.where[int(i)][0], "how": self.where[int(i)][1],
                                  "coverage": round(float(coverage[i]), 2)} for i in matched[:5]]
            top = ", ".join(f"{name} ({count})" for name, count in files.most_common(3))
            messages.append(f"training data contains {len(matched)} of the {index.size} hidden test questions "
                            f"(exact, near-duplicate or encoded copies; {threshold} flag an episode), in {top}")
        if self.unscannable:
            shown = "; ".join(f"{u['path']}: {u['why']}" for u in self.unscannable[:3])
            more = f" and {len(self.unscannable) - 3} more" if len(self.unscannable) > 3 else ""
            messages.append(f"{len(self.unscannable)} thing(s) in the workspace cannot be scanned for test items "
                            f"({shown}{more}); a workspace that cannot be scanned cannot be trusted: delete them "
                            f"(or store them plainly) before the episode ends")
        if not messages:
            return None, stats
        evidence = {**stats, "unscannable": self.unscannable[:20]} if self.unscannable else stats
        return Flag("contamination", "; ".join(messages), evidence), stats


def scan_data(name: str, data: bytes, index: TestSetIndex, *, max_bytes: int = MAX_SCAN_BYTES,
              ) -> tuple[Flag | None, dict[str, Any]]:
    """Scan one file's bytes (the `train` tool's data file) for test questions; the flag (or None) and the
    scan's statistics. Data over `max_bytes` is unscannable, and flagged."""
    scan = _Scan(index, max_bytes)
    if len(data) > max_bytes:
        scan.unscannable.append({"path": name, "why": f"over the scan budget ({max_bytes // 1024**2} MiB)"})
    else:
        scan.bytes_left -= len(data)
        scan.file(name, data)
    return scan.verdict()


def prepare(index: TestSetIndex) -> None:
    """Build what a scan builds on first use (the letter-shingle index, the Unicode tables: about 1 s), so that
    a scan that comes later does not pay for it."""
    index.spread_coverage(b"")
    normalise_text("\u00e9".encode())


def scan_workspace(workspace: Workspace, index: TestSetIndex, *, max_bytes: int = MAX_SCAN_BYTES,
                   extra_files: Iterable[tuple[str, bytes]] = (), public_digests: Iterable[bytes] = (),
                   ) -> tuple[Flag | None, dict[str, Any]]:
    """Scan every file of the workspace for test questions, smallest first; the flag (or None) and the scan's
    statistics. Links, special files, files over the remaining budget, sparse files and a tree past the walk's
    limits are unscannable, and flagged. Never raises on workspace content.

    `extra_files`: (name, bytes) scanned in the same verdict with a budget of their own (the data files the
    train tool was given), so that test items spread over several files add up. `public_digests`: sha256 digests
    of files whose exact bytes are public (the splits the env wrote into the workspace): such files are skipped."""
    scan = _Scan(index, max_bytes)
    scan.known.update(public_digests)
    files = []
    try:
        for entry in workspace.walk(".", max_depth=WALK_MAX_DEPTH, max_entries=WALK_MAX_ENTRIES):
            if entry.kind == "file":
                files.append((entry.size, entry.relative))
            elif entry.kind == "truncated":
                detail = f" ({entry.detail})" if getattr(entry, "detail", "") else ""
                scan.unscannable.append({"path": entry.relative or ".", "why": f"{_TRUNCATED}{detail}"})
            elif entry.kind in ("link", "fifo", "socket"):
                # No content to hide: a link's target is scanned where it lies (the sandbox lets the agent write
                # nowhere else), and the episode's processes, which alone could feed a FIFO, are gone by now.
                scan.skipped.append({"path": entry.relative, "kind": entry.kind})
            elif entry.kind != "dir":
                scan.unscannable.append({"path": entry.relative, "why": f"a {entry.kind}, not a regular file"})
    except Exception as error:  # noqa: BLE001 - a ToolError past the walk's limits, or the tree changing under it
        scan.unscannable.append({"path": ".", "why": f"{_TRUNCATED} ({error})"})
    for _, relative in sorted(files):
        try:
            data = _read_file(workspace, relative, scan.bytes_left)
        except _Unscannable as why:
            scan.unscannable.append({"path": relative, "why": str(why)})
            continue
        if data is None:
            scan.weights_skipped += 1
            continue
        scan.bytes_left -= len(data)
        scan.file(relative, data)
    scan.bytes_left = max_bytes
    for name, data in extra_files:
        if len(data) > scan.bytes_left:
            scan.unscannable.append({"path": name, "why": "over the scan budget"})
            continue
        scan.bytes_left -= len(data)
        scan.file(name, data)
    return scan.verdict()


_TRUNCATED = (f"the tree is deeper than {WALK_MAX_DEPTH} directories or has more than {WALK_MAX_ENTRIES} "
              f"entries, or changed while it was walked; the rest was not scanned")


def _read_file(workspace: Workspace, relative: str, limit: int) -> bytes | None:
    """A workspace file's bytes (None for float safetensors weights, which are not read), checked and read
    through one descriptor opened without following links and without blocking."""
    try:
        fd = workspace.open_fd(relative, os.O_RDONLY | os.O_NONBLOCK, expect="file")
    except Exception as error:  # noqa: BLE001 - ToolError (a link, a FIFO swapped in) or OSError: unscannable
        raise _Unscannable(f"cannot be opened as a regular file ({error})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unscannable("not a regular file")
        size = info.st_size
        if size > SPARSE_SLACK and info.st_blocks * 512 < size - SPARSE_SLACK:
            raise _Unscannable(f"a sparse file ({size} bytes, {info.st_blocks * 512} on disk)")
        head = os.pread(fd, 8, 0)
        header_size = int.from_bytes(head, "little") if len(head) == 8 else 0
        if 2 <= header_size <= min(size - 8, 100 * 1024**2):
            start = os.pread(fd, 8 + header_size, 0)
            if float_weights_only(start, size) and _signed_like_weights(
                    start, [os.pread(fd, _SIGN_SAMPLE, offset) for offset in _sample_offsets(8 + header_size, size)]):
                return None
        if size > limit:
            raise _Unscannable(f"over the scan budget ({size} bytes, {max(limit, 0)} left of "
                               f"{MAX_SCAN_BYTES // 1024**2} MiB)")
        out = bytearray()
        while len(out) <= size:
            piece = os.pread(fd, min(_STEP, size + 1 - len(out)), len(out))
            if not piece:
                break
            out += piece
        if len(out) > size:
            raise _Unscannable("grew while it was read")
        return bytes(out)
    except OSError as error:
        raise _Unscannable(f"cannot be read ({error.strerror})") from None
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- the task's index

def build_index(test_records: Iterable[Mapping[str, Any]], public_records: Iterable[Mapping[str, Any]], *,
                any_number: bool = False) -> TestSetIndex:
    """The index of these test records' questions, minus the text of the public records."""
    questions = [_question(item) for item in test_records]
    public = [" ".join(str(v) for v in record.values() if isinstance(v, str)) for record in public_records]
    return TestSetIndex(questions, public, any_number=any_number)


def _question(item: Mapping[str, Any]) -> str:
    for key in ("question", "prompt", "problem", "text"):
        if isinstance(item.get(key), str):
            return item[key]
    return " ".join(str(v) for v in item.values() if isinstance(v, str))
