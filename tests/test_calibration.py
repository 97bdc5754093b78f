"""Calibration recomputes base and recipe scores per harness and records them for the reward."""

from __future__ import annotations

import json

import pytest

from ptb_gym.calibration import calibrate, seed_interval, write_scores
from ptb_gym.envs import load_task
from tests.conftest import SMALL


def test_calibrate_scores_base_and_recipes_and_records_them(tmp_path):
    result = calibrate("PTB/math-v0", seeds=(0,), recipes=("reference",), draws=2,
                       options={**SMALL, "workdir": str(tmp_path)}, agent_options={"max_steps": 3, "wait_chunk_s": 5},
                       log=lambda line: None)
    assert set(result["harnesses"]) == {h.name for h in load_task("math-v0").harnesses}
    assert result["command"].startswith("ptb-gym calibrate PTB/math-v0 --seeds 0 --draws 2 --recipes reference -o "
                                        "train_size=200 -o dev_size=16 -o test_size=32 -o device=cpu -o workdir=")
    for entry in result["harnesses"].values():
        assert 0.0 <= entry["base"] <= 1.0 and len(entry["reference_seeds"]) == 1
        assert len(entry["base_draws"]) == 2  # the base model on two secret test splits
    scores_file = tmp_path / "scores.json"
    assert write_scores(result, scores_file, "ptb-tiny") == []
    recorded = json.loads(scores_file.read_text())["models"]["ptb-tiny"]
    assert recorded["zero_shot_strict"]["reference"] == round(result["harnesses"]["zero_shot_strict"]["reference"], 4)
    result["harnesses"]["zero_shot_strict"]["reference"] += 0.5
    assert write_scores(result, scores_file, "ptb-tiny") == ["zero_shot_strict"]  # moved: the id must be bumped


def test_a_calibration_without_the_reference_adds_its_recipes_to_the_recorded_one(tmp_path):
    scores_file = tmp_path / "scores.json"
    entry = lambda base, **recipes: {"base": base, "base_draws": [base], "base_interval": [base, base],
                                     **{k: v for name, score in recipes.items() for k, v in (
                                         (name, score), (f"{name}_seeds", [score]), (f"{name}_interval", [score] * 2))}}
    calibration = lambda recipes, harnesses: {"env_id": "PTB/code-v0", "recipes": recipes, "harnesses": harnesses,
                                              "runs": {r: [{"seed": 0}] for r in recipes}, "command": "c"}
    added = calibration(["chat"], {"a": entry(0.01, chat=0.2), "b": entry(0.0, chat=0.7)})
    with pytest.raises(ValueError, match="calibrate with the reference recipe first"):
        write_scores(added, scores_file, "embedded")  # nothing recorded to add to
    assert not scores_file.exists()
    ladder = calibration(["naive", "reference"], {"a": entry(0.0, naive=0.3, reference=0.9),
                                                  "b": entry(0.0, naive=0.1, reference=0.2)})
    write_scores(ladder, scores_file, "embedded")
    assert write_scores(added, scores_file, "embedded") == []
    recorded = json.loads(scores_file.read_text())
    a = recorded["models"]["embedded"]["a"]
    assert (a["base"], a["reference"], a["naive"], a["chat"], a["chat_seeds"]) == (0.0, 0.9, 0.3, 0.2, [0.2])
    calibrations = recorded["calibrations"]["embedded"]
    assert calibrations["recipes"] == ["naive", "reference", "chat"] and set(calibrations["runs"]) == {
        "naive", "reference", "chat"}
    assert [c["recipes"] for c in calibrations["added"]] == [["chat"]]
    from ptb_gym.harness_study import table

    assert table(recorded["models"]["embedded"])["b"] == {"base": 0.0, "reference": 0.2, "naive": 0.1, "chat": 0.7}
    added["harnesses"]["a"]["base"] = 0.2  # the base moved since the recorded calibration: the id must be bumped
    assert write_scores(added, scores_file, "embedded") == ["a"]


def test_seed_interval_widens_with_seed_spread():
    assert seed_interval([0.8, 0.8, 0.8], 1000)[1] - seed_interval([0.8, 0.8, 0.8], 1000)[0] < 0.05
    tight, loose = seed_interval([0.8, 0.8, 0.8], 1000), seed_interval([0.6, 0.8, 1.0], 1000)
    assert loose[1] - loose[0] > tight[1] - tight[0]


def test_recorded_scores_normalize_the_reward():
    task = load_task("math-v0")
    recorded = task.scores_for("embedded")
    assert recorded is not None, "run `ptb-gym calibrate PTB/math-v0` to record the embedded tier's scores"
    primary = recorded[task.primary_harness]
    assert primary["reference"] - primary["base"] >= 0.4


def test_markdown_table_gives_each_harness_and_the_primary_uplift_per_seed():
    from ptb_gym.calibration import markdown_table

    entry = lambda base, naive, ref: {"base": base, "base_interval": [base, base], "naive": naive,
                                      "naive_interval": [naive - 0.01, naive + 0.01], "naive_seeds": [naive] * 2,
                                      "reference": ref, "reference_interval": [ref - 0.02, ref + 0.02],
                                      "reference_seeds": [ref - 0.1, ref + 0.1]}
    result = {"recipes": ["naive", "reference"], "primary_harness": "a", "seeds": [0, 1],
              "harnesses": {"a": entry(0.1, 0.3, 0.5), "b": entry(0.0, 0.2, 0.4)}}
    lines = markdown_table(result).splitlines()
    assert lines[0] == "| harness | base | naive (2 seeds) | reference (2 seeds) |"
    assert lines[2] == "| `a` (primary) | 10.0% [10.0%-10.0%] | 30.0% [29.0%-31.0%] | 50.0% [48.0%-52.0%] |"
    assert lines[3].startswith("| `b` | 0.0%")
    assert lines[-1] == "| mean [per seed] | 0.50 [0.50, 0.50] | 1.00 [0.75, 1.25] |"
    result["harnesses"]["a"] = entry(0.5, 0.5, 0.5)  # no gap: no uplift row, never a division by zero
    assert "normalized uplift" not in markdown_table(result)
