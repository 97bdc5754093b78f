"""RetryInfrastructureFailures: an env failure is scored again or masked; the agent cannot cause one."""

from __future__ import annotations

import gymnasium as gym
import pytest

from ptb_gym.episode import Episode
from ptb_gym.errors import PTBError
from ptb_gym.verifier import VerifierFailure
from ptb_gym.wrappers import RetryInfrastructureFailures
from tests.conftest import call


def run(env, command: str, timeout_s: int = 120) -> str:
    observation, *_ = env.step(call("run", command=command, timeout_s=timeout_s))
    return observation


def failing_scoring(monkeypatch, failures: int, error: Exception) -> list[int]:
    """The final scoring raises `error` `failures` times, then works; returns the list of attempts made."""
    attempts: list[int] = []
    real = Episode.verify_final

    def verify_final(self, checkpoint):
        attempts.append(1)
        if len(attempts) <= failures:
            raise error
        return real(self, checkpoint)

    monkeypatch.setattr(Episode, "verify_final", verify_final)
    return attempts


def test_a_transient_verifier_death_is_scored_again_and_the_reward_is_the_true_one(make_env, monkeypatch):
    attempts = failing_scoring(monkeypatch, 1, VerifierFailure("the verifier process died (killed by signal 9)",
                                                               "score"))
    env = RetryInfrastructureFailures(make_env(test_size=8), max_retries=2)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(call("submit", checkpoint="base_model"))
    assert len(attempts) == 2
    assert terminated and not truncated and info["valid"] and info["failure"] is None
    assert isinstance(reward, float) and info["scores"]  # the base model's own score: an uplift near 0
    assert info["retry"] == {"attempts": 2, "failures": info["retried_failures"], "masked": False}
    assert info["retried_failures"][0]["kind"] == "infrastructure"
    assert info["retried_failures"][0]["stage"] == "score"


def test_an_ending_that_keeps_failing_is_masked_as_a_truncation(make_env, monkeypatch):
    attempts = failing_scoring(monkeypatch, 99, RuntimeError("scoring broke"))
    env = RetryInfrastructureFailures(make_env(test_size=8), max_retries=2)
    env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(call("submit", checkpoint="base_model"))
    assert len(attempts) == 3
    assert reward == 0.0 and not terminated and truncated  # cut off outside the MDP: bootstrap, don't learn a 0
    assert info["valid"] is False and info["failure"]["kind"] == "infrastructure"
    assert info["retry"]["masked"] and info["retry"]["attempts"] == 3 and len(info["retry"]["failures"]) == 3
    assert "Failure (infrastructure)" in observation
    # The next episode starts as usual, its retries armed again.
    env.reset(seed=1)
    assert env.unwrapped.episode.scoring_retries == 2


def test_without_the_wrapper_an_infrastructure_failure_is_not_retried(make_env, monkeypatch):
    attempts = failing_scoring(monkeypatch, 1, RuntimeError("scoring broke"))
    env = make_env(test_size=8)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(call("submit", checkpoint="base_model"))
    assert len(attempts) == 1 and terminated and reward == 0.0 and info["valid"] is False
    assert info["retried_failures"] == []


def test_an_agents_failure_is_neither_retried_nor_masked(make_env):
    env = RetryInfrastructureFailures(make_env(test_size=8, max_steps=3))
    env.reset(seed=0)
    # A checkpoint whose weights are not safetensors: it fails to load, in the agent's stage.
    assert "exit code 0" in run(env, "mkdir final_model && cp base_model/config.json final_model/ && "
                                     "head -c 4096 /dev/urandom > final_model/model.safetensors")
    _, reward, terminated, truncated, info = env.step(call("submit"))
    assert terminated and not truncated and reward == 0.0
    assert info["failure"]["kind"] == "agent" and info["valid"]
    assert info["retry"] == {"attempts": 1, "failures": [], "masked": False}


def test_an_episode_without_a_model_reports_no_scoring(make_env):
    env = RetryInfrastructureFailures(make_env(max_steps=1))
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(call("budget"))
    assert truncated and not terminated and reward == 0.0 and info["failure"]["kind"] == "budget"
    assert info["retry"] == {"attempts": 0, "failures": [], "masked": False}


def test_an_agent_that_kills_its_jobs_and_fills_the_disk_does_not_get_an_infrastructure_failure(make_env):
    """The attacks a policy would try to turn a bad episode into an infrastructure failure (a retry, a masked
    ending): its jobs killing themselves, a job still writing into the checkpoint at submit, a full disk, a
    checkpoint copied onto a full disk. Each ends as the agent's result, valid."""
    env = RetryInfrastructureFailures(make_env(test_size=8, disk_quota_bytes=64 * 1024**2, sandbox="bwrap"))
    _, info = env.reset(seed=0)
    assert "exit code 0" in run(env, "cp -r base_model final_model && chmod -R u+w final_model")
    # A training script that kills its own process, and a shell that kills itself.
    observation, *_ = env.step(call("launch", command="python3 -c 'import os, signal; "
                                                      "os.kill(os.getpid(), signal.SIGKILL)'"))
    job = observation.split()[1].rstrip(":")
    env.step(call("wait", job_id=job, timeout_s=30))
    run(env, "kill -9 $$")
    # A job that keeps writing into the checkpoint while it is submitted.
    env.step(call("launch", command="while true; do date >> final_model/notes.txt; sleep 0.01; done"))
    # The disk filled up to the quota, then a second checkpoint copied onto the full disk (truncated weights).
    filled = run(env, "dd if=/dev/zero of=filler bs=1M count=200; cp -r base_model broken_model; df -k .")
    assert "No space left" in filled, filled[-500:]
    _, reward, terminated, _, info = env.step(call("submit"))
    assert terminated and info["valid"] and not info["retry"]["masked"], info["failure"]
    assert info["failure"] is None and info["scores"]  # final_model was scored, killed jobs and full disk or not
    # The truncated copy on the full disk is the agent's failure, not the env's.
    env.reset(seed=0)
    assert "exit code 0" in run(env, "dd if=/dev/zero of=filler bs=1M count=200; "
                                     "cp -r base_model final_model; chmod -R u+w final_model; true")
    _, reward, _, _, info = env.step(call("submit"))
    assert reward == 0.0 and info["valid"] and info["failure"]["kind"] == "agent"
    assert "truncated" in info["failure"]["message"]
    assert info["retry"]["attempts"] == 1 and not info["retry"]["masked"]


def test_only_ptb_envs_can_be_wrapped():
    with pytest.raises(PTBError, match="wraps a ptb-gym env"):
        RetryInfrastructureFailures(gym.make("CartPole-v1"))
    with pytest.raises(PTBError, match="non-negative"):
        RetryInfrastructureFailures(gym.make("CartPole-v1"), max_retries=-1)
