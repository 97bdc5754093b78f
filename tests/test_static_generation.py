"""The GPU's decoder (static cache, masks of its own, CUDA graphs there) writes what `model.generate` writes, on
every tier's architecture and attention; run here without graphs, the same steps eagerly."""

from __future__ import annotations

import pytest
import torch
from tiny_models import ARCHITECTURES, tiny_checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

from ptb_gym import generation, static_generation
from ptb_gym.envs import load_task
from ptb_gym.envs.task import SHARED_MODEL


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_the_static_decoder_writes_what_generate_writes(tmp_path, architecture, attention):
    checkpoint = tiny_checkpoint(architecture, tmp_path / architecture)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation=attention).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    # Rows of different lengths (left padding), and the longest past gemma's 32-token sliding window.
    prompts = ["Question: what is 12 + 7? Answer:", "hi", "The quick brown fox jumps over the lazy dog, " * 4]
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    ends = generation.end_token_ids(tokenizer)
    with torch.inference_mode():
        got = static_generation.greedy_batch(model, ids, 40, ends, tokenizer.pad_token_id, graphs=False)
        expected = [model.generate(torch.tensor([row]), max_new_tokens=40, do_sample=False, eos_token_id=sorted(ends),
                                   pad_token_id=tokenizer.pad_token_id)[0, len(row):].tolist() for row in ids]
    assert max(map(len, ids)) + 40 > 32
    assert got == expected


def test_the_static_decoder_ends_rows_where_the_final_evaluation_does():
    """The embedded model writes its end token at different steps; the rows stop there, as `generate`'s do."""
    task = load_task("math-v0")
    model = AutoModelForCausalLM.from_pretrained(SHARED_MODEL).eval()
    tokenizer = AutoTokenizer.from_pretrained(SHARED_MODEL)
    items = task.records("test", 24)
    for harness in (task.harnesses[0], next(h for h in task.harnesses if h.shots)):
        prompts = generation.render_prompts(tokenizer, [task.prompt(item, harness) for item in items])
        ends = generation.end_token_ids(tokenizer, harness.stop)
        expected = generation.generate(model, tokenizer, prompts, max_new_tokens=harness.max_new_tokens,
                                       stop=harness.stop)
        with torch.inference_mode():
            new = static_generation.greedy_batch(model, generation.encode_prompts(tokenizer, prompts),
                                                 harness.max_new_tokens, ends, tokenizer.pad_token_id, graphs=False)
        assert len({len(row) for row in new}) > 1 and any(row[-1] in ends for row in new)
        assert tokenizer.batch_decode(new, skip_special_tokens=True) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("architecture", ["gemma3_text", "qwen3"])
def test_the_graphed_decoder_on_a_gpu_writes_what_generate_writes(tmp_path, architecture):
    checkpoint = tiny_checkpoint(architecture, tmp_path / architecture)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval().to("cuda")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    ids = [tokenizer(p)["input_ids"] for p in ["Question: 12 + 7? Answer:", "hi", "a b c d e f g h " * 6]]
    ends = generation.end_token_ids(tokenizer)
    with torch.inference_mode():
        graphed = static_generation.greedy_batch(model, ids, 60, ends, tokenizer.pad_token_id, graphs=True)
        eager = static_generation.greedy_batch(model, ids, 60, ends, tokenizer.pad_token_id, graphs=False)
        expected = [model.generate(torch.tensor([row], device="cuda"), max_new_tokens=60, do_sample=False,
                                   eos_token_id=sorted(ends), pad_token_id=tokenizer.pad_token_id)[0, len(row):].tolist()
                    for row in ids]
    assert graphed == eager == expected


def test_a_checkpoint_whose_config_the_decoder_cannot_mask_falls_back(tmp_path):
    """A submitted checkpoint's config is the agent's: layer types or a window it does not build masks for send
    generation to the general decoder, rather than failing in it."""
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("gemma3_text", tmp_path / "gemma")).eval()
    assert static_generation.supports(model)
    model.config.sliding_window = None
    assert not static_generation.supports(model)
    model.config.sliding_window = 32
    model.config.layer_types = ["chunked_attention", "full_attention"]
    assert not static_generation.supports(model)
