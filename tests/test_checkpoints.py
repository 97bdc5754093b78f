"""Checkpoints: lineage compares every tensor, and scoring shares generation only between identical prompts."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ptb_gym import checkpoints, generation
from ptb_gym.envs import load_task
from ptb_gym.evaluation import evaluate_model, score_checkpoint
from ptb_gym.integrity import IntegrityViolation

TASK = load_task("math-v0")
BASE = TASK.embedded_model


def save(model, path):
    model.save_pretrained(path, safe_serialization=True)
    return path


def test_a_post_trained_model_passes_and_a_partial_swap_does_not(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    tuned = checkpoints.load_model(BASE, BASE)
    with torch.no_grad():  # a fine-tune's footprint: every weight moved by a fifth of its spread
        for parameter in tuned.parameters():
            parameter.add_(0.2 * parameter.std() * torch.randn_like(parameter))
    flag, stats = checkpoints.check_lineage(tuned, BASE, save(tuned, tmp_path / "tuned"))
    assert flag is None and stats["min_correlation"] > 0.9

    other = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(BASE))
    swapped = checkpoints.load_model(BASE, BASE)
    layer = swapped.model.layers[1]
    layer.load_state_dict(other.model.layers[1].state_dict())  # one layer of four from an independent model
    flag, stats = checkpoints.check_lineage(swapped, BASE, save(swapped, tmp_path / "swapped"))
    assert flag is not None and flag.check == "lineage"
    assert 0 < stats["below_threshold"] < stats["tensors"] and "layers.1." in next(iter(stats["least_correlated"]))
    # The median over tensors, the old statistic, would have passed it.
    assert stats["median_correlation"] > 0.9
    with pytest.raises(IntegrityViolation, match="do not descend"):
        score_checkpoint(tmp_path / "swapped", BASE, TASK, TASK.records("dev", 2))


def test_harnesses_share_completions_only_when_their_prompts_are_the_same(monkeypatch):
    calls = []
    real = generation.generate

    def counting(model, tokenizer, prompts, **kwargs):
        calls.append((len(prompts), kwargs["max_new_tokens"]))
        return real(model, tokenizer, prompts, **kwargs)

    monkeypatch.setattr(generation, "generate", counting)
    strict, flexible, few_shot = TASK.harnesses
    longer = dataclasses.replace(strict, name="longer", max_new_tokens=8)
    model, tokenizer = checkpoints.load_model(BASE, BASE), checkpoints.load_tokenizer(BASE)
    items = TASK.records("dev", 4)
    scores = evaluate_model(model, tokenizer, TASK, items, [strict, flexible, few_shot, longer])
    # strict and flexible differ only in extraction: one generation; few-shot and a different length: one each.
    assert calls == [(4, 48), (4, 48), (4, 8)]
    assert set(scores) == {"zero_shot_strict", "zero_shot_flexible", "few_shot", "longer"}


def test_stop_sequences_cut_completions():
    assert generation.cut_at_stop("12+7=19 #### 19\nQuestion: next", ("\nQuestion:",)) == "12+7=19 #### 19"
    assert generation.cut_at_stop("no stop here", ("###x", "")) == "no stop here"


def test_sizes_are_checked_before_anything_is_allocated(tmp_path):
    import json
    import shutil

    from ptb_gym.errors import ToolError

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 10**9}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ToolError, match="LoRA rank of 1000000000"):
        checkpoints.checkpoint_kind(adapter, BASE)

    many = tmp_path / "many"
    many.mkdir()
    header = json.dumps({f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for i in range(5000)}).encode()
    (many / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 4)
    with pytest.raises(ToolError, match="names 5000 tensors"):
        checkpoints.checkpoint_kind(many, BASE)

    truncated = tmp_path / "truncated"
    shutil.copytree(BASE, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ToolError, match="truncated"):
        checkpoints.checkpoint_kind(truncated, BASE)
    assert checkpoints.checkpoint_kind(BASE, BASE) == "full"


def test_a_load_sets_every_weight_from_the_checkpoint_or_refuses_it(tmp_path):
    """Models are built without initialising their weights: each one must come from the file (or be refused)."""
    from safetensors.torch import load_file, save_file

    model = checkpoints.load_model(BASE, BASE)
    saved = load_file(BASE / "model.safetensors")
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in saved.items())

    short = tmp_path / "short"
    short.mkdir()
    for file in BASE.glob("*.json"):
        (short / file.name).write_bytes(file.read_bytes())
    dropped = next(name for name in saved if "mlp" in name)
    save_file({k: v for k, v in saved.items() if k != dropped}, short / "model.safetensors")
    with pytest.raises(IntegrityViolation, match="do not fit") as refused:
        checkpoints.load_model(short, BASE)
    assert refused.value.flag.evidence["missing"] == [dropped]


def test_a_saved_tokenizer_is_compared_by_its_vocabulary_not_its_bytes(tmp_path):
    import json

    base = json.loads((BASE / "tokenizer.json").read_text())
    (tmp_path / "tokenizer.json").write_text(json.dumps(base, indent=1))  # the same tokenizer, written otherwise
    assert checkpoints._check_tokenizer(tmp_path, BASE) is None
    (tmp_path / "tokenizer.json").write_bytes((BASE / "tokenizer.json").read_bytes())
    assert checkpoints._check_tokenizer(tmp_path, BASE) is None
    vocab = base["model"]["vocab"]
    first = next(iter(vocab)) if isinstance(vocab, dict) else 0
    if isinstance(vocab, dict):
        vocab["renamed"] = vocab.pop(first)
    else:
        vocab[first] = ["renamed", vocab[first][1]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(base))
    assert checkpoints._check_tokenizer(tmp_path, BASE).check == "lineage"
