"""`ptb-gym batch` on a real local Ray cluster (two workers): a grid of agents x seeds, resumed, with the env's
failures injected where they happen (a verifier killed while it scores) and kept out of the means."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptb_gym.batch import run_batch, summarize, t_interval
from tests.conftest import SMALL

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED = "scripted:max_steps=2,evaluate_on_dev=false"
"""The reference recipe with 2 training steps, straight to submit: a whole scored episode in about 15 s."""
OPTIONS = {**SMALL, "max_steps": 12}
"""Room for the scripted agent's calls; it keeps the random agent's episodes short."""
KILLS = "PTB_TEST_VERIFIER_KILLS"


def kill_verifier_while_scoring() -> None:
    """A Ray worker setup hook: SIGKILL the verifier in the trusted `score` stage of an episode's final scoring (as
    an OOM killer or a lost node would), as many times per episode seed as the JSON file named by
    $PTB_TEST_VERIFIER_KILLS says (`{"0": 2}`: twice for seed 0). The rest is the real env: it sees its verifier
    die and classifies the failure itself."""
    from ptb_gym.episode import Episode

    real = Episode.verify_final

    def verify_final(self, checkpoint):
        verifier, request = self.verifier, self.verifier.request

        def killing_request(payload, timeout_s, progress=None):
            def watch(message):
                if message.get("stage") == "score" and _take_kill(self.seed):
                    os.kill(verifier._process.pid, signal.SIGKILL)
                if progress:
                    progress(message)

            return request(payload, timeout_s, watch)

        verifier.request = killing_request  # this scoring only
        try:
            return real(self, checkpoint)
        finally:
            del verifier.request

    Episode.verify_final = verify_final


def _take_kill(seed: int) -> bool:
    with open(os.environ[KILLS], "r+") as file:  # shared by the workers: one count for the whole cluster
        fcntl.flock(file, fcntl.LOCK_EX)
        kills = json.loads(file.read() or "{}")
        if kills.get(str(seed), 0) <= 0:
            return False
        kills[str(seed)] -= 1
        file.seek(0)
        file.truncate()
        file.write(json.dumps(kills))
        return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray instance with two worker CPUs whose workers run `kill_verifier_while_scoring`; yields the
    kill-count file."""
    kills = tmp_path_factory.mktemp("faults") / "kills.json"
    kills.write_text("{}")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "tests.test_batch.kill_verifier_while_scoring",
                          "env_vars": {"PYTHONPATH": path, KILLS: str(kills)}})
    yield kills
    ray.shutdown()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_the_cli_plays_a_grid_on_a_local_ray_cluster_and_a_rerun_skips_it(tmp_path):
    out = tmp_path / "batch"
    options = [arg for key, value in {**OPTIONS, "workdir": tmp_path}.items() for arg in ("-o", f"{key}={value}")]
    command = [sys.executable, "-m", "ptb_gym.batch", "PTB/math-v0", "--agents", SCRIPTED, "random",
               "--seeds", "0", "1", "--out", str(out), "--num-cpus", "2", *options]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 cell(s) played, 0 finished before" in run.stdout

    rows = read_csv(out / "results.csv")
    assert sorted((r["agent"], r["seed"]) for r in rows) == [("random", "0"), ("random", "1"), (SCRIPTED, "0"),
                                                           (SCRIPTED, "1")]
    assert all(r["valid"] == "True" and r["attempts"] == "1" for r in rows)
    assert all(r["score_zero_shot_strict"] for r in rows if r["agent"] == SCRIPTED)  # scored on the test split
    assert len({r["worker"] for r in rows}) == 2  # the two workers of the cluster each played episodes
    summary = {r["agent"]: r for r in read_csv(out / "summary.csv")}
    assert summary.keys() == {SCRIPTED, "random"}
    assert all(r["n"] == "2" and r["valid"] == "2" and r["invalid"] == "0" and r["mean"] for r in summary.values())
    recordings = sorted(p.name for p in (out / "recordings").iterdir())
    assert recordings == sorted(r["recording"] for r in rows)
    page = (out / "compare.html").read_text()
    assert all(name in page for name in recordings)
    assert "mean reward per task and agent" in run.stdout

    started = time.monotonic()
    rerun = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "0 cell(s) played, 4 finished before" in rerun.stdout
    assert time.monotonic() - started < 60  # no Ray started, no episode played
    assert len((out / "cells.jsonl").read_text().splitlines()) == 4
    assert read_csv(out / "summary.csv") == list(summary.values())


