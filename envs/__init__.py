"""Task families: each module (or package) here defines one `Task` as `TASK`; `ptb_gym.registration` lists them."""

from __future__ import annotations

import importlib

from ptb_gym.envs.task import Harness, Task
from ptb_gym.registration import FAMILIES

__all__ = ["Harness", "Task", "load_task"]


def load_task(name: str) -> Task:
    """The task of family `name` (e.g. `math`)."""
    if name not in FAMILIES:
        from ptb_gym.errors import ConfigError, did_you_mean

        raise ConfigError(f"Unknown task {name!r}.{did_you_mean(name, FAMILIES)} Tasks: {', '.join(FAMILIES)}.")
    return importlib.import_module(f"ptb_gym.envs.{name}").TASK
