"""Training throughput of the `train` tool against a plain TRL script and a plain PyTorch loop.

    python benchmarks/train_throughput.py            # CPU, embedded model -> benchmarks/results/train_throughput.json
    python benchmarks/train_throughput.py --quick    # a few steps of each (smoke test)
    python benchmarks/train_throughput.py --device cuda --model qwen2.5-0.5b --batch-size 64 --name train_throughput_gpu
    python benchmarks/train_throughput.py --device cuda --model gemma-3-270m --via module \
        --batch-size 16 --max-length 1024 --packing --variants trl,trl_packed,tool --name train_throughput_gemma3_270m_h200

The same supervised fine-tuning (model, data, batch size, learning-rate schedule, precision: fp32 on a CPU, bf16
autocast on a GPU; completion-only loss, padding to the longest sequence of each batch), each run in a fresh
process, the variants interleaved `repeats` times:

- `tool`: the env's `train` tool. `--via env` goes through `gym.make`, `reset` and `step` (the job runs in the
  episode's sandbox, exactly as an agent's would); `--via module` runs `python -m ptb_gym.training CONFIG.json`
  with the config the tool writes, without an env.
- `trl`: a plain script that a TRL user would write: `SFTTrainer` with an `SFTConfig` of the same settings.
- `trl_packed`: the same with TRL's own packing (`packing=True`: rows of `max_length` tokens).
- `torch`: a plain PyTorch loop (AdamW, cosine schedule with warmup, gradient clipping, as `Trainer` does).

The data are the reference recipe's: the train split as prompt/completion records with the arithmetic written
out (what the scripted agent writes). Every variant prints the same metric lines; steady-state throughput is the
non-padding tokens between the first and the last of them over the time between, and startup is the rest of
the process's wall time (interpreter, imports, model load, data preparation, the first steps, saving).

`--packing` packs the tool's examples too (the train tool's `packing=true`). `--model qwen2.5-0.5b` or
`--model gemma-3-270m` is a model of that shape (`common.SHAPES`) with random weights, which train as fast as real
ones; on a GPU the
table adds model FLOPs utilisation against the card's dense bf16 peak: the FLOPs each variant's step needs, 6 x
the matmul parameters per token, the LM head's only on the tokens it is applied to (all of them in TRL, the
loss tokens in the tool's own loop), plus attention over the mean example.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    head_parameters,
    machine,
    make_model,
    matmul_parameters,
    parse_config,
    peak_flops,
    print_table,
    summary,
    train_flops_per_token,
    write_results,
)

METRICS = "PTB_METRICS "
VARIANTS = ("tool", "trl", "trl_packed", "torch")


@dataclass(frozen=True)
class Config:
    """One comparison: the same fine-tuning run three ways."""

    steps: int = 100
    """Optimizer steps of each run."""
    batch_size: int = 16
    learning_rate: float = 1e-3
    max_length: int = 256
    packing: bool = False
    """Pack the tool's examples into rows of `max_length` tokens (`trl_packed` always packs, `trl` never does)."""
    logging_steps: int = 10
    """Steps between metric lines; the steady state is measured from the first to the last."""
    repeats: int = 2
    """Runs of each variant (interleaved); the table shows medians."""
    variants: str = ",".join(VARIANTS)
    device: str = "cpu"
    """`cpu` or `cuda`."""
    model: str = "embedded"
    """`embedded` (the task's base model), a shape of `common.SHAPES` (random weights) or a local checkpoint."""
    via: str = "env"
    """How the tool variant runs: `env` (gym.make/reset/step, in the sandbox) or `module` (python -m ptb_gym.training)."""
    sandbox: str = "auto"
    """The env's sandbox for `--via env`."""
    train_size: int = 5_000
    """Train split items turned into SFT records."""
    model_dir: str = ""
    """Where a random model is written, and reused from if it is there (default: a temporary directory)."""
    name: str = "train_throughput"
    """Name of the results file (benchmarks/results/<name>.json)."""
    results_dir: str = ""


QUICK = {"steps": 4, "logging_steps": 2, "repeats": 1, "train_size": 64}


# ------------------------------------------------------------------------------------------------ the variants


