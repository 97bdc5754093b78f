"""Snapshots, forks and exact replay: a fork stands where its parent stood, and a re-run finds what differs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import call, no_blocking

from ptb_gym.cli import main
from ptb_gym.errors import PTBError
from ptb_gym.recording import read_episode
from ptb_gym.rerun import rerun
from ptb_gym.snapshots import find_snapshot
from ptb_gym.viewer import episode_data

SETUP = [
    call("write_file", path="notes/plan.txt", content="try a higher learning rate\n"),
    call("run", command="mkdir -p ro && echo frozen > ro/f && chmod 555 ro && chmod 600 notes/plan.txt "
                        "&& ln -s notes/plan.txt plan && ln -s /etc/passwd outside && mkfifo pipe "
                        "&& head -c 300000 /dev/urandom > blob.bin"),
    call("write_file", path="notes/later.txt", content="written after the fork point"),
]


MAKE_SFT = """import json
items = [json.loads(line) for line in open("data/train.jsonl")]
with open("sft.jsonl", "w") as out:
    for item in items:
        out.write(json.dumps({"prompt": f"Question: {item['question']}\\nAnswer:", "completion": f" #### {item['answer']}"}) + "\\n")
print(len(items), "records of data")
"""


def record(make_env, tmp_path, actions, **options):
    env = make_env(record_dir=str(tmp_path / "runs"), **options)
    _, info = env.reset(seed=5)
    steps = [env.step(action) for action in actions]
    return env, info["recording"], steps


def workspace_hash_now(env) -> str:
    return env.unwrapped.snapshot().workspace_hash


def test_a_fork_holds_its_parents_workspace_budget_and_steps_at_step_k(make_env, tmp_path):
    parent, recording, steps = record(make_env, tmp_path, SETUP)
    at_k = steps[1][4]  # after step 1 (the `run`)
    assert at_k["snapshot"]["workspace_hash"] != steps[2][4]["snapshot"]["workspace_hash"]

    fork = make_env(record_dir=str(tmp_path / "runs"))
    with no_blocking(30):  # the FIFO in the workspace is recorded, never opened
        observation, info = fork.reset(options={"fork": {"recording": recording, "step": 1}})
    assert workspace_hash_now(fork) == at_k["snapshot"]["workspace_hash"]
    root = Path(info["workspace"])
    assert (root / "notes/plan.txt").read_text() == "try a higher learning rate\n"
    assert (root / "notes/plan.txt").stat().st_mode & 0o777 == 0o600
    assert (root / "ro").stat().st_mode & 0o777 == 0o555
    assert os.readlink(root / "plan") == "notes/plan.txt"
    assert os.readlink(root / "outside") == "/etc/passwd"  # a link stays a link: its target is never copied in
    assert stat.S_ISFIFO((root / "pipe").lstat().st_mode) and not (root / "notes/later.txt").exists()
    assert (root / "blob.bin").read_bytes() == (Path(parent.unwrapped.episode.root) / "blob.bin").read_bytes()
    assert "continues another one from after its step 1" in observation
    assert info["budget"]["used_s"] >= at_k["budget"]["used_s"]
    assert fork.unwrapped.episode.steps == 2

    _, _, _, _, step_info = fork.step(call("list_files"))
    assert step_info["step"] == 3
    fork.close()
    log = read_episode(info["recording"])
    assert log.header["info"]["forked_from"]["recording"] == recording
    assert log.header["info"]["forked_from"]["step"] == 1
    assert [s["index"] for s in log.steps] == [2]  # the fork numbers its steps on from its parent's
    assert episode_data(log)["forked_from"] == f"step 1 of {Path(recording).name}"  # the viewer links the two


def test_a_fork_of_a_fork_names_its_lineage(make_env, tmp_path):
    _, recording, _ = record(make_env, tmp_path, SETUP[:2])
    first = make_env(record_dir=str(tmp_path / "runs"))
    _, info = first.reset(options={"fork": {"recording": recording, "step": 0}})
    _, _, _, _, step = first.step(call("write_file", path="branch.txt", content="only in this branch"))
    first.close()

    second = make_env(record_dir=str(tmp_path / "runs"))
    _, info2 = second.reset(options={"fork": {"recording": info["recording"], "step": 1}})
    assert workspace_hash_now(second) == step["snapshot"]["workspace_hash"]
    assert (Path(info2["workspace"]) / "branch.txt").read_text() == "only in this branch"
    assert not (Path(info2["workspace"]) / "blob.bin").exists()  # made by the parent's step 1, not in this line
    assert info2["forked_from"]["parent"]["recording"] == recording


def test_unchanged_files_are_stored_once(make_env, tmp_path):
    _, recording, steps = record(make_env, tmp_path, [*SETUP, call("list_files"), call("list_files")])
    added = [info["snapshot"]["added_bytes"] for *_, info in steps]
    assert added[0] > 8_000_000  # the first snapshot stores the base model and the data
    assert 300_000 <= added[1] < 400_000  # then only what changed: the blob
    assert added[3] == added[4] == 0
    store = Path(recording).parent / "snapshots"
    objects = sum(p.stat().st_size for p in (store / "objects").rglob("*") if p.is_file())
    assert objects < sum(added) + 200_000  # manifests aside, nothing is stored twice
    state = json.loads((store / "states" / Path(recording).name / "1.json").read_text())
    assert (store / "states" / Path(recording).name / "1.json").stat().st_mode & 0o777 == 0o600
    assert state["test_seed"] is not None  # the branches are scored on their parent's hidden test split


def test_a_running_job_is_lost_in_the_fork_and_jobs_number_on(make_env, tmp_path):
    _, recording, steps = record(make_env, tmp_path, [call("launch", command="echo started; sleep 30")])
    assert steps[0][4]["job"]["state"] == "running"
    fork = make_env(record_dir=str(tmp_path / "runs"))
    observation, info = fork.reset(options={"fork": {"recording": recording, "step": 0}})
    assert "job-1 (shell) was still running then and did not carry over" in observation
    _, _, _, _, step = fork.step(call("launch", command="echo second"))
    assert step["job"]["id"] == "job-2"
    assert (Path(info["workspace"]) / "logs/job-1.log").exists()


def test_past_the_cap_steps_have_no_snapshot_and_a_fork_there_says_which_exist(make_env, tmp_path):
    _, recording, steps = record(make_env, tmp_path, [call("list_files")], snapshot_max_bytes=1_000_000)
    assert "reached their cap" in steps[0][4]["snapshot"]["skipped"]
    with pytest.raises(PTBError, match="not recorded with snapshots"):
        find_snapshot(recording, 0)
    _, recording, _ = record(make_env, tmp_path, [call("list_files")])
    with pytest.raises(PTBError, match="there are snapshots after steps 0"):
        find_snapshot(recording, 7)


def test_snapshot_and_restore_without_a_recording(make_env, tmp_path):
    env = make_env()
    env.reset(seed=1)
    env.step(call("write_file", path="keep.txt", content="before"))
    snapshot = env.unwrapped.snapshot()
    env.step(call("run", command="rm keep.txt && echo after > new.txt"))
    _, info = env.unwrapped.restore(snapshot)
    root = Path(info["workspace"])
    assert (root / "keep.txt").read_text() == "before" and not (root / "new.txt").exists()
    assert workspace_hash_now(env) == snapshot.workspace_hash
    store = snapshot.store
    env.close()
    assert not store.exists()  # the env's own store goes with it


def test_fork_on_the_command_line_plays_a_file_of_actions(make_env, tmp_path, capsys):
    _, recording, _ = record(make_env, tmp_path, SETUP[:1], train_size=200, dev_size=16, test_size=32)
    actions = tmp_path / "actions.jsonl"
    actions.write_text(json.dumps(call("submit", checkpoint="base_model")) + "\n")
    assert main(["fork", recording, "--step", "0", "--actions", str(actions)]) == 0
    assert "forked from step 0" in capsys.readouterr().out
    forks = [p for p in Path(recording).parent.glob("*.jsonl") if p.name != Path(recording).name]
    log = read_episode(forks[0])
    assert log.complete and log.footer["test_seed"] == find_snapshot(recording, 0).state["test_seed"]
    assert main(["fork", recording, "--step", "9"]) == 2  # no such snapshot: a clear error, exit 2


def test_exact_replay_repeats_a_seeded_episode_and_finds_a_changed_step(make_env, tmp_path):
    actions = [call("write_file", path="make.py", content=MAKE_SFT), call("run", command="python make.py"),
               call("train", data="sft.jsonl", output_dir="final_model", max_steps=8, batch_size=4),
               call("wait", job_id="job-1", timeout_s=600), call("evaluate", checkpoint="final_model", limit=8),
               call("submit", checkpoint="final_model")]
    env, recording, steps = record(make_env, tmp_path, actions)
    assert steps[-1][2]  # submitted
    env.close()
    report = rerun(recording, record_dir=None)
    assert report.exact, report.text()
    assert report.scores_compared and report.reward == report.recorded_reward

    lines = Path(recording).read_text().splitlines()
    step = json.loads(lines[2])  # the `run` step
    step["observation"] = step["observation"].replace("data", "different data")
    tampered = tmp_path / "runs" / "tampered.jsonl"
    tampered.write_text("\n".join([*lines[:2], json.dumps(step), *lines[3:]]) + "\n")
    report = rerun(tampered, record_dir=None)
    assert report.first_difference.index == 1 and report.first_difference.tool == "run"
    assert "different data" in report.first_difference.detail


def test_the_agent_cannot_read_the_snapshots_that_hold_the_test_splits_seed(make_env, tmp_path):
    env, recording, _ = record(make_env, tmp_path, [call("list_files")])
    state_file = find_snapshot(recording, 0).state["state_file"]
    secret = str(env.unwrapped.episode.test_seed)
    observation, *_ = env.step(call("run", command=f"cat {state_file}; ls {Path(state_file).parent}"))
    assert secret not in observation and "No such file" in observation
