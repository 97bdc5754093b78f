"""The state of one episode, as tools see it: task, workspace, sandbox, jobs, budget."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptb_gym.budget import Budget
from ptb_gym.config import EnvConfig
from ptb_gym.envs.task import Task
from ptb_gym.jobs import JobManager
from ptb_gym.sandbox import Sandbox
from ptb_gym.workspace import Workspace



@dataclass
class Episode:
    """Everything a tool may act on. Created by `reset`, torn down by `close`."""

    task: Task
    config: EnvConfig
    seed: int
    workspace: Workspace
    sandbox: Sandbox
    budget: Budget
    base_model_dir: Path
    """The base model as the env reads it (trusted copy, outside the workspace)."""
    jobs: JobManager = field(init=False)
    submission: Path | None = None
    """Set by `submit`: the checkpoint to score; the env then ends the episode."""

    def __post_init__(self) -> None:
        self.jobs = JobManager(self.workspace, self.sandbox, self.budget)

    @property
    def root(self) -> Path:
        return self.workspace.root

    def close(self) -> None:
        self.jobs.close()
        if not self.config.keep_workspace:
            self.workspace.remove()


def truncate_middle(text: str, limit: int, where: str = "") -> str:
    """Keep the head and tail of a long text, saying how much was cut and where the full text is."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3) :]
    hint = f"; the full text is in {where}" if where else ""
    return f"{head}\n... [{len(text) - len(head) - len(tail)} characters omitted{hint}] ...\n{tail}"


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)
