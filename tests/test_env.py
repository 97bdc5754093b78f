"""An episode through the env's tools: files, commands, jobs, budget, errors, rendering, closing."""

from __future__ import annotations

import os
import time

import pytest

from ptb_gym.errors import PTBError
from tests.conftest import call, host_processes_with


def test_reset_makes_a_workspace_without_the_test_split(make_env):
    env = make_env()
    observation, info = env.reset(seed=0)
    root = info["workspace"]
    assert observation.startswith("# Task:") and "submit" in observation
    assert sorted(os.listdir(root)) == ["TASK.md", "base_model", "data"]
    assert {t["function"]["name"] for t in info["tools"]} >= {"write_file", "train", "evaluate", "submit"}
    test_questions = {r["question"] for r in env.unwrapped.task.records("test", 32)}
    workspace_text = "".join(open(os.path.join(root, "data", f)).read() for f in os.listdir(os.path.join(root, "data")))
    assert not any(q in workspace_text for q in test_questions)
    assert info["budget"]["remaining_s"] == info["budget"]["limit_s"]


def test_file_tools_stay_in_the_workspace(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, *_ = env.step(call("write_file", path="notes/a.txt", content="hello\nworld"))
    assert "Wrote 11 bytes" in obs
    obs, *_ = env.step(call("read_file", path="notes/a.txt"))
    assert obs == "hello\nworld"
    obs, *_ = env.step(call("list_files"))
    assert "notes/" in obs and "base_model/" in obs
    for path in ("../outside.txt", "/etc/passwd", "notes/../../x"):
        obs, _, _, _, info = env.step(call("read_file", path=path))
        assert obs.startswith("Error:") and "workspace" in info["error"]
    os.symlink("/etc", os.path.join(env.unwrapped.episode.root, "link"))
    obs, *_ = env.step(call("read_file", path="link/passwd"))
    assert "is a link" in obs and "outside the workspace" in obs
    obs, *_ = env.step(call("write_file", path="base_model/config.json", content="{}"))
    assert "read-only" in obs


def test_agent_mistakes_become_observations(make_env):
    env = make_env()
    env.reset(seed=0)
    for action, expected in [
        ("{not json", "not valid JSON"),
        (call("lst_files"), "Unknown tool 'lst_files'. Did you mean 'list_files'?"),
        (call("read_file"), "missing required argument 'path'"),
        (call("read_file", path="nope.txt"), "does not exist"),
        (call("wait", job_id="job-9"), "No job 'job-9'"),
        (call("submit"), "does not exist"),
        (env.action_space.sample(), "Error:"),
    ]:
        obs, reward, terminated, truncated, info = env.step(action)
        assert expected in obs, obs
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert "error" in info
    obs, *_ = env.step(call("list_files"))
    assert "TASK.md" in obs


def test_run_is_synchronous_and_time_limited(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, _, _, _, info = env.step(call("run", command="echo out; echo err >&2; exit 3"))
    assert "exit code 3" in obs and "out" in obs and "err" in obs
    assert info["exit_code"] == 3
    obs, _, _, _, info = env.step(call("run", command="sleep 30", timeout_s=1))
    assert info["timed_out"] and "timed out" in obs


def test_background_jobs(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, _, _, _, info = env.step(call("launch", command="for i in 1 2 3; do echo line$i; done; sleep 60"))
    job = info["job"]["id"]
    time.sleep(0.3)
    obs, *_ = env.step(call("tail", job_id=job))
    assert "line3" in obs
    obs, _, _, _, info = env.step(call("job_status"))
    assert info["jobs"][0]["state"] == "running"
    obs, _, _, _, info = env.step(call("kill", job_id=job))
    assert info["job"]["state"] == "killed"
    env.step(call("launch", command="exit 4"))
    obs, _, _, _, info = env.step(call("wait", job_id="job-2", timeout_s=10))
    assert info["job"]["state"] == "failed" and info["job"]["exit_code"] == 4


def test_close_kills_every_process_and_is_idempotent(make_env):
    env = make_env()
    env.reset(seed=0)
    _, _, _, _, info = env.step(call("launch", command="sleep 300 & sleep 300; wait"))
    process = env.unwrapped.episode.jobs.jobs["job-1"].process
    root = env.unwrapped.episode.root
    env.close()
    env.close()
    assert process.poll() is not None
    assert not root.exists()
    assert not [pid for pid in host_processes_with("sleep 300") if pid != os.getpid()]


@pytest.mark.parametrize("mode, job", [("compute", "sleep 30"), ("cpu", "python3 -c 'while True: pass'")])
def test_budget_runs_out_and_truncates(make_env, mode, job):
    env = make_env(budget_s=1.0, budget_mode=mode)
    env.reset(seed=0)
    env.step(call("launch", command=job))
    deadline = time.monotonic() + 30
    while not env.unwrapped.episode.budget.exhausted and time.monotonic() < deadline:
        time.sleep(0.2)
    obs, reward, terminated, truncated, info = env.step(call("budget"))
    assert truncated and not terminated and reward == 0.0
    assert info["failure"]["kind"] == "budget"
    assert "no final_model" in info["failure"]["message"]
    with pytest.raises(PTBError, match="episode is over"):
        env.step(call("list_files"))


def test_cpu_budget_charges_cpu_time_not_waiting(make_env):
    env = make_env(budget_mode="cpu", budget_cpu_cores=2.0)
    _, info = env.reset(seed=0)
    assert info["budget"]["mode"] == "cpu" and "CPU time" in env.unwrapped.episode.briefing
    env.step(call("launch", command="sleep 30"))
    env.step(call("run", command="sleep 1"))
    assert env.step(call("budget"))[4]["budget"]["used_s"] < 0.1  # a second of sleeping is free
    # Two processes that each burn 0.5 CPU-seconds, one of them in a background job: both are charged.
    work = "import time\nwhile time.process_time() < 0.5: pass"
    env.step(call("write_file", path="burn.py", content=work))
    job = env.step(call("launch", command="python3 burn.py"))[4]["job"]["id"]
    env.step(call("run", command="python3 burn.py"))
    env.step(call("wait", job_id=job, timeout_s=30))
    used = env.step(call("budget"))[4]["budget"]["used_s"]
    assert 0.5 <= used <= 0.5 + 0.3  # 1 CPU-second (+ the interpreters' starts) in seconds of 2 cores


def test_cpu_budget_has_a_wall_clock_limit(make_env):
    env = make_env(budget_mode="cpu", wall_limit_s=1.0)
    env.reset(seed=0)
    obs, _, _, truncated, info = env.step(call("run", command="sleep 5"))
    assert "timed out after 1 s" in obs  # a command waits no longer than the wall-clock time left
    assert truncated and info["budget"]["used_s"] < 0.5 and info["budget"]["wall_s"] >= 1.0


def test_step_limit_truncates(make_env):
    env = make_env(max_steps=2)
    env.reset(seed=0)
    assert env.step(call("list_files"))[3] is False
    assert env.step(call("list_files"))[3] is True


def test_compute_budget_does_not_count_thinking_time(make_env):
    env = make_env(budget_mode="compute")
    env.reset(seed=0)
    time.sleep(0.5)
    _, _, _, _, info = env.step(call("budget"))
    assert info["budget"]["used_s"] < 0.2
    wall = make_env(budget_mode="wall")
    wall.reset(seed=0)
    time.sleep(0.5)
    assert wall.step(call("budget"))[4]["budget"]["used_s"] >= 0.5


def test_render_ansi_is_the_transcript(make_env):
    env = make_env(render_mode="ansi")
    env.reset(seed=0)
    env.step(call("write_file", path="a.txt", content="x"))
    text = env.render()
    assert "# reset (seed 0)" in text and "# step 1: write_file(" in text and "Wrote 1 bytes" in text


def test_recording_has_every_step(make_env, tmp_path):
    from ptb_gym.recording import read_episode

    env = make_env(record_dir=str(tmp_path / "runs"), max_steps=2)
    _, info = env.reset(seed=3)
    env.step(call("list_files"))
    env.step("garbage")
    log = read_episode(info["recording"])
    assert log.header["seed"] == 3 and log.header["env_id"] == "PTB/math-v0"
    assert [s["tool"] for s in log.steps] == ["list_files", None]
    assert "not valid JSON" in log.steps[1]["info"]["error"]
    assert log.complete and log.footer["failure"]["kind"] == "budget"

