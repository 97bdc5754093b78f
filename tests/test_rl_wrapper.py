"""PostTrainingDecisions: numeric actions become the env's own tool calls, numeric observations stay in bounds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from ptb_gym.errors import PTBError
from ptb_gym.wrappers import PostTrainingDecisions, RetryInfrastructureFailures

GO_ON = [0, 2, 0, 0, 0]  # train on the reference recipe's data, the highest learning rate, full fine-tuning
SUBMIT = [0, 2, 0, 0, 1]  # the same, then submit


def test_spaces_name_the_tasks_data_formats_and_the_grids(make_env):
    env = PostTrainingDecisions(make_env(), learning_rates=(1e-3, 3e-3), max_steps=(10, 20, 40), lora_ranks=(0, 8))
    assert env.formats == ["reference", "naive"]  # PTB/math-v0's recipes, one data script each
    assert env.action_space == gym.spaces.MultiDiscrete([2, 2, 3, 2, 2])
    assert env.observation_space.shape == (4,) and env.observation_space.dtype == np.float32
    assert env.decode(np.array([1, 1, 2, 1, 1])) == {
        "format": "naive", "submit": True, "train": {"data": "data/sft.jsonl", "output_dir": "final_model",
                                                     "learning_rate": 3e-3, "max_steps": 40, "lora": True,
                                                     "lora_rank": 8}}
    assert env.decode([0, 0, 0, 0, 0])["train"] == {"data": "data/sft.jsonl", "output_dir": "final_model",
                                                     "learning_rate": 1e-3, "max_steps": 10}
    remade = env.spec.make()  # the wrapper and its grids are in the spec: vector envs and check_env remake it
    assert isinstance(remade, PostTrainingDecisions) and remade.action_space == env.action_space
    remade.close()
    v1 = PostTrainingDecisions(make_env(task="math-v1"))
    assert v1.formats == ["naive+tuned", "synth+reference"]


def test_check_env_passes_on_the_wrapper(make_env):
    # One tool call per episode (max_steps=1): each action of the checker ends its episode at its first call,
    # before a model is trained.
    env = PostTrainingDecisions(make_env(max_steps=1, test_size=8))
    with pytest.warns(UserWarning, match="different from the unwrapped"):
        check_env(env, skip_render_check=True)


def test_an_episode_of_decisions_trains_evaluates_and_submits(make_env):
    env = PostTrainingDecisions(RetryInfrastructureFailures(make_env()), max_steps=(4,), dev_items=8)
    observation, info = env.reset(seed=0)
    assert observation.tolist() == [1.0, 0.0, 0.0, 0.0] and observation in env.observation_space
    observation, reward, terminated, truncated, info = env.step(np.array(GO_ON))
    assert (reward, terminated, truncated) == (0.0, False, False) and info["tool"] == "evaluate"
    assert observation in env.observation_space
    budget_left, has_model, dev_score, loss = observation.tolist()
    assert 0 < budget_left < 1 and has_model == 1.0 and 0 <= dev_score <= 1 and 0 < loss < 10
    assert info["decision"]["train"]["max_steps"] == 4 and not info["decision"]["submit"]
    observation, reward, terminated, truncated, info = env.step(SUBMIT)  # a second model replaces the first
    assert terminated and not truncated and observation in env.observation_space and observation[0] < budget_left
    assert info["tool"] == "submit" and info["checkpoint"] == "final_model"  # the trained model, not the base
    assert info["valid"] and info["failure"] is None and isinstance(reward, float) and reward == info["uplift"]


def test_the_envs_truncation_ends_a_decision_midway(make_env):
    env = PostTrainingDecisions(make_env(max_steps=3))  # write_file, run, then train: the step limit
    env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(SUBMIT)
    assert truncated and not terminated and reward == 0.0 and info["tool"] == "train"
    assert info["failure"]["kind"] == "budget"  # the previous final_model/ was removed: nothing to score
    assert observation in env.observation_space and observation[1] == 0.0


@pytest.mark.parametrize("action", [[0, 0, 0, 0], [2, 0, 0, 0, 0], [0, 0, -1, 0, 0], [0.0, 0, 0, 0, 0], "train"])
def test_an_action_outside_the_space_says_what_the_space_is(make_env, action):
    env = PostTrainingDecisions(make_env())
    env.reset(seed=0)
    with pytest.raises(PTBError, match=r"The action must be in MultiDiscrete\(\[2 3 3 2 2\]\).*below \[2, 3, 3, 2, 2\]"):
        env.step(action)
    assert env.unwrapped.episode.steps == 0  # refused before any tool call


def test_only_ptb_envs_with_recipes_and_grids_can_be_wrapped(make_env):
    with pytest.raises(PTBError, match="wraps a ptb-gym env"):
        PostTrainingDecisions(gym.make("CartPole-v1"))
    with pytest.raises(PTBError, match="max_steps must list at least one value"):
        PostTrainingDecisions(make_env(), max_steps=())
