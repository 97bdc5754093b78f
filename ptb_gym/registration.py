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
    """A registered id: a task (a version of a family) and the `gym.make` keywords of its preset. The id is
    `PTB/<family>-<version>` (`PTB/math-v1`), or `PTB/<family>-<model>-<version>` for a preset of a real
    benchmark on a real base model (`PTB/gsm8k-gemma3-270m-v0`: task `gsm8k-v0`)."""

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    """The preset's base model in the id, e.g. `gemma3-270m` (None: the task's own model)."""
    tier: str = "embedded"
    """`embedded` (CPU, offline, minutes), `small` (one real small model, one GPU) or `full` (PostTrainBench's
    cells: 10 h on an H100-class GPU)."""

    @property
    def task(self) -> str:
        """The task's name, e.g. `math-v1`: family `math`, version `v1` (`TASKS["v1"]` of `ptb_gym.envs.math`)."""
        name = self.id.removeprefix("PTB/")
        return name.replace(f"-{self.model}-", "-") if self.model else name

    @property
    def family(self) -> str:
        return self.task.rsplit("-", 1)[0]


SMALL_TIER = {"base_model": "gemma-3-270m", "budget_s": 900.0, "disk_quota_bytes": 8 * 1024**3}
"""One GPU: 15 minutes of compute, so that an episode with its final evaluation stays under 20 minutes on an H200
(on CPU too, with a larger `budget_s`: slowly)."""
FULL_TIER_MODELS = {"qwen3-1.7b": "Qwen/Qwen3-1.7B-Base", "qwen3-4b": "Qwen/Qwen3-4B-Base",
                    "smollm3-3b": "HuggingFaceTB/SmolLM3-3B-Base", "gemma3-4b": "google/gemma-3-4b-pt"}
"""PostTrainBench's base models (its references are their official instruct models)."""
FULL_TIER = {"budget_s": 36_000.0, "budget_mode": "wall", "disk_quota_bytes": 200 * 1024**3, "max_steps": 2_000}
"""PostTrainBench's cell: 10 hours of wall-clock time on one H100-class GPU."""
BENCHMARKS = ("gsm8k", "humaneval", "bfcl")

ENVS: tuple[EnvEntry, ...] = (
    EnvEntry("PTB/math-v0"),
    EnvEntry("PTB/math-v1"),
    EnvEntry("PTB/math-v2"),
    EnvEntry("PTB/code-v0"),
    EnvEntry("PTB/tools-v0"),
    EnvEntry("PTB/tools-v1"),
    *(EnvEntry(f"PTB/{benchmark}-gemma3-270m-v0", SMALL_TIER, model="gemma3-270m", tier="small")
      for benchmark in BENCHMARKS),
    *(EnvEntry(f"PTB/{benchmark}-{short}-v0", {**FULL_TIER, "base_model": model}, model=short, tier="full")
      for short, model in FULL_TIER_MODELS.items() for benchmark in BENCHMARKS),
)
TASK_NAMES: tuple[str, ...] = tuple(dict.fromkeys(entry.task for entry in ENVS))
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(entry.family for entry in ENVS))
