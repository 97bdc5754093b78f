"""How every family draws its splits: train and dev fixed, test drawn from the episode's secret, none overlapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

Item = TypeVar("Item")
SPLITS = ("train", "dev", "test")


def draw(name: str, n: int | None, seed: int | None, *, sizes: Mapping[str, int], seeds: Mapping[str, int],
         stream: Callable[[int], Iterator[Item]], key: Callable[[Item], Any],
         keys: Callable[[str], frozenset]) -> list[Item]:
    """The first `n` items (default `sizes[name]`) of `stream(seed)` with distinct `key`s, none the key of an item
    of an earlier split at its default size (dev after train, test after both); `keys(split)` gives those (cached
    by the family). Only the test split takes a `seed`; None gives the split's fixed one, `seeds[name]`."""
    if name not in seeds:
        raise ValueError(f"unknown split {name!r}: expected one of {sorted(seeds)}")
    if seed is not None and name != "test":
        raise ValueError("only the test split is drawn from a seed; train and dev are fixed")
    n = sizes[name] if n is None else n
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    excluded = frozenset().union(*(keys(earlier) for earlier in SPLITS[:SPLITS.index(name)]))
    seen: set = set()
    out: list[Item] = []
    for item in stream(seeds[name] if seed is None else seed):
        if len(out) >= n:
            break
        if key(item) in seen or key(item) in excluded:
            continue
        seen.add(key(item))
        out.append(item)
    return out
