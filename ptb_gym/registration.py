"""The one list of registered env ids: each a task (a family and its version) and the `gym.make` keywords of its
preset.

`import ptb_gym` registers every id here with Gymnasium, and `ptb_gym.envs.load_task` loads the tasks it names;
nothing else lists ids, tasks or families. A change to a task's data, prompts or recorded scores changes what its
rewards mean, so it is a new version (`PTB/math-v1`), and the old one stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EnvEntry:
    """A registered id `PTB/<family>-<version>`: a task (a version of a family) and the keywords of its preset."""

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The task's name, e.g. `math-v1`: family `math`, version `v1` (`TASKS["v1"]` of `ptb_gym.envs.math`)."""
        return self.id.removeprefix("PTB/")

    @property
    def family(self) -> str:
        return self.task.rsplit("-", 1)[0]


ENVS: tuple[EnvEntry, ...] = (
    EnvEntry("PTB/math-v0"),
    EnvEntry("PTB/math-v1"),
    EnvEntry("PTB/code-v0"),
    EnvEntry("PTB/tools-v0"),
)
TASK_NAMES: tuple[str, ...] = tuple(entry.task for entry in ENVS)
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(entry.family for entry in ENVS))
