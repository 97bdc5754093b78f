"""The agent's tools, in the order agents see them; a task family may add its own (`Task.tools`)."""

from ptb_gym.protocol import Tool
from ptb_gym.tools.data import write_data
from ptb_gym.tools.evaluate import evaluate
from ptb_gym.tools.files import list_files, read_file, write_file
from ptb_gym.tools.jobs import job_status, kill, launch, tail, wait
from ptb_gym.tools.shell import run
from ptb_gym.tools.submission import budget, submit
from ptb_gym.tools.train import train

ALL_TOOLS: tuple[Tool, ...] = (
    list_files, read_file, write_file, write_data, run, launch, job_status, tail, wait, kill, train, evaluate,
    budget, submit,
)
TOOLS_BY_NAME: dict[str, Tool] = {t.name: t for t in ALL_TOOLS}


def tools_for(task) -> dict[str, Tool]:
    """The tools of an episode of `task`: the common ones, then the family's own."""
    tools = dict(TOOLS_BY_NAME)
    for extra in task.tools:
        if extra.name in tools:
            raise ValueError(f"task {task.name!r} defines a tool {extra.name!r} that exists already")
        tools[extra.name] = extra
    return tools


__all__ = ["ALL_TOOLS", "TOOLS_BY_NAME", "tools_for", *TOOLS_BY_NAME]
