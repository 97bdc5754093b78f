"""The harness study: Kendall's tau, the table and the plot, from a calibration's scores."""

from __future__ import annotations

import pytest

from ptb_gym import harness_study
from ptb_gym.cli import main

CALIBRATION = {"harnesses": {
    "zero_shot": {"base": 0.0, "naive": 0.2, "tuned": 0.3, "synth": 0.6, "reference": 0.9, "naive_seeds": [0.2]},
    "few_shot": {"base": 0.3, "naive": 0.1, "tuned": 0.05, "synth": 0.4, "reference": 0.35},
}}


def test_kendall_tau_orders_and_ties():
    assert harness_study.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert harness_study.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert harness_study.kendall_tau([1, 2, 3], [5, 5, 5]) is None
    # tau-b with a tie: 2 concordant, 0 discordant, 1 tie in y -> 2 / sqrt(3 * 2)
    assert harness_study.kendall_tau([1, 2, 3], [1, 2, 2]) == pytest.approx(2 / 6 ** 0.5)


def test_table_keeps_means_and_drops_per_seed_lists():
    table = harness_study.table(CALIBRATION)
    assert table["zero_shot"] == {"base": 0.0, "naive": 0.2, "tuned": 0.3, "synth": 0.6, "reference": 0.9}


def test_report_shows_the_rankings_disagreeing():
    text = harness_study.report(harness_study.table(CALIBRATION), primary="zero_shot")
    assert "zero_shot *" in text and "reference" in text
    # zero-shot orders naive < tuned < synth < reference; few-shot: tuned < naive < reference < synth
    assert "zero_shot vs few_shot: +0.33" in text


def test_plot_writes_a_png(tmp_path):
    path = harness_study.plot(harness_study.table(CALIBRATION), tmp_path / "study.png", "a task")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_on_the_recorded_calibration(tmp_path, capsys):
    assert main(["harness-study", "PTB/math-v0", "--recorded", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Kendall's tau" in out and "zero_shot_strict *" in out
    assert (tmp_path / "math-v0.png").exists() and (tmp_path / "math-v0.json").exists()