def test_the_envs_failures_are_retried_and_a_cell_that_keeps_failing_is_left_out_of_the_means(cluster, tmp_path):
    out, options = tmp_path / "batch", {**OPTIONS, "test_size": 8, "workdir": str(tmp_path)}
    grid = (["PTB/math-v0"], [SCRIPTED], [0, 1])
    # Seed 1: one kill, and the scoring's retry scores the model. Seed 0: four kills with one retry: the first
    # play's scoring and the scoring's retry are killed (an infrastructure failure), so the cell is played again,
    # and the same happens to the second play.
    cluster.write_text(json.dumps({"0": 4, "1": 1}))
    result = run_batch(*grid, out_dir=out, max_retries=1, options=options, progress=False)
    failing, retried = result.rows
    assert retried["valid"] and retried["failure_kind"] is None and isinstance(retried["reward"], float)
    assert retried["attempts"] == 1
    assert [(f["play"], f["kind"], f["stage"]) for f in retried["infrastructure_failures"]] == [
        (1, "infrastructure", "score")]
    assert not failing["valid"] and failing["failure_kind"] == "infrastructure" and failing["reward"] is None
    assert failing["attempts"] == 2 and json.loads(cluster.read_text()) == {"0": 0, "1": 0}
    failures = failing["infrastructure_failures"]
    assert [(f["play"], f["stage"]) for f in failures] == [(1, "score"), (1, "score"), (2, "score"), (2, "score")]
    assert all("the verifier process died (killed by signal 9" in f["message"] for f in failures)
    assert failures[0]["recording"] != failures[2]["recording"] == failing["recording"]
    assert {p.name for p in (out / "recordings").iterdir()} == {f["recording"] for f in failures} | {
        retried["recording"]}
    [summary] = result.summary  # the failed cell is in the table and the counts, in no mean: not a 0
    assert (summary["n"], summary["valid"], summary["invalid"], summary["mean"]) == (2, 1, 1, retried["reward"])
    assert [row["valid"] for row in read_csv(out / "results.csv")] == ["False", "True"]

    # The fault is gone: a rerun plays the failed cell again, and only that one.
    rerun = run_batch(*grid, out_dir=out, max_retries=1, options=options, progress=False)
    assert rerun.played == 1 and all(row["valid"] for row in rerun.rows) and rerun.summary[0]["invalid"] == 0
    assert rerun.rows[1] == retried
    assert len((out / "cells.jsonl").read_text().splitlines()) == 3  # every line kept; a cell's last one counts


def test_the_summary_averages_valid_cells_only_with_a_t_interval():
    row = {"env_id": "PTB/math-v0", "agent": "a", "reward_kind": "normalized_uplift"}
    rows = [{**row, "seed": 0, "valid": True, "reward": 0.5}, {**row, "seed": 1, "valid": True, "reward": 0.7},
            {**row, "seed": 2, "valid": False, "reward": None}]
    [entry] = summarize(rows)
    assert entry["mean"] == pytest.approx(0.6) and (entry["n"], entry["valid"], entry["invalid"]) == (3, 2, 1)
    assert (entry["low"], entry["high"]) == pytest.approx((0.6 - 1.2706, 0.6 + 1.2706))  # t(0.975, 1) = 12.706
    low, high = t_interval([0.0, 1.0] * 16)  # 31 degrees of freedom: t = 2.040
    assert (high - low) / 2 == pytest.approx(2.0395 * (32 / 31) ** 0.5 * 0.5 / 32**0.5, rel=1e-3)
    assert t_interval([0.3]) is None


def test_a_rerun_with_other_env_options_is_refused(tmp_path):
    (tmp_path / "batch.json").write_text(json.dumps({"format_version": 1, "options": {"budget_s": 60}}))
    with pytest.raises(ValueError, match="other env options"):
        run_batch(["PTB/math-v0"], ["random"], [0], out_dir=tmp_path, options={"budget_s": 90}, progress=False)
