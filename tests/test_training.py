"""The train, evaluate and submit tools on the real trainers (TRL's, and ptb-gym's own packed loop) and a real
model, on CPU."""

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
    """TRL's SFTTrainer, the CPU's engine for full fine-tuning and LoRA."""
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


def test_packed_training_through_the_tool(make_env):
    """ptb-gym's own loop (the GPU's engine, and the CPU's with packing): a loss curve that falls, counted tokens,
    a checkpoint that scores."""
    env = make_env()
    _, info = env.reset(seed=0)
    root = info["workspace"]
    _sft_data(env, root, n=200)
    obs, *_ = env.step(call("train", data="data/sft.jsonl", lora=True, packing=True))
    assert "packing is for full fine-tuning" in obs
    obs, _, _, _, info = env.step(call("train", data="data/sft.jsonl", output_dir="final_model", max_steps=20,
                                       batch_size=4, max_length=256, packing=True))
    assert "SFT (full, packed)" in obs
    obs, _, _, _, info = env.step(call("wait", job_id=info["job"]["id"], timeout_s=300))
    assert info["job"]["state"] == "succeeded", obs
    curve = info["loss_curve"]
    assert [p["step"] for p in curve] == [4, 8, 12, 16, 20] and curve[-1]["loss"] < curve[0]["loss"]
    assert "model.safetensors" in os.listdir(os.path.join(root, "final_model"))
    obs, reward, terminated, _, info = env.step(call("submit"))
    assert terminated and info["failure"] is None and info["valid"], obs


def test_chat_records_train_on_the_assistants_turn_after_the_evaluations_prompt():
    """Chat records reach the own loop (the GPU's engine) as prompt/completion pairs: the prompt's tokens are the
    ones a chat harness gives the model, the loss is on the assistant's last turn and what ends it."""
    from transformers import AutoTokenizer

    from ptb_gym.envs.task import SHARED_MODEL
    from ptb_gym.generation import encode_prompts, render_prompts
    from ptb_gym.training import tokenize

    tokenizer = AutoTokenizer.from_pretrained(SHARED_MODEL)
    conversation = [{"role": "system", "content": "Add."}, {"role": "user", "content": "2+3?"},
                    {"role": "assistant", "content": "5"}]
    prepared = tokenize([{"messages": conversation}], tokenizer, max_length=512)
    [ids], [labels] = prepared["input_ids"], prepared["labels"]
    prompt = encode_prompts(tokenizer, render_prompts(tokenizer, [conversation[:-1]]))[0]
    assert ids[:len(prompt)] == prompt and labels[:len(prompt)] == [-100] * len(prompt)
    assert tokenizer.decode(ids[len(prompt):]).startswith("5") and ids[-1] == tokenizer.eos_token_id
    assert labels[len(prompt):] == ids[len(prompt):]
    unanswered = conversation[:-1]  # nothing to learn from: TRL's trainer gets it, and says so
    assert tokenize([{"messages": unanswered}], tokenizer, max_length=512) is None


def test_packed_examples_attend_only_to_themselves():
    """A packed row's hidden states are each example's own: transformers masks packed sequences by their position
    ids (which `pack` restarts at 0 per example), with padding after them too."""
    import torch
    from ptb_gym.envs import load_task
    from transformers import AutoModelForCausalLM

    from ptb_gym.training import pack

    model = AutoModelForCausalLM.from_pretrained(load_task("math-v0").embedded_model).eval()
    decoder = getattr(model, model.base_model_prefix)
    examples = {"input_ids": [[5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16], [17, 18]],
                "labels": [[-100, 6, 7, 8], [-100, -100, 11], [12, 13, 14, 15, 16], [-100, 18]]}
    rows = pack(examples, row_length=8, packing=True, seed=0)
    assert len(rows) < 4 and all(len(ids) <= 8 for ids, _, _ in rows)
    segments = []
    for ids, labels, positions in rows:
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(ids)]
        segments += [(ids[a:b], labels[a:b]) for a, b in zip(starts, starts[1:])]
        assert positions == [p for a, b in zip(starts, starts[1:]) for p in range(b - a)]
        with torch.no_grad():
            packed = decoder(input_ids=torch.tensor([ids + [0, 0]]), position_ids=torch.tensor([positions + [0, 1]]),
                             use_cache=False).last_hidden_state[0]
            for a, b in zip(starts, starts[1:]):
                alone = decoder(input_ids=torch.tensor([ids[a:b]]), use_cache=False).last_hidden_state[0]
                torch.testing.assert_close(packed[a:b], alone, atol=1e-5, rtol=1e-4)
    assert sorted(segments) == sorted(zip(examples["input_ids"], examples["labels"]))
    assert sorted(len(ids) for ids, _, _ in pack(examples, row_length=8, packing=False, seed=0)) == [2, 3, 4, 5]


def test_packed_sequences_are_bounded_where_their_positions_restart():
    """The bounds that the GPU's variable-length attention takes instead of a mask (`ptb_gym.packed_attention`):
    each sequence of the flattened batch, the padding at a row's end included, from its position 0 on."""
    import torch

    from ptb_gym.packed_attention import sequence_bounds

    bounds = sequence_bounds(torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]]))
    assert bounds["cu_seq_lens_q"].tolist() == bounds["cu_seq_lens_k"].tolist() == [0, 3, 5, 6, 10, 12]
    assert bounds["cu_seq_lens_q"].dtype == torch.int32 and bounds["max_length_q"] == bounds["max_length_k"] == 6


def test_a_steps_loss_positions_are_the_shifted_labels():
    """The loop selects, on the CPU, the decoder outputs that take a loss and their targets: each position
    predicts the next label, a row's last position predicts nothing, and rows of unequal length are padded."""
    import torch

    from ptb_gym.packed_attention import sequence_bounds
    from ptb_gym.training import _step_tensors

    batch = [([5, 6, 7, 8], [-100, 6, 7, -100], [0, 1, 2, 0]), ([9, 10], [-100, 10], [0, 1])]
    input_ids, positions, extra, taken, targets = _step_tensors(batch, 0, sequence_bounds, "cpu")
    assert input_ids.tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]] and positions.tolist() == [[0, 1, 2, 0], [0, 1, 0, 1]]
    assert extra["cu_seq_lens_q"].tolist() == [0, 3, 4, 6, 8]
    hidden = torch.arange(8).reshape(2, 4, 1)  # a position's output is its flat index
    assert hidden.reshape(-1, 1).index_select(0, taken).flatten().tolist() == [0, 1, 4]
    assert targets.tolist() == [6, 7, 10]


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("softcap", [None, 30.0])
def test_the_fused_head_loss_has_the_plain_loss_and_gradients(softcap, compile):
    """`linear_cross_entropy` (chunks, gradients made in the forward pass) against logits, cross-entropy and
    autograd done plainly: the same loss and the same gradients for the hidden states and the head."""
    import torch

    from ptb_gym.linear_cross_entropy import linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    logits = hidden.double() @ weight.double().T  # the plain way in float64: the fused one's error is fp32's
    logits = torch.tanh(logits / softcap) * softcap if softcap else logits
    plain = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    expected = torch.autograd.grad(3 * plain, (hidden, weight))
    fused = linear_cross_entropy(hidden, weight, targets, softcap, chunk_rows=8, compile=compile)  # a ragged last chunk
    torch.testing.assert_close(fused, plain.float())
    for got, want in zip(torch.autograd.grad(3 * fused, (hidden, weight)), expected):
        torch.testing.assert_close(got, want.float())
