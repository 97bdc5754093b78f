"""The train, evaluate and submit tools on the real trainer (TRL) and a real model, on CPU."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import call


def _sft_data(env, root, n=64):
    records = [{"prompt": f"Question: {r['question']}\nAnswer:", "completion": f" {r['solution']} #### {r['answer']}"}
               for r in map(json.loads, open(os.path.join(root, "data", "train.jsonl")))][:n]
    obs, *_ = env.step(call("write_data", path="data/sft.jsonl", records=records))
    assert f"Wrote {n} prompt-completion records" in obs


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_train_evaluate_submit(make_env, lora):
    env = make_env()
    _, info = env.reset(seed=0)
    root = info["workspace"]
    _sft_data(env, root)
    obs, _, _, _, info = env.step(call("train", data="data/sft.jsonl", output_dir="final_model", max_steps=4,
                                       batch_size=4, lora=lora))
    job = info["job"]["id"]
    obs, _, _, _, info = env.step(call("wait", job_id=job, timeout_s=300))
    assert info["job"]["state"] == "succeeded", obs
    assert [point["step"] for point in info["loss_curve"]] and all(p["loss"] > 0 for p in info["loss_curve"])
    saved = set(os.listdir(os.path.join(root, "final_model")))
    assert ("adapter_model.safetensors" if lora else "model.safetensors") in saved
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in saved)

    obs, _, _, _, info = env.step(call("evaluate", checkpoint="final_model", limit=8))
    assert set(info["dev_scores"]) == {"zero_shot_strict", "zero_shot_flexible", "few_shot"}
    assert "primary" in obs

    obs, reward, terminated, truncated, info = env.step(call("submit"))
    assert terminated and not truncated
    assert isinstance(reward, float)
    assert info["failure"] is None and info["valid"]
    assert set(info["scores"]) == {"zero_shot_strict", "zero_shot_flexible", "few_shot"}
    for entry in info["scores"].values():
        assert 0.0 <= entry["score"] <= 1.0 and entry["n"] == 32
    assert "Episode over." in obs


def test_train_reports_bad_data_clearly(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, *_ = env.step(call("train", data="data/train.jsonl"))
    assert "has keys ['answer', 'question', 'solution']; records are {'prompt'" in obs
    obs, *_ = env.step(call("write_data", path="d.jsonl", records=[{"prompt": "a"}]))
    assert "needs a string 'completion'" in obs


def test_a_crashing_training_script_is_an_observation(make_env):
    env = make_env()
    env.reset(seed=0)
    env.step(call("write_file", path="train.py", content="raise RuntimeError('loss is nan')"))
    env.step(call("launch", command="python train.py"))
    obs, reward, terminated, truncated, info = env.step(call("wait", job_id="job-1", timeout_s=60))
    assert info["job"]["state"] == "failed" and "loss is nan" in obs
    assert not (terminated or truncated)


def test_truncation_scores_final_model(make_env):
    env = make_env(max_steps=3)
    _, info = env.reset(seed=0)
    base = os.path.join(info["workspace"], "base_model")
    env.step(call("run", command=f"mkdir final_model && cp {base}/* final_model/"))
    env.step(call("list_files"))
    obs, reward, terminated, truncated, info = env.step(call("list_files"))
    assert truncated and info["failure"] is None
    assert info["checkpoint"] == "final_model"
    assert info["scores"]["zero_shot_strict"]["score"] >= 0.0
