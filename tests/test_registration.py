"""Registration and the Gymnasium contract."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import ptb_gym
from ptb_gym.errors import ConfigError
from ptb_gym.registration import ENVS


def test_import_is_light():
    code = "import sys, ptb_gym; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_make_without_importing_the_package_first():
    code = "import gymnasium as gym; env = gym.make('ptb_gym:PTB/math-v0'); print(type(env.unwrapped).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "PostTrainEnv"


@pytest.mark.parametrize("env_id", [entry.id for entry in ENVS if entry.tier == "embedded"])
def test_check_env_passes(env_id, tmp_path):
    """The embedded ids; the real-model tiers pass check_env in test_real_benchmarks, on tiny local checkpoints."""
    env = gym.make(env_id, train_size=50, dev_size=8, workdir=str(tmp_path))
    try:
        check_env(env.unwrapped)
    finally:
        env.close()


def test_every_registered_id_is_listed():
    assert sorted(i for i in gym.registry if i.startswith("PTB/")) == sorted(ptb_gym.ENV_IDS)


def test_unknown_option_says_what_was_meant():
    with pytest.raises(ConfigError, match="Unknown env option 'budget'.*Did you mean 'budget_s'"):
        gym.make("PTB/math-v0", budget=10)


def test_the_budget_is_the_tasks_unless_given(tmp_path):
    from ptb_gym.envs import load_task

    budgets = {}
    for env_id in ("PTB/math-v1", "PTB/tools-v0"):
        env = gym.make(env_id, train_size=50, dev_size=8, workdir=str(tmp_path))
        try:
            budgets[env_id] = env.unwrapped.config.budget_s
            assert budgets[env_id] == load_task(env.unwrapped.config.task).budget_s
            observation, info = env.reset(seed=0)
            assert info["budget"]["limit_s"] == budgets[env_id] and f"{budgets[env_id]:.0f} s" in observation
        finally:
            env.close()
    assert budgets["PTB/tools-v0"] > budgets["PTB/math-v1"]  # tools' reference trains the slowest
    env = gym.make("PTB/tools-v0", budget_s=42)
    assert env.unwrapped.config.budget_s == 42
    env.close()
    with pytest.raises(ConfigError, match="budget_s must be positive"):
        gym.make("PTB/tools-v0", budget_s=0)


def test_bad_option_value_is_refused():
    with pytest.raises(ConfigError, match="budget_mode must be"):
        gym.make("PTB/math-v0", budget_mode="steps")


def test_a_family_adds_its_own_tools(monkeypatch, tmp_path):
    from ptb_gym.envs import load_task
    from ptb_gym.protocol import tool

    @tool
    def count_items(episode, split: str = "dev") -> str:
        """Count the items of a split in the workspace.

        Args:
            split: "train" or "dev".
        """
        return str(len(episode.workspace.read_bytes(f"data/{split}.jsonl", 1 << 24).splitlines()))

    monkeypatch.setattr(type(load_task("math-v0")), "tools", property(lambda self: (count_items,)))
    env = gym.make("PTB/math-v0", dev_size=7, train_size=20, test_size=4, workdir=str(tmp_path))
    try:
        _, info = env.reset(seed=0)
        assert "count_items" in [schema["function"]["name"] for schema in info["tools"]]
        observation, *_ = env.step({"tool": "count_items", "arguments": {"split": "dev"}})
        assert observation == "7"
    finally:
        env.close()
