"""The one list of registered env ids: each a task family and the `gym.make` keywords of its preset.

`import ptb_gym` registers every id here with Gymnasium, and `ptb_gym.envs` loads the families it names; nothing
else lists ids or families.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EnvEntry:
    """A registered id: a task family and the `gym.make` keywords that make its preset."""

    id: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)


ENVS: tuple[EnvEntry, ...] = (
    EnvEntry("PTB/math-v0", "math"),
)
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(entry.family for entry in ENVS))
