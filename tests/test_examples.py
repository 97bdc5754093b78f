"""The examples run, end to end, at a small size."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.conftest import SMALL

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass of the example looks its module up
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


def test_best_of_n_branches_one_step_and_submits_the_best_on_dev(tmp_path):
    result = load("best_of_n").main(train_steps=4, learning_rates=(1e-4, 3e-3), workdir=str(tmp_path), **SMALL)
    assert len(result["branches"]) == 2 and isinstance(result["reward"], float)
    assert result["best"] == max(result["branches"], key=lambda b: b["dev"])["learning_rate"]


def test_rl_policy(tmp_path):
    # Two episodes of the uniform policy (the first iteration) with 2-step trainings and a 12 s budget, one update.
    history = load("rl_policy").main(iterations=1, episodes=2, max_steps=(2,), budget_s=12.0, workdir=str(tmp_path),
                                     train_size=200, dev_size=8, test_size=16)
    [record] = history
    assert len(record["episodes"]) == 2 and isinstance(record["mean_reward"], float)
    assert all(e["valid"] and e["decisions"][0].startswith(("reference data", "naive data"))
               for e in record["episodes"])
