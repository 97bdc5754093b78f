"""Batched greedy generation, fast on a CPU and a GPU: the completions `model.generate(do_sample=False)` gives,
computed in batches. On a CPU, with a shared few-shot prefix and finished rows leaving the batch; on a GPU, with a
static cache and CUDA graphs (`ptb_gym.static_generation`).

Runs in the verifier process (never in the env's own): `benchmarks/eval_throughput.py` measures it against one
`generate` call per item and against batched `model.generate`, and checks that the completions are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

from ptb_gym import static_generation

__all__ = ["encode_prompts", "generate", "render_prompts"]


def render_prompts(tokenizer, prompts: Sequence) -> list[str]:
    """Prompts as text: chat prompts (lists of messages) through the tokenizer's chat template, with the
    generation prompt added; a tokenizer without a template gets a plain `role: content` layout."""
    rendered = []
    for prompt in prompts:
        if isinstance(prompt, str):
            rendered.append(prompt)
        elif getattr(tokenizer, "chat_template", None):
            rendered.append(tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))
        else:
            rendered.append("".join(f"{m['role']}: {m['content']}\n" for m in prompt) + "assistant:")
    return rendered


def encode_prompts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of prompts, with the tokenizer's special tokens, and one BOS where a chat template already wrote
    its own (Gemma's does: its chat prompts began with two, which the model never saw in training)."""
    ids = tokenizer(list(texts))["input_ids"]
    bos = tokenizer.bos_token_id
    return [row[1:] if bos is not None and row[:2] == [bos, bos] else row for row in ids]


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop sequence."""
    cuts = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    return text[: min(cuts)] if cuts else text


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int = 64,
             stop: Sequence[str] = (), progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy completions of `prompts`: for each prompt, the text that `model.generate(do_sample=False)` gives
    for it alone (up to float rounding), computed in batches.

    Where evaluation spends its time (benchmarks/eval_throughput.py measures it): prompts are batched by length,
    so that little compute goes to padding; the token prefix that every prompt shares (the few-shot examples)
    goes through the model once, and the rows attend to its keys and values without each holding a copy (which
    made few-shot generation three times slower than zero-shot); and rows that have written the end-of-sequence
    token leave the batch, so that a batch does not run at full width until its longest completion ends. On a GPU,
    where a step costs its kernel launches more than its arithmetic, `ptb_gym.static_generation` decodes instead.
    """
    import torch

    if not prompts:
        return []
    device = next(model.parameters()).device
    ids = encode_prompts(tokenizer, prompts)
    static = device.type == "cuda" and static_generation.supports(model)  # launch-bound there: see its module
    prefix = [] if static else _shared_prefix(ids)
    end_ids = end_token_ids(tokenizer, stop)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(end_ids, default=0)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    completions: list[str] = [""] * len(prompts)
    with torch.inference_mode(), _cpu_threads(model, device), _prefix_attention(model, prefix, ids[0], device) as shared:
        skip = len(prefix) if shared else 0  # without the shared-prefix attention, every row holds its whole prompt
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            if static:
                new_tokens = static_generation.greedy_batch(model, [ids[i] for i in batch], max_new_tokens, end_ids, pad)
            else:
                new_tokens = _greedy_batch(model, [ids[i][skip:] for i in batch], skip, max_new_tokens, end_ids, pad,
                                           device)
            for i, text in zip(batch, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                completions[i] = text
            if progress:
                progress(len(batch))
    return completions


# A shorter shared prefix is not worth the bookkeeping.
_MIN_SHARED_PREFIX = 16
# Finished rows leave a batch once they are this share of it (each removal copies the rows' cache).
_DROP_FINISHED_SHARE = 0.125
# Models under this many parameters generate on one CPU thread. A second thread made the embedded 2.2M-parameter
# model 1.3 to 1.6 times faster on an idle 2-core machine, but 3 to 18 times slower while other processes used
# the cores (OpenMP's threads spin-wait for each other), the usual case when episodes run side by side.
_SINGLE_THREAD_MAX_PARAMS = 20_000_000
_PREFIX_ATTENTION = "ptb_shared_prefix"


def _shared_prefix(ids: list[list[int]]) -> list[int]:
    """The token prefix common to all prompts, leaving at least one token of each prompt after it."""
    first, shortest = ids[0], min(len(x) for x in ids)
    length = 0
    while length < shortest - 1 and all(x[length] == first[length] for x in ids):
        length += 1
    return first[:length] if length >= _MIN_SHARED_PREFIX else []


def _forward(model, cache, **inputs):
    """The next-token logits of the last position, with `cache` extended in place."""
    return model(**inputs, use_cache=True, logits_to_keep=1, **{_cache_argument(model): cache}).logits[:, -1, :]


def _cache_argument(model) -> str:
    return static_generation.forward_parameter(type(model), "cache", "past_key_values")


def _new_cache(model):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)  # sliding-window layers (Gemma 3, ...) keep only their window
    except TypeError:
        return DynamicCache()