def run_tool_env(config: Config, model_dir: Path, records_path: Path, workdir: Path) -> dict:
    """The train tool through the env: reset, write and run the data script, train, wait."""
    import gymnasium as gym
    from ptb_gym.envs.math.recipes import MAKE_DATA

    import ptb_gym

    gym.register_envs(ptb_gym)
    options = {"device": config.device, "sandbox": config.sandbox, "workdir": str(workdir),
               "train_size": config.train_size, "budget_s": 36_000.0, "dev_size": 8, "test_size": 8}
    if config.model != "embedded":
        options["base_model"] = str(model_dir)
    env = gym.make("PTB/math-v0", **options)
    try:
        env.reset(seed=0)
        step = lambda tool, **arguments: env.step({"tool": tool, "arguments": arguments})
        step("write_file", path="make_data.py", content=MAKE_DATA.format(with_steps=True))
        _, _, _, _, info = step("run", command=f"{shlex.quote(sys.executable)} make_data.py")
        assert info.get("exit_code") == 0, info
        root = Path(env.unwrapped.episode.root)
        assert (root / "data" / "sft.jsonl").read_bytes() == records_path.read_bytes(), "the tool's data differ"
        started = time.perf_counter()
        _, _, _, _, info = step("train", data="data/sft.jsonl", output_dir="final_model", max_steps=config.steps,
                                batch_size=config.batch_size, learning_rate=config.learning_rate,
                                max_length=config.max_length, packing=config.packing)
        job_id = info["job"]["id"]
        while True:
            _, _, _, _, info = step("wait", job_id=job_id, timeout_s=3600)
            if info["job"]["state"] != "running":
                break
        wall = time.perf_counter() - started
        log = (root / info["job"]["log"]).read_text(errors="replace")
        if info["job"]["state"] != "succeeded":
            raise RuntimeError(f"the train job {info['job']['state']}:\n{log[-3000:]}")
        sandbox = env.unwrapped.episode.sandbox.name
    finally:
        env.close()
    return {**_parse(log), "wall_s": wall, "sandbox": sandbox}


def run_tool_module(config: Config, model_dir: Path, records_path: Path, workdir: Path) -> dict:
    """`python -m ptb_gym.training CONFIG.json`, the command the train tool runs, with the config it writes."""
    from ptb_gym.training import TrainConfig

    train = TrainConfig(data=str(records_path), model=str(model_dir), output_dir=str(workdir / "out"),
                        learning_rate=config.learning_rate, max_steps=config.steps, batch_size=config.batch_size,
                        max_length=config.max_length, seed=0, device=config.device, logging_steps=config.logging_steps,
                        packing=config.packing)
    path = workdir / "train.json"
    path.write_text(json.dumps(dataclasses.asdict(train)))
    return _run_process([sys.executable, "-m", "ptb_gym.training", str(path)], workdir)


def run_worker(kind: str, config: Config, model_dir: Path, records_path: Path, workdir: Path) -> dict:
    spec = {"data": str(records_path), "model": str(model_dir), "output_dir": str(workdir / "out"),
            **{k: getattr(config, k) for k in ("steps", "batch_size", "learning_rate", "max_length", "logging_steps",
                                                "device")}}
    path = workdir / f"{kind}.json"
    path.write_text(json.dumps(spec))
    return _run_process([sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(path)], workdir)


def worker_trl_packed(spec: dict) -> None:
    worker_trl({**spec, "packing": True})


def worker_trl(spec: dict) -> None:
    """A plain TRL script: the SFTConfig a user would write for these settings."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    on_gpu = spec["device"] == "cuda"
    records = [json.loads(line) for line in Path(spec["data"]).read_text().splitlines()]
    dataset = Dataset.from_list(records)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    started = time.time()

    class Print(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                print(METRICS + json.dumps({"step": state.global_step, "time_s": time.time() - started,
                                            "num_tokens": logs["num_tokens"], "loss": logs.get("loss")}), flush=True)

    args = SFTConfig(output_dir=spec["output_dir"], max_steps=spec["steps"],
                     per_device_train_batch_size=spec["batch_size"], learning_rate=spec["learning_rate"],
                     lr_scheduler_type="cosine", warmup_steps=max(1, int(0.05 * spec["steps"])),
                     max_length=spec["max_length"], logging_steps=spec["logging_steps"], save_strategy="no",
                     report_to="none", bf16=on_gpu, gradient_checkpointing=False, use_cpu=not on_gpu,
                     disable_tqdm=True, packing=spec.get("packing", False))
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[Print()])
    trainer.train()
    trainer.save_model(spec["output_dir"])


def worker_torch(spec: dict) -> None:
    """A plain PyTorch loop over the same tokenized data, with what `Trainer` does by default."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        get_cosine_schedule_with_warmup,
    )

    device = torch.device(spec["device"])
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = []
    for line in Path(spec["data"]).read_text().splitlines():
        record = json.loads(line)
        prompt_ids = tokenizer(record["prompt"])["input_ids"]
        ids = tokenizer(record["prompt"] + record["completion"] + tokenizer.eos_token)["input_ids"]
        prompt_len = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), len(prompt_ids))
        ids = ids[: spec["max_length"]]
        labels = [-100] * min(prompt_len, len(ids)) + ids[prompt_len:]
        examples.append((ids, labels))
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32).to(device).train()
    steps = spec["steps"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["learning_rate"], weight_decay=0.0, fused=True)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, int(0.05 * steps)), steps)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    generator = torch.Generator().manual_seed(0)
    order: list[int] = []
    tokens = 0
    started = time.time()
    for step in range(1, steps + 1):
        if len(order) < spec["batch_size"]:
            order += torch.randperm(len(examples), generator=generator).tolist()
        batch = [examples[i] for i in order[: spec["batch_size"]]]
        del order[: spec["batch_size"]]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        input_ids, labels, mask = input_ids.to(device), labels.to(device), mask.to(device)
        with autocast:
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        if step % spec["logging_steps"] == 0:
            print(METRICS + json.dumps({"step": step, "time_s": time.time() - started, "num_tokens": tokens,
                                        "loss": loss.item()}), flush=True)
    model.save_pretrained(spec["output_dir"])


# --------------------------------------------------------------------------------------------------- helpers


def _run_process(argv: list[str], workdir: Path) -> dict:
    started = time.perf_counter()
    out = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return {**_parse(out.stdout), "wall_s": wall}


def _parse(log: str) -> dict:
    records = [json.loads(line[len(METRICS):]) for line in log.splitlines() if line.startswith(METRICS)]
    records = [r for r in records if "num_tokens" in r]
    if len(records) < 2:
        raise RuntimeError(f"fewer than two metric lines in the log:\n{log[-3000:]}")
    first, last = records[0], records[-1]
    seconds = last["time_s"] - first["time_s"]
    tokens = last["num_tokens"] - first["num_tokens"]
    head_tokens = last["loss_tokens"] - first["loss_tokens"] if "loss_tokens" in last else tokens
    return {"steady_tokens_per_s": tokens / seconds, "head_token_share": head_tokens / tokens,
            "steady_s_per_step": seconds / (last["step"] - first["step"]),
            "tokens": last["num_tokens"], "steps": last["step"], "final_loss": last.get("loss")}


def make_records(train_size: int, path: Path) -> None:
    """The reference recipe's SFT data, made by the scripted agent's own data script."""
    from ptb_gym.envs import load_task

    task = load_task("math-v0")
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "data").mkdir()
        with open(Path(scratch) / "data" / "train.jsonl", "w") as out:
            out.writelines(json.dumps(r) + "\n" for r in task.records("train", train_size))
        subprocess.run([sys.executable, "-c", task.recipes["reference"].data_script], cwd=scratch, check=True,
                       capture_output=True)
        shutil.copy(Path(scratch) / "data" / "sft.jsonl", path)


