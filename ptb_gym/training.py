"""The bundled training recipe behind the `train` tool: supervised fine-tuning, full or LoRA.

Run as a background job inside the sandbox::

    python -m ptb_gym.training run_config.json

It prints `PTB_METRICS {...}` lines (step, loss, learning rate, ...) that the env parses into the loss
curve, and saves the model with safetensors to `output_dir`. Two engines, one recipe (AdamW, cosine schedule
with warmup, gradient clipping at 1, loss on the completion tokens):

- `train_loop`, ptb-gym's own, for full fine-tuning on a GPU or with `packing`: bf16 autocast, fused AdamW,
  examples packed into rows of `max_length` tokens, each attending only to itself (on a GPU through flash
  attention over variable-length sequences, `ptb_gym.packed_attention`; elsewhere SDPA, which transformers
  masks from the position ids), and the LM head applied only where a loss is taken, with
  its cross-entropy in one chunked pass (`ptb_gym.linear_cross_entropy`: Gemma's 262k-token vocabulary made
  the logits most of a step's time and memory), the decoder's layers and that loss compiled on a GPU;
- TRL's SFTTrainer for LoRA and the CPU: TRL's `SFTConfig` defaults (bf16, gradient checkpointing) made a
  3.4M-parameter model's CPU fine-tuning 12 times slower, so on a CPU both are off.

`benchmarks/train_throughput.py` measures both against a plain TRL script.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptb_gym.generation import encode_prompts, render_prompts
from ptb_gym.records import METRICS_PREFIX, RecordError, parse_jsonl

JOB_STARTED = time.monotonic()  # before the heavy imports, which count against the time limit too


@dataclass(frozen=True)
class TrainConfig:
    """One supervised fine-tuning run."""

    data: str
    """JSONL file with `prompt`/`completion` records (loss on the completion only), `text` or `messages` records."""
    model: str = "base_model"
    """Checkpoint to start from (the base model, or an earlier output of this tool)."""
    output_dir: str = "checkpoints/sft"
    """Where the trained model (or LoRA adapter) is saved, with safetensors."""
    lora: bool = False
    """Train a LoRA adapter (PEFT) instead of all weights."""
    lora_rank: int = 16
    """LoRA rank; alpha is twice the rank."""
    learning_rate: float = 1e-3
    max_steps: int = 300
    batch_size: int = 16
    max_length: int = 256
    """Longest tokenized example; longer ones are truncated."""
    warmup_ratio: float = 0.05
    seed: int = 0
    device: str = "auto"
    """`auto` (CUDA when available), `cpu` or `cuda`."""
    time_limit_s: float | None = None
    """Stop early and save once this many seconds have passed since the job started (the train tool sets it
    from the budget left, so that a model is saved before the budget runs out)."""
    cpu_time_limit_s: float | None = None
    """The same in CPU-seconds of the job's process, all its threads (set under a `cpu` budget)."""
    logging_steps: int = 10
    """Steps between loss records (fewer for short runs, so that every run has a loss curve)."""
    packing: bool = False
    """Pack examples into rows of `max_length` tokens, `batch_size` rows a step (many examples each); otherwise a
    step is `batch_size` examples padded to the longest."""
    compile: bool = True
    """On a GPU, compile the decoder's layers and the head's loss with torch.compile (the own loop only): a
    Gemma-3-270M step of 16 x 1,024 tokens took 100 ms instead of 190 on an H100, after 13 s of compilation
    (`benchmarks/train_step.py`), which 150 steps repay."""

    @property
    def log_every(self) -> int:
        """Steps between metric lines: `logging_steps`, or fewer where the run has under five records of them."""
        return max(1, min(self.logging_steps, self.max_steps // 5))


def load_records(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            return parse_jsonl(lines, str(path))
    except RecordError as error:
        sys.exit(f"error: {error} Write such records with write_data.")


def tokenize(records: list[dict[str, Any]], tokenizer, max_length: int) -> dict[str, list] | None:
    """`input_ids` and `labels` (-100 where no loss is taken) of plain-text records, in two batched tokenizer
    calls: TRL's own preparation (five passes of `Dataset.map`, one example at a time) took 2 to 5 s of the job's
    start for 5,000 records on 2 cores (benchmarks/train_throughput.py). As TRL does, EOS ends every completion
    (or text), sequences keep their first `max_length` tokens, and records left without a loss token are dropped.

    Unlike TRL, a prompt and its completion are tokenized apart and joined: the model trains on the prompt's
    tokens exactly as an evaluation gives them. TRL tokenizes the whole record, and where a merge crosses the
    boundary (a code prompt's last newline and the body's indentation become one token) the model never sees the
    prompt's own last token and fails on every evaluation prompt. Chat records (messages) ending with the
    assistant become such pairs (`chat_as_prompt_completion`); None where they cannot, which TRL then prepares."""
    eos = tokenizer.eos_token
    with_eos = lambda text: text if text.endswith(eos) else text + eos
    if "messages" in records[0]:
        records = chat_as_prompt_completion(records, tokenizer)
        if records is None:
            return None
    if "prompt" in records[0]:
        if not all(isinstance(r["prompt"], str) and isinstance(r["completion"], str) for r in records):
            return None
        prompt_ids = encode_prompts(tokenizer, [r["prompt"] for r in records])
        loss_ids = tokenizer([with_eos(r["completion"]) for r in records], add_special_tokens=False)["input_ids"]
    elif "text" in records[0]:
        if not all(isinstance(r["text"], str) for r in records):
            return None
        loss_ids = tokenizer([with_eos(r["text"]) for r in records])["input_ids"]
        prompt_ids = [[] for _ in loss_ids]
    else:
        return None
    prepared: dict[str, list] = {"input_ids": [], "labels": []}
    for prompt, completion in zip(prompt_ids, loss_ids):
        ids, labels = prompt + completion, [-100] * len(prompt) + completion
        if any(label != -100 for label in labels[:max_length]):
            prepared["input_ids"].append(ids[:max_length])
            prepared["labels"].append(labels[:max_length])
    return prepared


def chat_as_prompt_completion(records: list[dict[str, Any]], tokenizer) -> list[dict[str, str]] | None:
    """Chat records as prompt/completion text: the prompt is the conversation before its last turn as a chat
    evaluation renders it (the template's generation prompt added), the completion what the template writes for
    that last assistant turn (Gemma's ends it with `<end_of_turn>`, the chat harnesses' stop). The loss is on that
    turn only, as TRL takes it on a conversational prompt/completion record. None unless every record ends with
    the assistant and the template writes the conversation as that prompt followed by the turn."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    conversations = [record["messages"] for record in records]
    if any(len(messages) < 2 or messages[-1].get("role") != "assistant" for messages in conversations):
        return None
    pairs = []
    for messages, prompt in zip(conversations, render_prompts(tokenizer, [m[:-1] for m in conversations])):
        whole = tokenizer.apply_chat_template(messages, tokenize=False)
        if not whole.startswith(prompt) or len(whole) == len(prompt):
            return None
        pairs.append({"prompt": prompt, "completion": whole[len(prompt):]})
    return pairs


def main(config: TrainConfig) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device == "cuda"
    records = load_records(Path(config.data))
    columns = next(c for c in (["prompt", "completion"], ["messages"], ["text"]) if c[0] in records[0])

    tokenizer = AutoTokenizer.from_pretrained(config.model, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prepared = tokenize(records, tokenizer, config.max_length)
    model = AutoModelForCausalLM.from_pretrained(config.model, trust_remote_code=False, dtype=torch.float32)
    unbiased_head = getattr(model.get_output_embeddings(), "bias", None) is None  # what linear_cross_entropy takes
    if prepared and not config.lora and unbiased_head and (on_gpu or config.packing):
        steps = train_loop(model, prepared, config, device, tokenizer.pad_token_id)
        model.save_pretrained(config.output_dir)
        tokenizer.save_pretrained(config.output_dir)
        print(f"saved model to {config.output_dir} after {steps} steps", flush=True)
        return
    if config.packing:
        sys.exit("error: packing needs full fine-tuning (lora=false) of prompt/completion, text or chat records "
                 "(ending with the assistant's turn), and a model whose LM head has no bias")
    import datasets  # TRL's path only: with datasets, 3.3 s of imports that the own loop does not need
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    dataset = Dataset.from_dict(prepared) if prepared else \
        Dataset.from_list([{column: record[column] for column in columns} for record in records])

    peft_config = None
    if config.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")

    class StopInTime(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if _time_is_up(config, state.global_step):
                control.should_training_stop = True

    class PrintMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                record = {"step": state.global_step, "max_steps": state.max_steps, "time_s": round(time.time() - started, 2)}
                record.update({k: round(v, 6) if isinstance(v, float) else v for k, v in logs.items()})
                print(METRICS_PREFIX + json.dumps(record), flush=True)

    args = SFTConfig(
        output_dir=config.output_dir,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, int(config.warmup_ratio * config.max_steps)),
        max_length=config.max_length,
        logging_steps=config.log_every,
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False,
        use_cpu=not on_gpu,
        dataloader_num_workers=0,
        disable_tqdm=True,
        dataset_kwargs={"skip_prepare_dataset": True} if prepared else None,
    )
    started = time.time()
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[PrintMetrics(), StopInTime()])
    trainer.remove_callback(PrinterCallback)  # its dict prints would repeat every PTB_METRICS line in the log
    trainer.train()
    trainer.save_model(config.output_dir)
    # Trainer pickles its arguments next to the weights; a checkpoint must hold no pickle (it is refused).
    (Path(config.output_dir) / "training_args.bin").unlink(missing_ok=True)
    print(f"saved {'LoRA adapter' if config.lora else 'model'} to {config.output_dir} "
          f"after {trainer.state.global_step} steps in {time.time() - started:.1f} s", flush=True)


def pack(examples: dict[str, list], row_length: int, packing: bool, seed: int) -> list[tuple[list, list, list]]:
    """Rows of (input ids, labels, position ids) from tokenized examples in a seeded order: with `packing`, as
    many consecutive examples as fit in `row_length` tokens (an example's position ids start at 0, which tells
    transformers where one ends), otherwise one example a row."""
    import random

    order = list(range(len(examples["input_ids"])))
    random.Random(seed).shuffle(order)
    rows: list[tuple[list, list, list]] = []
    for i in order:
        ids, labels = examples["input_ids"][i], examples["labels"][i]
        if not (packing and rows and len(rows[-1][0]) + len(ids) <= row_length):
            rows.append(([], [], []))
        rows[-1][0].extend(ids)
        rows[-1][1].extend(labels)
        rows[-1][2].extend(range(len(ids)))
    return rows


def train_loop(model, examples: dict[str, list], config: TrainConfig, device: str, pad_id: int) -> int:
    """Full fine-tuning of `model` on tokenized examples (see the module's docstring); returns the steps taken."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from ptb_gym import packed_attention
    from ptb_gym.linear_cross_entropy import linear_cross_entropy

    torch.manual_seed(config.seed)
    model.to(device).train()
    model.config.use_cache = False
    decoder, head = getattr(model, model.base_model_prefix), model.get_output_embeddings()
    bounds = lambda positions: {}
    if packed_attention.supports(model, device):
        model.set_attn_implementation(packed_attention.register())
        bounds = packed_attention.sequence_bounds
    softcap = getattr(model.config, "final_logit_softcapping", None)
    rows = pack(examples, config.max_length, config.packing, config.seed)
    on_gpu = device == "cuda"
    compiled = config.compile and on_gpu
    if compiled:
        _compile_layers(decoder)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0, fused=on_gpu)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, int(config.warmup_ratio * config.max_steps)),
                                               config.max_steps)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu and torch.cuda.is_bf16_supported())
    chunk_rows = max(1, 2**28 // head.weight.shape[0])  # a chunk's fp32 logits: 1 GiB

    started, tokens, loss_tokens, epoch_order = time.time(), 0, 0, []
    generator = torch.Generator().manual_seed(config.seed)
    for step in range(1, config.max_steps + 1):
        if len(epoch_order) < config.batch_size:
            epoch_order += torch.randperm(len(rows), generator=generator).tolist()
        batch = [rows[i] for i in epoch_order[: config.batch_size]]
        del epoch_order[: config.batch_size]
        input_ids, positions, extra, taken, targets = _step_tensors(batch, pad_id, bounds, device)
        with autocast:
            hidden = decoder(input_ids=input_ids, position_ids=positions, use_cache=False, **extra).last_hidden_state
            hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, taken)
            loss = linear_cross_entropy(hidden, head.weight, targets, softcap, chunk_rows, compiled)
            loss = loss / max(1, len(targets))
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += sum(len(ids) for ids, _, _ in batch)
        loss_tokens += len(targets)
        last = step == config.max_steps or _time_is_up(config, step)
        if step % config.log_every == 0 or last:
            print(METRICS_PREFIX + json.dumps({
                "step": step, "max_steps": config.max_steps, "time_s": round(time.time() - started, 3),
                "loss": round(loss.item(), 6), "grad_norm": round(float(grad_norm), 6),
                "learning_rate": schedule.get_last_lr()[0], "num_tokens": tokens, "loss_tokens": loss_tokens,
                "epoch": round(step * config.batch_size / len(rows), 4)}), flush=True)
        if last:
            runtime = time.time() - started  # what Trainer reports as train_runtime (benchmarks/episode.py reads it)
            print(METRICS_PREFIX + json.dumps({"step": step, "max_steps": config.max_steps, "time_s": round(runtime, 2),
                                               "train_runtime": round(runtime, 4),
                                               "train_tokens_per_s": round(tokens / runtime, 1)}), flush=True)
            return step
    return config.max_steps


