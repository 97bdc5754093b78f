"""Task families. Each module (or package) here defines one `Task` as `TASK`."""

from __future__ import annotations

import importlib

from ptb_gym.envs.task import Harness, Task

__all__ = ["Harness", "Task", "load_task", "TASK_FAMILIES"]

TASK_FAMILIES = ("math",)


def load_task(name: str) -> Task:
    """The task of family `name` (e.g. `math`)."""
    if name not in TASK_FAMILIES:
        from ptb_gym.errors import ConfigError, did_you_mean

        raise ConfigError(f"Unknown task {name!r}.{did_you_mean(name, TASK_FAMILIES)} Tasks: {', '.join(TASK_FAMILIES)}.")
    return importlib.import_module(f"ptb_gym.envs.{name}").TASK