def main(config: Config, quick: bool = False) -> dict:
    variants = [v.strip() for v in config.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    info = machine()
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    errors: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="ptb-bench-train-") as scratch:
        scratch_dir = Path(scratch)
        records_path = scratch_dir / "sft.jsonl"
        make_records(config.train_size, records_path)
        model_dir = make_model(config.model, Path(config.model_dir) if config.model_dir else scratch_dir)
        for repeat in range(config.repeats):
            for variant in variants:
                workdir = scratch_dir / f"{variant}-{repeat}"
                workdir.mkdir()
                try:
                    if variant == "tool":
                        tool = run_tool_env if config.via == "env" else run_tool_module
                        run = tool(config, model_dir, records_path, workdir)
                    else:
                        run = run_worker(variant, config, model_dir, records_path, workdir)
                except Exception as error:  # noqa: BLE001 - the other variants still run; the error is recorded
                    errors.setdefault(variant, []).append(f"{type(error).__name__}: {error}"[-4000:])
                    print(f"  {variant:<6} run {repeat + 1} FAILED: {str(error)[-2000:]}", flush=True)
                    continue
                run["startup_s"] = run["wall_s"] - config.steps * run["steady_s_per_step"]
                runs[variant].append(run)
                print(f"  {variant:<6} run {repeat + 1}: {run['steady_tokens_per_s']:,.0f} tokens/s steady, "
                      f"{run['wall_s']:.1f} s wall, {run['startup_s']:.1f} s startup", flush=True)
                shutil.rmtree(workdir, ignore_errors=True)
        _, params, _, _ = matmul_parameters(model_dir)
        head = head_parameters(model_dir)
        body_flops = train_flops_per_token(model_dir, _mean_example(records_path, model_dir, config), 0.0)
        flops_per_token = body_flops + 6 * head

    peak = peak_flops(info, config.device)
    results: dict = {"model": config.model, "parameters": params, "flops_per_token": flops_per_token,
                     "lm_head_parameters": head,
                     "peak_flops": peak, "variants": {}, "errors": errors}
    baseline = statistics.median(r["steady_tokens_per_s"] for r in runs["trl"]) if runs.get("trl") else None
    rows = []
    for variant, measured in runs.items():
        label = f"tool ({config.via})" if variant == "tool" else variant
        if not measured:
            rows.append([label, "failed", None, None, None, None, None])
            continue
        steady = statistics.median(r["steady_tokens_per_s"] for r in measured)
        end_to_end = statistics.median(r["tokens"] / r["wall_s"] for r in measured)
        startup = statistics.median(r["startup_s"] for r in measured)
        step_flops = statistics.median(body_flops + 6 * head * r["head_token_share"] for r in measured)
        entry = {"steady_tokens_per_s": summary([r["steady_tokens_per_s"] for r in measured]),
                 "end_to_end_tokens_per_s": end_to_end, "startup_s": summary([r["startup_s"] for r in measured]),
                 "wall_s": summary([r["wall_s"] for r in measured]), "runs": measured,
                 "ratio_to_trl": steady / baseline if baseline else None,
                 "end_to_end_ratio_to_trl": (end_to_end / statistics.median(r["tokens"] / r["wall_s"]
                                                                             for r in runs["trl"])) if baseline else None,
                 "flops_per_token_executed": step_flops, "mfu": steady * step_flops / peak if peak else None}
        results["variants"][variant] = entry
        rows.append([label, steady, entry["ratio_to_trl"], startup, end_to_end, entry["end_to_end_ratio_to_trl"],
                     None if entry["mfu"] is None else f"{entry['mfu']:.1%}"])
    if runs.get("tool") and baseline:
        results["target"] = {"tool_over_trl_min": 0.95, "met": results["variants"]["tool"]["ratio_to_trl"] >= 0.95}
    where = info.get("gpu", f"{info['cpu_count']} CPU cores") if config.device == "cuda" else \
        f"CPU, {info['cpu_count']} cores, {info.get('torch_threads')} torch threads"
    print_table(f"training throughput: {config.model} ({params / 1e6:.1f}M parameters), {where}, batch "
                f"{config.batch_size}, {config.steps} steps, median of {config.repeats}",
                ["variant", "tokens/s steady", "x trl", "startup s", "tokens/s end-to-end", "x trl", "MFU"], rows)
    path = write_results(config.name, config, results, quick=quick, results_dir=config.results_dir or None,
                         machine_info=info)
    print(f"\nwrote {path}")
    return results


def _mean_example(records_path: Path, model_dir: Path, config: Config) -> float:
    """Mean tokens of an example (what a token attends to, packed or not: packed examples attend to themselves)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    records = [json.loads(line) for line in records_path.read_text().splitlines()]
    lengths = tokenizer([r["prompt"] + r["completion"] for r in records])["input_ids"]
    return statistics.mean(min(len(ids) + 1, config.max_length) for ids in lengths)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        os.chdir(Path(sys.argv[3]).parent)
        {"trl": worker_trl, "trl_packed": worker_trl_packed, "torch": worker_torch}[sys.argv[2]](json.loads(Path(sys.argv[3]).read_text()))
    else:
        main(*parse_config(Config, quick=QUICK, description=__doc__))
