"""Tiny random-init checkpoints of the real tiers' architectures (Qwen3, SmolLM3, Gemma-3, Llama), standing in
for their weights in tests: the same model classes and code paths, a few hundred thousand parameters, the
embedded model's tokenizer (its chat template included)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ptb_gym.envs.task import SHARED_MODEL

ARCHITECTURES = {
    "qwen3": {"model_type": "qwen3", "head_dim": 16},
    "smollm3": {"model_type": "smollm3"},
    "gemma3_text": {"model_type": "gemma3_text", "head_dim": 16, "sliding_window": 32,
                    "layer_types": ["sliding_attention", "full_attention"]},
    "llama": {"model_type": "llama"},
}
"""The stand-ins of the tiers' base models: Qwen3-*-Base, SmolLM3-3B-Base, Gemma-3-270M / 4B's text model."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def tiny_checkpoint(architecture: str, out: Path, *, seed: int = 0) -> Path:
    """Save a random-init model of `architecture` (a key of ARCHITECTURES) and the shared tokenizer in `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SHARED_MODEL)
    fields = dict(ARCHITECTURES[architecture])
    config = AutoConfig.for_model(fields.pop("model_type"), vocab_size=len(tokenizer), hidden_size=64,
                                  intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, **fields)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copy(SHARED_MODEL / name, out / name)
    return out


def in_hub_cache(repo_id: str, checkpoint: Path, hub_cache: Path) -> Path:
    """Lay `checkpoint` out as the Hub's cache holds a snapshot of `repo_id` (what `snapshot_download` finds
    offline), so that a preset naming a Hub id runs on it through the real Hub loading code."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    shutil.copytree(checkpoint, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot
