"""Every benchmark script runs end to end at a tiny size and writes its results file (no timing is asserted)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def script(monkeypatch):
    """Import a benchmark script as its command line would run it (with benchmarks/ on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str):
        return importlib.import_module(name)

    yield load
    for name in ("common", "env_latency", "train_throughput", "eval_throughput", "episode", "snapshots",
                 "budget_invariance", "vector_cost"):
        sys.modules.pop(name, None)


def run_quick(module, tmp_path: Path, *options: str) -> dict:
    config, quick = module.parse_config(module.Config, ["--quick", "--results-dir", str(tmp_path), *options],
                                        quick=module.QUICK)
    assert quick
    module.main(config, quick=quick)
    written = json.loads((tmp_path / f"{config.name if hasattr(config, 'name') else module.__name__}-quick.json")
                         .read_text())
    assert written["machine"]["cpu_count"] >= 1 and written["machine"]["versions"]["torch"]
    return written["results"]


def test_env_latency(script, tmp_path):
    results = run_quick(script("env_latency"), tmp_path)
    operations = results["operations"]
    assert {"import ptb_gym", "gym.make", "reset", "step list_files", "step read_file"} <= set(operations)
    assert results["torch_imported_by_import_ptb_gym"] is False


def test_eval_throughput(script, tmp_path):
    results = run_quick(script("eval_throughput"), tmp_path)
    variants = results["variants"]
    assert set(variants) == {"final evaluation", "per item", "hf batched"}
    # Greedy decoding: the batched evaluation writes the same completions as one generate call per item.
    for name in ("per item", "hf batched"):
        same, total = map(int, variants[name]["same_completions"].split("/"))
        assert same == total > 0


def test_train_throughput(script, tmp_path):
    # The tool as the module it launches (the env's path runs in test_episode); the plain TRL and torch scripts.
    results = run_quick(script("train_throughput"), tmp_path, "--via", "module")
    for variant in ("tool", "trl", "torch"):
        assert results["variants"][variant]["steady_tokens_per_s"]["median"] > 0


def test_train_step(script, tmp_path):
    # The loop itself in this process, each attention variant timed and profiled.
    results = run_quick(script("train_step"), tmp_path)
    assert set(results["variants"]) == {"packed", "masked", "compiled"}  # compiled: on a GPU only
    assert all(len(v["gaps_s"]) == 3 and v["step_s"] > 0 for v in results["variants"].values())
    assert "aten::" in (tmp_path / "train_step_packed_profile.txt").read_text()


def test_episode(script, tmp_path):
    results = run_quick(script("episode"), tmp_path)
    assert results["failure"] is None, results["failure"]
    assert results["training_loop_s"] > 0 and results["generation_s"] > 0
    assert abs(sum(results["parts_s"].values()) - results["wall_s"]) < 0.05 * results["wall_s"]


def test_snapshots(script, tmp_path):
    results = run_quick(script("snapshots"), tmp_path)
    assert results["snapshots_taken"] == results["steps"] > 3
    assert results["total_bytes"]["snapshots"] < results["total_bytes"]["full_copies"]


def test_budget_invariance(script, tmp_path):
    results = run_quick(script("budget_invariance"), tmp_path)
    assert [(row["mode"], row["parallel"]) for row in results["rows"]] == [("cpu", 1), ("cpu", 2)]
    assert len(results["episodes"]) == 3 and all(e["failure"] is None for e in results["episodes"])
    assert results["by_mode"]["cpu"]["max_abs_delta_uplift"] >= 0


def test_vector_cost(script, tmp_path):
    rows = run_quick(script("vector_cost"), tmp_path)["rows"]
    assert [row["num_envs"] for row in rows] == [1, 2]
    assert all(row["training_peak_rss_mib"] > row["idle_rss_mib"] > 0 for row in rows)
