"""Throughput of the final evaluation against one `model.generate` call per item.

    python benchmarks/eval_throughput.py             # CPU, embedded model -> benchmarks/results/eval_throughput.json
    python benchmarks/eval_throughput.py --quick     # a few items (smoke test)
    python benchmarks/eval_throughput.py --device cuda --model qwen2.5-0.5b --name eval_throughput_gpu
    python benchmarks/eval_throughput.py --device cuda --model ~/.cache/ptb-gym/models/gemma-3-270m --task gsm8k-v0 \
        --items 100 --baseline-items 8 --hf-batched-items 100 --name eval_throughput_gemma3_270m_h200

The final evaluation is `ptb_gym.evaluation.evaluate_model` on the hidden test split under every harness of the
task, as the verifier runs it (two generation passes for the math task: zero-shot, shared by two harnesses,
and few-shot). It is compared, on the same model and items, with:

- `per item`: the same evaluation with one `model.generate` call per item and prompt (what a first harness
  does), timed on the first `baseline_items` items;
- `hf batched`: the same with `model.generate` on length-sorted batches of `batch_size` prompts (the previous
  implementation of `generate`), on the first `hf_batched_items` items.

Throughput is items per second, an item being scored under all harnesses. All variants use the same torch
thread count (`generate` runs small models on one CPU thread), and their completions are compared: they must be
the same texts (greedy decoding). The default model is the base model, which never stops before `max_new_tokens`
(the most work per item); `--checkpoint DIR` evaluates a fine-tuned one (e.g. a `final_model/` of an episode
kept with `-o keep_workspace=true`), whose completions end earlier.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    machine,
    make_model,
    matmul_parameters,
    parse_config,
    peak_flops,
    print_table,
    summary,
    write_results,
)


@dataclass(frozen=True)
class Config:
    """The items and model to evaluate."""

    items: int = 1_000
    """Test items of the final evaluation (the math task's test split has 1,000)."""
    baseline_items: int = 100
    """Items evaluated with one generate call per item and prompt."""
    hf_batched_items: int = 200
    """Items evaluated with batched `model.generate` (0: skip)."""
    repeats: int = 2
    """Timings of the final evaluation (the table shows the median)."""
    batch_size: int = 0
    """Prompts per batch (the env's `eval_batch_size`; 0: its default, 64 on a CPU and 256 on a GPU)."""
    task: str = "math-v0"
    """The task whose test items and harnesses are evaluated (`gsm8k-v0`: real GSM8K, chain-of-thought answers)."""
    dtype: str = "auto"
    """`auto` (the verifier's: bf16 on a GPU, fp32 on a CPU), `float32` or `bfloat16`."""
    device: str = "cpu"
    model: str = "embedded"
    """`embedded`, a shape of `common.SHAPES` (random weights) or a local checkpoint directory."""
    threads: int = 0
    """CPU threads for every variant; 0: what `generate` picks (one for models under 20M parameters)."""
    checkpoint: str = ""
    """A fine-tuned checkpoint of the model to evaluate instead of the model itself (full weights or an adapter)."""
    model_dir: str = ""
    """Where a random model is written, and reused from if it is there (default: a temporary directory)."""
    name: str = "eval_throughput"
    results_dir: str = ""


QUICK = {"items": 6, "baseline_items": 2, "hf_batched_items": 4, "repeats": 1}


def per_item_generate(model, tokenizer, prompts, *, max_new_tokens, batch_size=1, progress=None, stop=()):
    """One `model.generate` call per prompt: the naive evaluation loop (to the full length: the evaluation cuts
    completions at `stop` afterwards)."""
    return hf_generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=1, stop=stop)


def hf_generate(model, tokenizer, prompts, *, max_new_tokens, batch_size=64, progress=None, stop=()):
    """`model.generate` on length-sorted, left-padded batches, ending where the final evaluation ends (its end
    tokens; text after a stop sequence is cut by the harness)."""
    import torch
    from ptb_gym.generation import encode_prompts, end_token_ids

    ends = sorted(end_token_ids(tokenizer, stop))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    completions = [""] * len(prompts)
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids = encode_prompts(tokenizer, [prompts[i] for i in batch])
            inputs = tokenizer.pad({"input_ids": ids}, return_tensors="pt", padding_side="left").to(device)
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id, eos_token_id=ends)
            texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(batch, texts):
                completions[i] = text
    return completions


def timed_evaluation(model, tokenizer, task, items, batch_size, generate_fn=None):
    """evaluate_model on `items`, with `generate_fn` in place of ptb_gym's generate; returns seconds, the
    completions per prompt group and the generated-token and prompt-token counts."""
    from ptb_gym import evaluation, generation
    from ptb_gym.generation import encode_prompts

    real = generation.generate
    captured: list[tuple[list[str], list[str]]] = []

    def recording(model_, tokenizer_, prompts, **kwargs):
        texts = (generate_fn or real)(model_, tokenizer_, prompts, **kwargs)
        captured.append((list(prompts), texts))
        return texts

    generation.generate = recording
    try:
        _sync(model)
        started = time.perf_counter()
        evaluation.evaluate_model(model, tokenizer, task, items, batch_size=batch_size)
        _sync(model)
        seconds = time.perf_counter() - started
    finally:
        generation.generate = real
    prompt_tokens = sum(len(ids) for prompts, _ in captured for ids in encode_prompts(tokenizer, prompts))
    new_tokens = sum(len(ids) for _, texts in captured for ids in tokenizer(texts)["input_ids"])
    return seconds, [texts for _, texts in captured], prompt_tokens, new_tokens


