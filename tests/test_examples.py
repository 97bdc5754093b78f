"""The examples run, end to end, at a small size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.conftest import SMALL

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart(tmp_path):
    reward = load("quickstart").main(train_steps=3, workdir=str(tmp_path), **SMALL)
    assert isinstance(reward, float)


def test_llm_agent_loop_with_openai_format_tool_calls(tmp_path):
    info = load("llm_agent").main(workdir=str(tmp_path), **SMALL)
    assert info["submitted"] and info["checkpoint"] == "base_model"
    assert info["failure"] is None


def test_vector_envs(tmp_path):
    observations = load("vector_envs").main(num_envs=2, steps=3, workdir=str(tmp_path), **SMALL)
    assert len(observations) == 2
