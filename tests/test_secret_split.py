"""The hidden test split is drawn in secret for each episode: agent code can neither read nor predict it."""

from __future__ import annotations

import os
from pathlib import Path

from ptb_gym.envs import load_task
from ptb_gym.recording import read_episode
from tests.conftest import call

TASK = load_task("math-v0")


def test_every_episode_draws_its_own_test_split(make_env):
    env = make_env()
    seeds, questions = [], []
    for seed in (0, 0, 1):  # the same episode seed twice: the test split is not derived from it
        env.reset(seed=seed)
        episode = env.unwrapped.episode
        seeds.append(episode.test_seed)
        questions.append({item["question"] for item in TASK.records("test", 32, seed=episode.test_seed)})
    assert len(set(seeds)) == 3
    assert questions[0] != questions[1] and questions[1] != questions[2]
    public = {r["question"] for split, n in (("train", 5000), ("dev", 200)) for r in TASK.records(split, n)}
    assert all(not (q & public) for q in questions)  # never a train or dev question


def test_the_secret_is_nowhere_the_agent_can_look(make_env):
    env = make_env()
    _, info = env.reset(seed=0)
    secret = str(env.unwrapped.episode.test_seed)
    root = Path(info["workspace"])
    records = [{"prompt": "Question: 1+1?\nAnswer:", "completion": " #### 2"}] * 4
    env.step(call("write_data", path="data/sft.jsonl", records=records))
    env.step(call("train", data="data/sft.jsonl", output_dir="ck", max_steps=1, batch_size=2))
    observation, *_ = env.step(call("run", command="env; cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null | "
                                                    "tr '\\0' ' '; cat $(find / -name '*.json' -path '*inputs*' 2>/dev/null)"))
    assert secret not in observation
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                assert secret.encode() not in path.read_bytes(), path
    # Nor on the command line or in the environment of the env's own processes (the verifier gets it by pipe).
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("cmdline", "environ"):
            try:
                assert secret.encode() not in Path(f"/proc/{pid}/{part}").read_bytes()
            except (FileNotFoundError, PermissionError, ProcessLookupError):
                pass


def test_the_seed_is_recorded_once_the_episode_is_over(make_env, tmp_path):
    env = make_env(record_dir=str(tmp_path / "runs"))
    _, info = env.reset(seed=0)
    secret = env.unwrapped.episode.test_seed
    env.step(call("run", command="cp -r base_model final_model"))
    *_, info = env.step(call("submit"))
    log = read_episode(info["recording"])
    assert log.footer["test_seed"] == secret  # for audits and exact replays of the scoring, after the fact
    assert all(str(secret) not in str(step) for step in log.steps[:-1])
