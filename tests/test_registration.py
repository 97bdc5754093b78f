"""Registration and the Gymnasium contract."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import ptb_gym
from ptb_gym.errors import ConfigError


def test_import_is_light():
    code = "import sys, ptb_gym; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_make_without_importing_the_package_first():
    code = "import gymnasium as gym; env = gym.make('ptb_gym:PTB/math-v0'); print(type(env.unwrapped).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "PostTrainEnv"


@pytest.mark.parametrize("env_id", ptb_gym.ENV_IDS)
def test_check_env_passes(env_id, tmp_path):
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


def test_bad_option_value_is_refused():
    with pytest.raises(ConfigError, match="budget_mode must be"):
        gym.make("PTB/math-v0", budget_mode="steps")
