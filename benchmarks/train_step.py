"""Where a step of the `train` tool's own loop goes on a GPU: step time per attention variant, and the top kernels.

    python benchmarks/train_step.py --model gemma-3-270m --name train_step_gemma3_270m   # on a GPU
    python benchmarks/train_step.py --quick       # the embedded model on a CPU (smoke test)

Runs `ptb_gym.training.train_loop` in this process, as the train tool's job does, on the reference recipe's data
packed into `batch_size` rows of `max_length` tokens (the data of `train_throughput.py`), once per variant:

- `packed`: flash attention over the packed sequences (`ptb_gym.packed_attention`), eager;
- `masked`: the same through SDPA with the block-diagonal masks that transformers builds from the position ids;
- `compiled`: the loop as the train tool runs it on a GPU: `packed` with torch.compile of the decoder layers and
  of the head's loss (the train config's `compile`).

A step's time is the median over the spans between the loop's metric lines after the first `warmup` steps (a line
every `log_every` steps: each waits for the GPU, as the train tool's one line per 10 steps does); the time to the
first line (a compilation's, where there is one) is reported beside it, and MFU: real tokens/s (padding apart) times
`common.train_flops_per_token`, the LM head counted only on the tokens that take a loss, against the GPU's bf16
peak. With `--profile` a second, short run of each variant goes under torch.profiler, and its kernel table (by
GPU time) is written to `results/<name>_<variant>_profile.txt`: what to fuse next.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from common import (RESULTS_DIR, machine, make_model, parse_config, peak_flops, print_table, train_flops_per_token,
                    write_results)
from train_throughput import make_records

QUICK = {"model": "embedded", "device": "cpu", "batch_size": 4, "max_length": 128, "steps": 5, "warmup": 1,
         "train_size": 200}


@dataclass
class Config:
    model: str = "gemma-3-270m"
    """A shape of `common.SHAPES` (random weights) or a local checkpoint directory."""
    model_dir: str = ""
    """Where a random model is written, and reused from if it is there (default: a temporary directory)."""
    device: str = "cuda"
    batch_size: int = 16
    max_length: int = 1024
    steps: int = 48
    warmup: int = 8
    """Steps before the timed ones. The compiled variant recompiles for new shapes now and then until about step 24
    (those spans run 10-15% slower): the median over 40 steps is the steady state, over 16 it was not."""
    log_every: int = 4
    """Steps between the loop's metric lines: each line waits for the GPU (the train tool writes one per 10)."""
    variants: str = "packed,masked,compiled"
    profile: bool = True
    train_size: int = 5000
    name: str = "train_step"
    results_dir: str = ""


def run_variant(variant: str, model_dir: Path, examples: dict, pad_id: int, config: Config, steps: int) -> list[dict]:
    """The loop's metric lines (time, tokens and loss tokens so far, per step) for `steps` steps of `variant`."""
    import torch
    from transformers import AutoModelForCausalLM

    from ptb_gym import packed_attention, training

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    train_config = training.TrainConfig(data="", model=str(model_dir), max_steps=steps, batch_size=config.batch_size,
                                        max_length=config.max_length, packing=True,
                                        logging_steps=config.log_every,
                                        learning_rate=2e-5, device=config.device, compile=variant == "compiled")
    attention = contextlib.nullcontext() if variant == "packed" else mock.patch.object(
        packed_attention, "supports", lambda *args: False)
    log = io.StringIO()
    with attention, contextlib.redirect_stdout(log):
        training.train_loop(model, examples, train_config, config.device, pad_id)
    metrics = [json.loads(line[len(training.METRICS_PREFIX):]) for line in log.getvalue().splitlines()
               if line.startswith(training.METRICS_PREFIX)]
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return [m for m in metrics if "num_tokens" in m]


def main(config: Config, quick: bool = False) -> dict:
    import torch
    from transformers import AutoTokenizer

    from ptb_gym import training

    results_dir = Path(config.results_dir) if config.results_dir else RESULTS_DIR
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = make_model(config.model, Path(config.model_dir or scratch))
        records_path = Path(scratch) / "sft.jsonl"
        make_records(config.train_size, records_path)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        records = [json.loads(line) for line in records_path.read_text().splitlines()]
        examples = training.tokenize(records, tokenizer, config.max_length)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        mean_example = statistics.mean(len(ids) for ids in examples["input_ids"])
        peak = peak_flops(machine(), config.device)
        results, rows = {"model": config.model, "peak_flops": peak, "variants": {}}, []
        for variant in config.variants.split(","):
            metrics = run_variant(variant, model_dir, examples, pad_id, config, config.steps)
            times = [m["time_s"] for m in metrics]
            timed = [m for m in metrics if m["step"] > config.warmup]
            gaps = [(b["time_s"] - a["time_s"]) / (b["step"] - a["step"]) for a, b in zip(timed, timed[1:])]
            step_s = statistics.median(gaps)
            # Real tokens (padding apart) and the share that takes a loss, over the steps after the warmup.
            start, end = timed[0], timed[-1]
            tokens_per_step = (end["num_tokens"] - start["num_tokens"]) / (end["step"] - start["step"])
            head_share = (end["loss_tokens"] - start["loss_tokens"]) / (end["num_tokens"] - start["num_tokens"])
            flops = train_flops_per_token(model_dir, mean_example, head_share)
            mfu = tokens_per_step * flops / step_s / peak if peak else None
            results["variants"][variant] = {
                "step_s": step_s, "slots_per_s": config.batch_size * config.max_length / step_s,
                "tokens_per_s": tokens_per_step / step_s, "head_token_share": head_share,
                "flops_per_token": flops, "mfu": mfu, "first_line_s": times[0], "gaps_s": gaps}
            rows.append((variant, f"{times[0]:.1f} s", f"{step_s * 1000:.1f} ms", f"{tokens_per_step / step_s:,.0f}",
                         "" if mfu is None else f"{mfu:.1%}"))
            if config.profile:
                on_gpu = config.device == "cuda"
                activities = [torch.profiler.ProfilerActivity.CPU] + [torch.profiler.ProfilerActivity.CUDA] * on_gpu
                with torch.profiler.profile(activities=activities) as profiler:
                    run_variant(variant, model_dir, examples, pad_id, config, 4)
                table = profiler.key_averages().table(sort_by="cuda_time_total" if on_gpu else "cpu_time_total",
                                                      row_limit=30, max_name_column_width=70)
                results_dir.mkdir(parents=True, exist_ok=True)
                (results_dir / f"{config.name}_{variant}_profile.txt").write_text(table + "\n")
    first = next(iter(results["variants"].values()))["step_s"]
    for variant in results["variants"].values():
        variant["speed_vs_first"] = first / variant["step_s"]
    print_table(f"train_loop steps of {config.batch_size} x {config.max_length} packed tokens ({config.model})",
                ["variant", "first line", "median step", "tokens/s", "MFU", "speed vs first"],
                [(*row, f"{v['speed_vs_first']:.2f}x") for row, v in zip(rows, results["variants"].values())])
    print(f"\nwrote {write_results(config.name, config, results, quick=quick, results_dir=config.results_dir or None)}")
    return results


if __name__ == "__main__":
    main(*parse_config(Config, quick=QUICK, description=__doc__))