def _prefill(model, prefix: list[int], device):
    import torch

    cache = _new_cache(model)
    _forward(model, cache, input_ids=torch.tensor([prefix], device=device))
    return cache


def end_token_ids(tokenizer, stop: Sequence[str] = ()) -> frozenset[int]:
    """The tokens that end a completion: the tokenizer's eos, and the stop strings that are special tokens (a chat
    turn's end), which decoding would otherwise drop from the text. They come from the trusted tokenizer and the
    harness, never from a submitted checkpoint's generation config."""
    special = set(tokenizer.all_special_tokens)
    ends = {tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(s) for s in stop if s in special)}
    return frozenset(i for i in ends if isinstance(i, int))


def _greedy_batch(model, suffixes: list[list[int]], prefix_len: int, max_new_tokens: int, end_ids: frozenset[int],
                  pad: int, device) -> list[list[int]]:
    """Greedy decoding of one batch of prompts, each a shared prefix of `prefix_len` tokens (held by the attention
    modules, see `_prefix_attention`; none if 0) and then its suffix. Returns each row's new tokens up to and
    including the end token, as `model.generate` writes them."""
    import torch

    rows, width = len(suffixes), max(len(s) for s in suffixes)
    # Each suffix is padded on the left (after the prefix): the attention mask hides the pads and the positions
    # skip them, so that every row sees exactly its own prompt.
    input_ids = torch.full((rows, width), pad, dtype=torch.long)
    row_mask = torch.zeros((rows, width), dtype=torch.long)
    for row, suffix in enumerate(suffixes):
        input_ids[row, width - len(suffix):] = torch.tensor(suffix)
        row_mask[row, width - len(suffix):] = 1
    position_ids = (prefix_len + row_mask.cumsum(-1) - 1).clamp(min=0).to(device)
    input_ids, row_mask = input_ids.to(device), row_mask.to(device)
    cache = _new_cache(model)  # the rows' own tokens (the prefix's keys and values are the attention modules')
    # The shared-prefix attention takes the rows' part of the mask (every query sees the whole prefix). SDPA takes
    # the same boolean mask, which saves the model building it at every step (12% of generation on a CPU).
    own_mask = prefix_len > 0 or (model.config._attn_implementation == "sdpa" and _full_attention(model.config))

    def mask(query_len: int):
        return _causal_row_mask(row_mask, query_len) if own_mask else row_mask

    generated: list[list[int]] = [[] for _ in range(rows)]
    active = list(range(rows))  # the rows still in the batch, as indices into `generated`
    done = [False] * rows  # per row of the batch: has it written the end-of-sequence token?
    next_position = position_ids[:, -1:] + 1
    for step in range(max_new_tokens):
        next_tokens = _forward(model, cache, input_ids=input_ids, attention_mask=mask(input_ids.shape[1]),
                               position_ids=position_ids).argmax(dim=-1)
        for slot, token in enumerate(next_tokens.tolist()):
            if not done[slot]:
                generated[active[slot]].append(token)
                done[slot] = token in end_ids
        if all(done) or step + 1 == max_new_tokens:
            break
        if sum(done) >= _DROP_FINISHED_SHARE * len(done):
            slots = [slot for slot, finished in enumerate(done) if not finished]
            keep = torch.tensor(slots, device=device)
            cache.batch_select_indices(keep)
            active, done = [active[slot] for slot in slots], [False] * len(slots)
            row_mask, next_tokens, next_position = row_mask[keep], next_tokens[keep], next_position[keep]
        row_mask = torch.cat([row_mask, row_mask.new_ones((len(active), 1))], dim=1)
        input_ids, position_ids, next_position = next_tokens[:, None], next_position, next_position + 1
    return generated


def _causal_row_mask(row_mask, query_len: int):
    """[rows, 1, queries, keys] booleans: the last `query_len` tokens see the earlier ones, pads hidden."""
    import torch

    keys = row_mask.shape[1]
    query_positions = torch.arange(keys - query_len, keys, device=row_mask.device)
    causal = torch.arange(keys, device=row_mask.device)[None, :] <= query_positions[:, None]
    return row_mask.bool()[:, None, None, :] & causal[None, None]


