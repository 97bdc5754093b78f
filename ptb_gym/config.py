"""The env's configuration: every `gym.make` keyword is a field here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ptb_gym.errors import ConfigError, did_you_mean

# The values of the string options, defined once: the config checks them, the CLI offers them, the budget and the
# sandbox read them.
BUDGET_MODES = {"cpu": "CPU time of the episode's processes", "compute": "compute (tool calls and running jobs)",
                "wall": "wall-clock time since reset"}
SANDBOX_KINDS = ("auto", "bwrap", "none")
EMBEDDED_MODEL_KEY = "embedded"
BudgetMode = Literal["cpu", "compute", "wall"]
SandboxKind = Literal["auto", "bwrap", "none"]


@dataclass(frozen=True)
class EnvConfig:
    """What one episode of a ptb-gym task looks like. Defaults are the embedded tier: CPU, offline, minutes."""

    task: str = "math-v0"
    """The task: a family of `ptb_gym.envs` and its version (`math-v0`, `code-v0`; the id without `PTB/`)."""
    base_model: str | None = None
    """Base model to post-train: a local checkpoint directory or a Hugging Face id. None: the task's embedded model."""
    budget_s: float | None = None
    """Compute budget of the episode in seconds (PostTrainBench gives 10 h on an H100). None: the task's own
    (`Task.budget_s`, room for its reference recipe on 2 CPU cores)."""
    budget_mode: BudgetMode | None = None
    """`cpu`: CPU time of the episode's processes in seconds of `budget_cpu_cores` cores (the same reward on a busy
    machine as on an idle one); `compute`: time when a tool or a background job runs (fair to slow policies, not
    to load); `wall`: time since reset (PostTrainBench). None: `cpu` where training runs on the CPU and this
    machine can count it (a cgroup), else `compute` (GPU time is not metered yet). See `ptb_gym.budget`."""
    budget_cpu_cores: float = 2.0
    """In `cpu` mode, the CPU-seconds of one budget second: the cores of the machine the tasks' budgets were set on."""
    wall_limit_s: float | None = None
    """Wall-clock limit of an episode in `cpu` mode, where waiting costs no budget. None: 20 times `budget_s`."""
    max_steps: int = 200
    """Tool calls before the episode is truncated."""
    sandbox: SandboxKind = "auto"
    """Where agent commands run: bubblewrap (`auto` picks it when it works), or plain subprocesses (trusted use)."""
    record_dir: str | None = None
    """Directory for the episode recording (one JSONL file per episode). None: no recording."""
    snapshot_max_bytes: int = 4 * 1024**3
    """When recording: new bytes the episode's per-step snapshots (`record_dir/snapshots/`, for `ptb-gym fork`)
    may add to the store; past it steps are recorded without one. 0: no snapshots."""
    workdir: str | None = None
    """Directory in which episode workspaces are created. None: the system's temporary directory."""
    keep_workspace: bool = False
    """Keep the workspace on disk after the episode (for debugging); otherwise it is deleted on close/reset."""
    max_observation_chars: int = 8_000
    """Longest observation text; longer tool output is cut head+tail (the full text stays on disk)."""
    test_size: int = 1_000
    """Items of the hidden test split used for the final score."""
    dev_size: int = 200
    """Items of the dev split written to the workspace and used by the `evaluate` tool."""
    train_size: int = 5_000
    """Items of the train split written to the workspace."""
    device: str = "auto"
    """Device for training and evaluation: `auto` (CUDA when available), `cpu` or `cuda`."""
    eval_batch_size: int | None = None
    """Prompts per batch in evaluation; None: 64 on a CPU, 256 on a GPU."""
    disk_quota_bytes: int = 2 * 1024**3
    """Disk space of the workspace (an ext4 image mounted there when the env runs as root; else a guard)."""
    test_seed: int | None = None
    """Seed of the hidden test split. None (the default): a fresh secret per episode that agent code cannot read
    or predict; set it only to replay or audit scoring, never for an agent under evaluation."""

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> EnvConfig:
        """Build a config from `gym.make` keywords, with a clear error for unknown or ill-typed ones."""
        names = [field.name for field in dataclasses.fields(cls)]
        for key in kwargs:
            if key not in names:
                raise ConfigError(
                    f"Unknown env option {key!r}.{did_you_mean(key, names)} Options: {', '.join(names)}."
                )
        config = cls(**kwargs)
        config.check()
        return config

    def check(self) -> None:
        if self.budget_s is not None and self.budget_s <= 0:
            raise ConfigError(f"budget_s must be positive, got {self.budget_s}.")
        if self.budget_cpu_cores <= 0 or (self.wall_limit_s is not None and self.wall_limit_s <= 0):
            raise ConfigError("budget_cpu_cores and wall_limit_s must be positive.")
        if self.budget_mode is not None and self.budget_mode not in BUDGET_MODES:
            raise ConfigError(f"budget_mode must be one of {sorted(BUDGET_MODES)}, got {self.budget_mode!r}.")
        if self.sandbox not in SANDBOX_KINDS:
            raise ConfigError(f"sandbox must be one of {list(SANDBOX_KINDS)}, got {self.sandbox!r}.")
        if self.max_observation_chars < 200:
            raise ConfigError(f"max_observation_chars must be at least 200, got {self.max_observation_chars}.")
        if self.disk_quota_bytes < 64 * 1024**2:
            raise ConfigError(f"disk_quota_bytes must be at least 64 MiB, got {self.disk_quota_bytes}.")
        if self.snapshot_max_bytes < 0:
            raise ConfigError(f"snapshot_max_bytes must be 0 (no snapshots) or more, got {self.snapshot_max_bytes}.")
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {self.max_steps}.")
        if self.test_size < 1 or self.dev_size < 1 or self.train_size < 1:
            raise ConfigError("test_size, dev_size and train_size must be at least 1.")

    @property
    def model_key(self) -> str:
        """The key of the base model's recorded scores in the task's scores file (`embedded` for the task's own)."""
        return EMBEDDED_MODEL_KEY if self.base_model is None else self.base_model

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