def _step_tensors(batch: list, pad_id: int, bounds, device: str):
    """A step's tensors on `device`: token ids, positions, the attention's keyword arguments (`bounds` of the
    positions), the flat indices of the positions that take a loss, and their targets. Built on the CPU, where the
    rows' labels already are, and copied without waiting: selecting the loss positions or the packed sequences'
    starts on the GPU would make the CPU wait there for the step before it to finish, twice a step."""
    import torch

    width = max(len(ids) for ids, _, _ in batch)
    # Padding is a packed sequence of its own (positions from 0) without a loss: no attention mask needed.
    padded = lambda column, fill: torch.tensor([row[column] + fill(width - len(row[column])) for row in batch])
    input_ids, labels = padded(0, lambda n: [pad_id] * n), padded(1, lambda n: [-100] * n)
    positions = padded(2, lambda n: list(range(n)))
    # The token each position predicts (none after a row's last), flat, as the decoder's output will be.
    targets = torch.cat([labels[:, 1:], labels.new_full((len(batch), 1), -100)], dim=1).reshape(-1)
    taken = torch.nonzero(targets != -100).flatten()
    extra = bounds(positions)
    to_device = lambda t: (t.pin_memory() if device == "cuda" else t).to(device, non_blocking=True)
    extra = {key: to_device(value) if isinstance(value, torch.Tensor) else value for key, value in extra.items()}
    return to_device(input_ids), to_device(positions), extra, to_device(taken), to_device(targets[taken])


