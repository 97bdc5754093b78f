"""The env's spaces: free text in both directions.

Gymnasium's `Text` space only admits a fixed character set (alphanumerics by default), and its shared-memory
transport for `AsyncVectorEnv` drops characters outside that set and never clears a slot, so a short
observation following a long one comes back with the tail of the old one. `AsyncVectorEnv` reads its shared memory once, at
construction, expecting a live numpy view; Gymnasium's `Text` reader returns a tuple of strings instead, so
every later step returns the text of the first reset. `UnicodeText` admits any string up to `max_length`
characters and registers its own transport: code points plus a length, read through a live view that decodes
on access and snapshots on copy, so `gym.make_vec(..., vectorization_mode="async")` returns each env's real,
current text with the default `shared_memory=True`.
"""

from __future__ import annotations

import multiprocessing as mp
import string
from ctypes import c_uint32
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

# What `sample()` draws from: printable ASCII, so sampled actions are readable in logs and transcripts.
_SAMPLE_CHARSET = string.printable


class UnicodeText(Text):
    """Any Python string of at most `max_length` characters (observations, tool calls)."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | np.random.Generator | None = None):
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    __hash__ = Text.__hash__


# Shared-memory layout per env: slot 0 holds the length, slots 1..max_length the code points.
@create_shared_memory.register(UnicodeText)
def _create(space: UnicodeText, n: int = 1, ctx: ModuleType = mp):
    return ctx.Array(c_uint32, n * (space.max_length + 1))


@write_to_shared_memory.register(UnicodeText)
def _write(space: UnicodeText, index: int, value: str, shared_memory) -> None:
    width = space.max_length + 1
    slot = np.frombuffer(shared_memory.get_obj(), dtype=np.uint32)[index * width : (index + 1) * width]
    codes = np.frombuffer(value[: space.max_length].encode("utf-32-le"), dtype=np.uint32)
    slot[0] = len(codes)
    slot[1 : 1 + len(codes)] = codes


class LiveTexts(Sequence[str]):
    """The texts in shared memory, decoded when read; a (deep) copy is a tuple of the current texts."""

    def __init__(self, data: np.ndarray):
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        row = self._data[index]
        return row[1 : 1 + int(row[0])].tobytes().decode("utf-32-le")

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return tuple(self)

    __copy__ = lambda self: tuple(self)  # noqa: E731

    def __eq__(self, other: Any) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"LiveTexts({tuple(self)!r})"


@read_from_shared_memory.register(UnicodeText)
def _read(space: UnicodeText, shared_memory, n: int = 1) -> LiveTexts:
    width = space.max_length + 1
    return LiveTexts(np.frombuffer(shared_memory.get_obj(), dtype=np.uint32).reshape(n, width))
