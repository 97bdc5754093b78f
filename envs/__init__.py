"""Task families: each module (or package) here defines its tasks, one per version, as `TASKS = {"v0": ...}`;
`ptb_gym.registration` lists the registered ones."""

from __future__ import annotations

import importlib

from ptb_gym.envs.task import Harness, Task

from ptb_gym.registration import TASK_NAMES

__all__ = ["Harness", "Task", "load_task"]


def load_task(name: str) -> Task:
    """The task named `name`, a family and its version (e.g. `math-v0`)."""
    if name not in TASK_NAMES:
        from ptb_gym.errors import ConfigError, did_you_mean

        raise ConfigError(f"Unknown task {name!r}.{did_you_mean(name, TASK_NAMES)} Tasks: {', '.join(TASK_NAMES)}.")
    family, version = name.rsplit("-", 1)
    return importlib.import_module(f"ptb_gym.envs.{family}").TASKS[version]