@contextmanager
def _prefix_attention(model, prefix: list[int], first_prompt: list[int], device):
    """Give the attention modules the shared prefix's keys and values, and switch the model to an attention
    that reads them once for all rows (`_shared_prefix_attention`). Yields whether it did: it does not for a
    model whose attention it cannot stand in for (sliding windows, soft-capping, other kernels), nor when the
    first prompt's next-token logits differ from those of the model's own attention."""
    import torch

    modules = _attention_modules(model) if prefix else []
    if not modules:
        yield False
        return
    from transformers import AttentionInterface

    AttentionInterface.register(_PREFIX_ATTENTION, _shared_prefix_attention)
    prefix_cache = _prefill(model, prefix, device)
    for module in modules:
        layer = prefix_cache.layers[module.layer_idx]
        module._ptb_prefix_kv = (layer.keys, layer.values)
    config = model.config
    saved = config._attn_implementation
    try:
        expected = _forward(model, _new_cache(model), input_ids=torch.tensor([first_prompt], device=device))
        config._attn_implementation = _PREFIX_ATTENTION
        suffix = torch.tensor([first_prompt[len(prefix):]], device=device)
        got = _forward(model, _new_cache(model), input_ids=suffix,
                       attention_mask=_causal_row_mask(torch.ones_like(suffix), suffix.shape[1]),
                       position_ids=torch.arange(len(prefix), len(first_prompt), device=device)[None])
        tolerance = 1e-3 if got.dtype == torch.float32 else 5e-2
        shared = bool((got - expected).abs().max() <= tolerance * max(1.0, float(expected.abs().max())))
    except Exception:  # noqa: BLE001 - an attention module it cannot stand in for: the model's own attention then
        shared = False
    config._attn_implementation = _PREFIX_ATTENTION if shared else saved
    try:
        yield shared
    finally:
        config._attn_implementation = saved
        for module in modules:
            del module._ptb_prefix_kv


def _attention_modules(model) -> list:
    """The model's attention modules, if its attention is plain full attention that `_shared_prefix_attention`
    computes the same way; otherwise an empty list."""
    config = model.config
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager") or not _full_attention(config):
        return []
    if getattr(config, "attn_logit_softcapping", None) is not None:
        return []
    modules = [m for m in model.modules() if type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx")]
    return modules if len(modules) == getattr(config, "num_hidden_layers", -1) else []


def _full_attention(config) -> bool:
    """Whether every layer attends to all earlier tokens (no sliding windows, whose caches keep only the window)."""
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or []):
        return False
    return getattr(config, "sliding_window", None) is None or not getattr(config, "use_sliding_window", True)


def _shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention of the rows' queries over the shared prefix's keys (one copy for all rows, attached to the
    module) and over their own keys (`key`, `value`, masked by the boolean `attention_mask`)."""
    import torch

    prefix_key, prefix_value = module._ptb_prefix_kv  # [1, kv heads, prefix, dim]
    rows, heads, queries, dim = query.shape
    kv_heads, prefix_len = key.shape[1], prefix_key.shape[2]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # The prefix part as one product per kv head, with every row's queries stacked: the prefix is read once.
    grouped = query.reshape(rows, kv_heads, groups, queries, dim)
    stacked = grouped.permute(1, 0, 2, 3, 4).reshape(kv_heads, rows * groups * queries, dim)
    prefix_scores = torch.bmm(stacked, prefix_key[0].transpose(1, 2))
    prefix_scores = prefix_scores.view(kv_heads, rows, groups, queries, prefix_len).permute(1, 0, 2, 3, 4)
    own_scores = torch.matmul(grouped, key[:, :, None].transpose(-1, -2))
    own_scores = own_scores.masked_fill(~attention_mask[:, :, None], float("-inf"))
    weights = (torch.cat([prefix_scores, own_scores], dim=-1).float() * scale).softmax(dim=-1).to(query.dtype)
    prefix_weights = weights[..., :prefix_len].permute(1, 0, 2, 3, 4).reshape(kv_heads, -1, prefix_len)
    prefix_out = torch.bmm(prefix_weights, prefix_value[0]).view(kv_heads, rows, groups, queries, dim)
    out = prefix_out.permute(1, 0, 2, 3, 4) + torch.matmul(weights[..., prefix_len:], value[:, :, None])
    return out.reshape(rows, heads, queries, dim).transpose(1, 2).contiguous(), None


@contextmanager
def _cpu_threads(model, device):
    """One torch thread while a small model runs on the CPU (see _SINGLE_THREAD_MAX_PARAMS); restored after."""
    import torch

    if device.type != "cpu" or sum(p.numel() for p in model.parameters()) >= _SINGLE_THREAD_MAX_PARAMS:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
