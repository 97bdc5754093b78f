"""Baseline agents play whole episodes through tool calls; the CLI runs and replays them."""

from __future__ import annotations

import json
import subprocess
import sys

from ptb_gym.baselines import make_agent
from tests.conftest import SMALL


def play(env, agent, seed=0):
    observation, info = env.reset(seed=seed)
    agent.reset(observation, info)
    tools = []
    while True:
        action = agent.act(observation, info)
        tools.append(action["tool"])
        observation, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return tools, reward, terminated, info


def test_random_agent_makes_valid_calls(make_env):
    env = make_env(max_steps=15, budget_s=60)
    tools, reward, terminated, info = play(env, make_agent("random", seed=1))
    assert len(tools) <= 15 and isinstance(reward, float)
    assert info["failure"] is None or info["failure"]["kind"] in ("budget", "agent", "integrity")


def test_scripted_agent_plays_the_recipe_and_submits(make_env):
    env = make_env()
    agent = make_agent("scripted")
    agent.max_steps, agent.wait_chunk_s = 5, 5
    tools, reward, terminated, info = play(env, agent)
    assert terminated and tools[:4] == ["list_files", "write_file", "run", "train"] and tools[-1] == "submit"
    assert info["failure"] is None and set(info["scores"]) == {"zero_shot_strict", "zero_shot_flexible", "few_shot"}


def test_cli_runs_an_episode_and_replays_it(tmp_path):
    options = [arg for key, value in SMALL.items() for arg in ("-o", f"{key}={value}")]
    run = subprocess.run(
        [sys.executable, "-m", "ptb_gym.cli", "run", "PTB/math-v0", "--agent", "random", "--record-dir",
         str(tmp_path), "-o", "max_steps=4", "-o", f"workdir={tmp_path}", *options, "--json"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout.strip().splitlines()[-1])
    assert info["step"] == 4 and "reward (normalized uplift)" in run.stderr
    replay = subprocess.run([sys.executable, "-m", "ptb_gym.cli", "replay", info["recording"]],
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    assert "PTB/math-v0" in replay.stdout
