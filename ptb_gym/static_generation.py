"""Greedy decoding on a GPU: a static KV cache, masks built once per step on the device, and the decoding step
captured as a CUDA graph and replayed.

On a GPU a small model's decoding step is bound by kernel launches and the Python around them, not by arithmetic:
gemma-3-270m spent 40 to 80 ms a step in `model.generate` on the H200 whatever the batch (benchmarks/
eval_throughput.py). Here every tensor a step touches keeps its address (the cache is allocated once per batch, at
full length for every layer; sliding-window layers get a window-shaped mask over it, so they see exactly what
the model's own cache would keep), and the step (forward, argmax, end-of-sequence bookkeeping) runs as one graph.
The model's own modules and attention do the work: this module only supplies the cache, the masks and the
positions, which the models of every tier accept (`attention_mask` as a 4D mask, or one per layer type).

Without a GPU (`graphs=False`) the same steps run eagerly, which is how the tests compare it with
`model.generate` on every tier's architecture.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence

__all__ = ["forward_parameter", "greedy_batch", "supports"]

# Rows finished is checked (a device-to-host copy, which waits for the GPU) once per this many steps.
_CHECK_DONE_EVERY = 32
# Eager steps before the capture: the first calls allocate workspaces (cuBLAS, the caching allocator).
_WARMUP_STEPS = 2
# The layer types whose masks `_Decoder._masks` builds.
_MASKS = ("full_attention", "sliding_attention")
# Share of the GPU's free memory the cache of one batch may take (rows are split into several batches beyond it).
_CACHE_MEMORY_SHARE = 0.4


def supports(model) -> bool:
    """Whether the model's attention takes the masks this decoder builds: SDPA or eager attention, over all
    earlier tokens or a sliding window (not chunks, not other kernels)."""
    config = model.config
    kinds = set(getattr(config, "layer_types", None) or [])
    window = getattr(config, "sliding_window", None)
    windowed = "sliding_attention" not in kinds or (isinstance(window, int) and window > 0)
    return getattr(config, "_attn_implementation", None) in ("sdpa", "eager") and kinds <= set(_MASKS) and windowed


def greedy_batch(model, prompts: Sequence[list[int]], max_new_tokens: int, end_ids: frozenset[int], pad_id: int,
                 *, graphs: bool = True) -> list[list[int]]:
    """Greedy decoding of `prompts` (token ids): each row's new tokens up to and including its end token, as
    `model.generate(do_sample=False)` writes them. Rows that would not fit the GPU's memory in one cache are
    decoded in several batches."""
    rows = _rows_that_fit(model, max(len(p) for p in prompts) + max_new_tokens, len(prompts))
    out: list[list[int]] = []
    for start in range(0, len(prompts), rows):
        out += _Decoder(model, prompts[start : start + rows], max_new_tokens, end_ids, pad_id).run(graphs)
    return out


class _StaticCache:
    """Keys and values of every layer for a batch of rows, `length` slots each, written at `position` (a device
    tensor, so that a replayed step writes where the sequence has got to). Stands in for transformers' `Cache`
    in the attention modules' `cache.update(keys, values, layer_idx, ...)`."""

    def __init__(self, length: int, device):
        import torch

        self.length = length
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.slots = torch.arange(length, device=device)
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def update(self, keys, values, layer_idx: int, *args, **kwargs):
        import torch

        if layer_idx not in self.keys:
            shape = (keys.shape[0], keys.shape[1], self.length, keys.shape[3])
            self.keys[layer_idx] = torch.zeros(shape, dtype=keys.dtype, device=keys.device)
            self.values[layer_idx] = torch.zeros(shape, dtype=values.dtype, device=values.device)
        index = self.position + self.slots[: keys.shape[2]]
        self.keys[layer_idx].index_copy_(2, index, keys)
        self.values[layer_idx].index_copy_(2, index, values)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:  # asked only when no positions are given: never here
        raise NotImplementedError("the static cache is given explicit positions")


