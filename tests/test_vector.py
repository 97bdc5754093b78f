"""Episodes in parallel processes: the text that comes back is each env's real, current observation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from tests.conftest import SMALL, call


def test_async_vector_env_returns_current_text(tmp_path):
    envs = gym.make_vec("PTB/math-v0", num_envs=2, vectorization_mode="async",
                        **{**SMALL, "workdir": str(tmp_path)})
    try:
        observations, infos = envs.reset(seed=[0, 1])
        assert all(o.startswith("# Task:") for o in observations)
        long_text = "é" * 3000 + " ✓"
        observations, rewards, terminated, truncated, infos = envs.step(np.array([
            call("write_file", path="a.txt", content=long_text), call("list_files")], dtype=object))
        assert observations[0] == "Wrote 6004 bytes to a.txt."
        assert "TASK.md" in observations[1]
        observations, *_ = envs.step(np.array([call("read_file", path="a.txt"), call("budget")], dtype=object))
        assert observations[0] == long_text  # non-ASCII text survives the shared memory intact
        observations, *_ = envs.step(np.array([call("run", command="echo hi"), call("run", command="echo yo")],
                                              dtype=object))
        assert observations[0].endswith("\nhi") and observations[1].endswith("\nyo")  # nothing stale left behind
        assert all(rewards == 0.0)
    finally:
        envs.close()


def test_vector_env_autoresets_an_ended_episode(tmp_path):
    """Gymnasium's default autoreset (next step): the step after an episode ends starts a fresh one, in a new
    workspace, while the other env goes on."""
    envs = gym.make_vec("PTB/math-v0", num_envs=2, vectorization_mode="async",
                        **{**SMALL, "workdir": str(tmp_path), "max_steps": 2})
    try:
        _, infos = envs.reset(seed=[0, 1])
        first_workspace = infos["workspace"][0]
        envs.step(np.array([call("write_file", path="a.txt", content="x"), call("list_files")], dtype=object))
        _, rewards, _, truncated, infos = envs.step(
            np.array([call("list_files"), call("list_files")], dtype=object))
        assert list(truncated) == [True, True] and list(rewards) == [0.0, 0.0]  # the step limit, nothing submitted
        observations, _, _, truncated, infos = envs.step(
            np.array([call("list_files"), call("list_files")], dtype=object))  # ignored: these envs reset
        assert all(o.startswith("# Task:") for o in observations) and not any(truncated)
        assert infos["workspace"][0] != first_workspace
        observations, *_ = envs.step(np.array([call("read_file", path="a.txt"), call("budget")], dtype=object))
        assert "Error" in observations[0]  # the new episode's workspace has no a.txt
    finally:
        envs.close()
