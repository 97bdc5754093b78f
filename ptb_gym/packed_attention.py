"""Attention over packed rows as variable-length sequences, for the `train` tool's own loop on a GPU.

A packed row holds many examples, each attending only to itself. Through SDPA, transformers makes that a
block-diagonal mask per row, which rules out the flash kernel and computes every row's full square of scores;
`torch.nn.attention.varlen.varlen_attn` (flash attention over concatenated sequences) takes the examples' bounds
instead and computes only their own triangles. Registered with transformers as the attention implementation
`NAME`, fed each step the bounds from `sequence_bounds`.
"""

from __future__ import annotations

import torch

NAME = "ptb_packed"


def supports(model, device: str) -> bool:
    """Whether `model` can attend through `NAME` on `device`: flash attention runs on CUDA (torch >= 2.9), with
    head sizes up to 256 and neither logit soft-capping nor dropout in the attention."""
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    config = model.config
    head_size = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return (device == "cuda" and head_size <= 256 and not getattr(config, "attn_logit_softcapping", None)
            and not getattr(config, "attention_dropout", 0.0))


def register() -> str:
    """Make `NAME` an attention implementation of transformers, with no mask built for it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, _attention)
    AttentionMaskInterface.register(NAME, lambda *args, **kwargs: None)
    return NAME


def sequence_bounds(positions: torch.Tensor) -> dict:
    """The model's keyword arguments for rows whose position ids restart at 0 with each packed sequence: the
    sequences' cumulative bounds in the flattened batch, and the row length as the bound on their lengths (exact
    lengths would cost, compiled, a recompilation per new longest). On the positions' device: the train loop
    passes CPU positions, so that finding the starts costs no wait on the GPU."""
    flat = positions.reshape(-1)
    starts = torch.nonzero(flat == 0).flatten()
    bounds = torch.cat([starts, starts.new_tensor([flat.numel()])]).to(torch.int32)
    longest = positions.shape[-1]
    return {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "max_length_q": longest, "max_length_k": longest}


def _attention(module, query, key, value, attention_mask, scaling=None, sliding_window=None, **kwargs):
    """transformers' attention signature: query, key and value as (batch, heads, tokens, head size); returns the
    output as (batch, tokens, heads, head size)."""
    from torch.nn.attention.varlen import varlen_attn

    batch, heads, tokens, size = query.shape
    flat = lambda states: states.transpose(1, 2).reshape(batch * tokens, states.shape[1], size).to(torch.bfloat16)
    key, value = flat(key), flat(value)
    if key.shape[1] != heads:  # grouped-query attention: each key/value head serves a group of query heads
        key, value = (states.repeat_interleave(heads // states.shape[1], dim=1) for states in (key, value))
    window = (sliding_window - 1, 0) if sliding_window else (-1, 0)  # causal, within the window where one is set
    output = varlen_attn(flat(query), key, value, kwargs["cu_seq_lens_q"], kwargs["cu_seq_lens_k"],
                         kwargs["max_length_q"], kwargs["max_length_k"], scale=scaling, window_size=window)
    return output.reshape(batch, tokens, heads, size).to(query.dtype), None
