"""The agent's tools, in the order agents see them."""

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

__all__ = ["ALL_TOOLS", "TOOLS_BY_NAME", *TOOLS_BY_NAME]