class _Decoder:
    """One batch: left-padded prompts in the first `width` slots of the cache, new tokens after them."""

    def __init__(self, model, prompts: Sequence[list[int]], max_new_tokens: int, end_ids: frozenset[int], pad_id: int):
        import torch

        self.model, self.max_new_tokens = model, max_new_tokens
        device = next(model.parameters()).device
        rows, self.width = len(prompts), max(len(p) for p in prompts)
        self.cache = _StaticCache(self.width + max_new_tokens, device)
        ids = torch.full((rows, self.width), pad_id, dtype=torch.long)
        visible = torch.ones((rows, self.cache.length), dtype=torch.bool)  # the pads are the only hidden slots
        for row, prompt in enumerate(prompts):
            ids[row, self.width - len(prompt):] = torch.tensor(prompt)
            visible[row, : self.width - len(prompt)] = False
        self.ids, self.visible = ids.to(device), visible.to(device)
        self.positions = (self.visible[:, : self.width].long().cumsum(-1) - 1).clamp(min=0)
        self.ends = torch.tensor(sorted(end_ids), dtype=torch.long, device=device)
        self.pad = torch.tensor(pad_id, device=device)
        self.out = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
        self.step_index = torch.ones(1, dtype=torch.long, device=device)
        self.done = torch.zeros(rows, dtype=torch.bool, device=device)
        config = model.config
        self.layer_types = sorted(set(getattr(config, "layer_types", None) or []))
        self.window = getattr(config, "sliding_window", None)
        self.boolean_masks = config._attn_implementation == "sdpa"
        self.cache_argument = forward_parameter(type(model), "cache", "past_key_values")
        self.takes_cache_position = forward_parameter(type(model), "cache_position") is not None

    def run(self, graphs: bool) -> list[list[int]]:
        import torch

        # Prefill: the prompts' slots, then the first new token.
        slots = torch.arange(self.width, device=self.ids.device)
        first = self._forward(self.ids, self.positions, slots).argmax(dim=-1)
        self.out[:, 0] = first
        self.done |= self._is_end(first)
        self.tokens, self.next_position = first.clone(), self.positions[:, -1] + 1
        self.cache.position.fill_(self.width)
        steps, step, next_step = self.max_new_tokens - 1, 0, self._step
        if graphs and steps > _WARMUP_STEPS:
            side = torch.cuda.Stream()  # warm-up on a side stream, as torch.cuda.graphs' documentation asks
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for step in range(1, _WARMUP_STEPS + 1):
                    self._step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._step()  # recorded, not run
            next_step = graph.replay
        while step < steps and not (step % _CHECK_DONE_EVERY == 0 and bool(self.done.all())):
            next_step()
            step += 1
        new = self.out.tolist()
        ends = set(self.ends.tolist())
        return [row[: next((i + 1 for i, t in enumerate(row) if t in ends), len(row))] for row in new]

    def _step(self) -> None:
        """One decoding step, entirely on the device (captured as a graph): every tensor keeps its address."""
        import torch

        token = self._forward(self.tokens[:, None], self.next_position[:, None], self.cache.position).argmax(dim=-1)
        token = torch.where(self.done, self.pad, token)
        self.out.index_copy_(1, self.step_index, token[:, None])
        self.done |= self._is_end(token)
        self.tokens.copy_(token)
        self.next_position.add_(1)
        self.cache.position.add_(1)
        self.step_index.add_(1)

    def _is_end(self, tokens):
        return (tokens[:, None] == self.ends[None, :]).any(dim=-1)

    def _forward(self, input_ids, position_ids, query_slots):
        """Next-token logits of each row's last query, the queries sitting at `query_slots` of the cache."""
        kwargs = {self.cache_argument: self.cache}
        if self.takes_cache_position:
            kwargs["cache_position"] = query_slots
        logits = self.model(input_ids=input_ids, position_ids=position_ids, attention_mask=self._masks(query_slots),
                            use_cache=True, logits_to_keep=1, **kwargs).logits
        return logits[:, -1, :]

    def _masks(self, query_slots):
        """[rows, 1, queries, slots] masks: each query sees the visible slots up to its own (a pad query sees
        itself, so that no softmax is over nothing), and within the window on sliding-window layers. One per
        layer type where the model has several."""
        import torch

        slots = self.cache.slots[None, :]
        queries = query_slots[:, None]
        causal = (slots <= queries)[None, None] & self.visible[:, None, None, :] | (slots == queries)[None, None]
        masks = {"full_attention": causal}
        if "sliding_attention" in self.layer_types:
            masks["sliding_attention"] = causal & (slots > queries - self.window)[None, None]
        if not self.boolean_masks:  # eager attention adds its mask to the scores
            dtype = next(self.model.parameters()).dtype
            masks = {kind: torch.zeros((), dtype=dtype, device=m.device).masked_fill(~m, torch.finfo(dtype).min)
                     for kind, m in masks.items()}
        return {kind: masks[kind] for kind in self.layer_types} if self.layer_types else masks["full_attention"]


def _rows_that_fit(model, length: int, rows: int) -> int:
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return rows
    config = model.config
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dtype_bytes = next(model.parameters()).element_size()
    per_row = 2 * config.num_hidden_layers * kv_heads * head_dim * length * dtype_bytes
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(rows, int(_CACHE_MEMORY_SHARE * free // per_row)))


@functools.cache
def forward_parameter(model_class: type, *names: str) -> str | None:
    """The first of `names` that the model's forward takes (transformers 5.2x renamed `past_key_values` to
    `cache` and dropped `cache_position`)."""
    parameters = inspect.signature(model_class.forward).parameters
    return next((name for name in names if name in parameters), None)
