"""What the families' pretraining corpora share: documents assembled from snippet writers.

Each family's `corpus.documents(rng, n)` gives the shared base model's pretraining documents of its domain
(`baselines/pretrain_small.py` mixes them); this composes them from weighted writers of snippets.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

Writer = Callable[[random.Random], str]


def compose(rng: random.Random, n: int, writers: Sequence[tuple[Writer, float]], max_chars: int) -> list[str]:
    """`n` documents of one to four snippets each, from `writers` by weight, each under `max_chars` characters;
    deterministic in the state of `rng`."""
    write, weights = zip(*writers)
    docs = []
    for _ in range(n):
        parts: list[str] = []
        size = 0
        for _ in range(rng.randint(1, 4)):
            part = rng.choices(write, weights)[0](rng)
            if size + len(part) + 2 > max_chars:
                break
            parts.append(part)
            size += len(part) + 2
        docs.append("\n\n".join(parts) if parts else part[:max_chars])
    return docs