def _sync(model) -> None:
    import torch

    if next(model.parameters()).device.type == "cuda":
        torch.cuda.synchronize()


def main(config: Config, quick: bool = False) -> dict:
    import torch
    from ptb_gym.envs import load_task

    from ptb_gym import generation
    from ptb_gym.checkpoints import load_model, load_tokenizer
    from ptb_gym.generation import _cpu_threads

    if config.threads:
        torch.set_num_threads(config.threads)
        generation._SINGLE_THREAD_MAX_PARAMS = 0  # keep that thread count inside generate too
    info = machine()
    task = load_task(config.task)
    with tempfile.TemporaryDirectory(prefix="ptb-bench-eval-") as scratch:
        base_dir = make_model(config.model, Path(config.model_dir or scratch))
        model = load_model(Path(config.checkpoint or base_dir), base_dir, config.device)
        dtype = config.dtype if config.dtype != "auto" else "bfloat16" if config.device == "cuda" else "float32"
        model.to(getattr(torch, dtype))
        matmul, params, _, _ = matmul_parameters(base_dir)
        tokenizer = load_tokenizer(base_dir)
    items = task.records("test", config.items)
    batch_size = config.batch_size or (256 if config.device == "cuda" else 64)
    device = next(model.parameters()).device

    with _cpu_threads(model, device):
        threads = torch.get_num_threads()
    if config.device == "cuda":  # CUDA's start (kernels loaded, workspaces allocated) is not the evaluation's
        timed_evaluation(model, tokenizer, task, items[:2], batch_size)
    evaluate_model_runs = []
    for _ in range(config.repeats):
        seconds, final_texts, prompt_tokens, new_tokens = timed_evaluation(model, tokenizer, task, items,
                                                                           batch_size)
        evaluate_model_runs.append(seconds)
    final_seconds = statistics.median(evaluate_model_runs)

    variants = {"final evaluation": {"items": len(items), "seconds": summary(evaluate_model_runs),
                                     "items_per_s": len(items) / final_seconds,
                                     "generated_tokens": new_tokens, "prompt_tokens": prompt_tokens,
                                     "generated_tokens_per_s": new_tokens / final_seconds}}
    baselines = [("per item", per_item_generate, config.baseline_items),
                 ("hf batched", hf_generate, config.hf_batched_items)]
    for name, function, n in baselines:
        if n <= 0:
            continue
        with _cpu_threads(model, device):  # the thread count generate uses, so that only the method differs
            seconds, texts, _, generated = timed_evaluation(model, tokenizer, task, items[:n], batch_size, function)
        same = sum(a == b for group, ref in zip(texts, final_texts) for a, b in zip(group, ref[:n]))
        total = sum(len(group) for group in texts)
        variants[name] = {"items": n, "seconds": seconds, "items_per_s": n / seconds,
                          "generated_tokens_per_s": generated / seconds, "same_completions": f"{same}/{total}"}

    peak = peak_flops(info, config.device)
    final = variants["final evaluation"]
    # Inference FLOPs: 2 x matmul parameters per token that goes through the model (attention left out).
    final["mfu"] = (2 * matmul * (prompt_tokens + new_tokens) / final_seconds / peak) if peak else None
    baseline = variants.get("per item", {}).get("items_per_s")
    results = {"model": config.model, "checkpoint": config.checkpoint or None, "parameters": params,
               "torch_threads": threads, "dtype": str(next(model.parameters()).dtype), "variants": variants,
               "speedup_over_per_item": final["items_per_s"] / baseline if baseline else None}
    if baseline and config.device == "cpu":
        results["target"] = {"speedup_min": 10.0, "met": results["speedup_over_per_item"] >= 10.0}
    rows = [[name, v["items"], v["items_per_s"], v["generated_tokens_per_s"],
             final["items_per_s"] / v["items_per_s"] if name != "final evaluation" else 1.0,
             v.get("same_completions", "-"),
             None if v.get("mfu") is None else f"{v['mfu']:.2%}"] for name, v in variants.items()]
    where = info.get("gpu", "GPU") if config.device == "cuda" else f"CPU, {info['cpu_count']} cores, {threads} thread(s)"
    print_table(f"evaluation throughput: {config.model}{' ' + config.checkpoint if config.checkpoint else ''} "
                f"({params / 1e6:.1f}M parameters, {results['dtype']}), {where}, {len(task.harnesses)} harnesses",
                ["variant", "items", "items/s", "generated tokens/s", "final is x faster", "same completions", "MFU"], rows)
    path = write_results(config.name, config, results, quick=quick, results_dir=config.results_dir or None,
                         machine_info=info)
    print(f"\nwrote {path}")
    return results


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