def _compile_layers(decoder) -> None:
    """Compile each decoder layer in place. Layers share their code, so a compilation serves every layer of a
    kind (Gemma 3 has two: sliding-window and global attention); the rows' widths and sequence counts change
    from step to step, which the first recompilation makes dynamic shapes."""
    import torch

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    for layer in getattr(decoder, "layers", []):
        layer.compile()


def _time_is_up(config: TrainConfig, step: int) -> bool:
    """Whether a time limit has passed (saying so): the job then stops early and saves."""
    if config.time_limit_s is not None and time.monotonic() - JOB_STARTED > config.time_limit_s:
        limit = f"time limit of {config.time_limit_s:.0f} s"
    elif config.cpu_time_limit_s is not None and time.process_time() > config.cpu_time_limit_s:
        limit = f"CPU time limit of {config.cpu_time_limit_s:.0f} CPU-seconds"
    else:
        return False
    print(f"{limit} reached at step {step}: stopping early and saving", flush=True)
    return True


def load_config(path: str) -> TrainConfig:
    raw = json.loads(Path(path).read_text())
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = set(raw) - names
    if unknown:
        sys.exit(f"error: unknown training options {sorted(unknown)}; known: {sorted(names)}")
    return TrainConfig(**raw)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ptb_gym.training CONFIG.json")
    # Before torch loads OpenMP: its threads spin up to 300,000 times waiting for each other, which made a step of
    # the embedded model 5 to 40 times slower while another process used the cores (a second episode, an
    # evaluation). Even 10,000 spins made a step cost 1.6 times the CPU time with another job on the cores
    # (charged by the cpu budget); waiting without spinning costs the same on idle cores and under load
    # (benchmarks/budget_invariance.py).
    os.environ.setdefault("GOMP_SPINCOUNT", "0")
    main(load_config(sys.argv[1]))
