"""Pretrain ``ptb-tiny``, the embedded tier's base model, from scratch.

Usage (from the repository root; a GPU takes about two minutes, a CPU hours):

    python baselines/pretrain_tiny.py --out envs/math/ptb_tiny
    python baselines/pretrain_tiny.py --out /tmp/ptb_tiny --steps 200 --batch-size 16   # a quick smoke run

What it does, top to bottom:

1. Builds a synthetic pretraining corpus from the same names, objects and verbs as the math task's problems
   (``ptb_gym.envs.math.problems``): arithmetic facts in words and in notation ("12 + 7 = 19", "19 times 3 is
   57", "12+7=19"), short past-tense stories with numbers ("Tom had 12 apples. He bought 7 more, so he had
   19 apples.") and problem statements without their question, followed by their arithmetic. Nothing in it
   is a question or uses the task's "Question:"/"Answer:"/"####" format, so the base model scores about 0
   on the task and post-training has something to teach; no text comes from the test split.
2. Trains a byte-level BPE tokenizer (capped at 2,048 tokens; it learns about 1,050; digits split one per
   token) on the corpus plus the train split written in the task's format, so that format tokenizes compactly.
3. Pretrains a small ``LlamaForCausalLM`` on 128-token sequences packed from the corpus only (AdamW, cosine
   schedule, bf16 autocast on CUDA).
4. Saves model (float32 safetensors), generation config, tokenizer and a model card (README.md) to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EOS = "<|endoftext|>"


@dataclass(frozen=True)
class Config:
    out: str = "envs/math/ptb_tiny"
    """Output directory for the model, tokenizer and model card."""
    seed: int = 0
    """Seed for the corpus, the initialisation and the data order."""
    corpus_docs: int = 300_000
    """Number of corpus documents (each a few stories or arithmetic facts); the token stream is repeated if the
    training run needs more tokens than it holds."""
    vocab_size: int = 2048
    """BPE vocabulary cap and the model's embedding rows. The corpus's words run out at about 1,050 learned
    tokens; the remaining rows stay free for tokens a post-trainer adds (chat markers, say) without a resize."""
    statement_frac: float = 0.15
    """Fraction of documents made of problem statements: a generated problem's sentences without its question,
    then its arithmetic and result in plain sentences (drawn from a corpus seed, never from a split's)."""
    tokenizer_docs: int = 60_000
    """How many corpus documents the tokenizer is trained on (plus the train split in the task's format)."""
    hidden_size: int = 192
    """Model width."""
    intermediate_size: int = 512
    """MLP width."""
    num_layers: int = 4
    """Number of transformer blocks."""
    num_heads: int = 4
    """Attention heads (no grouped-query attention)."""
    max_position_embeddings: int = 512
    """Longest sequence the model is configured for (it is pretrained on ``seq_len``)."""
    seq_len: int = 128
    """Tokens per packed pretraining sequence."""
    batch_size: int = 64
    """Sequences per optimizer step."""
    steps: int = 5000
    """Optimizer steps."""
    lr: float = 3e-3
    """Peak learning rate."""
    warmup_steps: int = 200
    """Linear warmup steps before the cosine decay."""
    min_lr_ratio: float = 0.1
    """The cosine schedule decays to ``lr * min_lr_ratio``."""
    weight_decay: float = 0.1
    """AdamW weight decay (not applied to norms)."""
    log_every: int = 250
    """Print the training loss every this many steps."""


# ---- 1. the corpus ---------------------------------------------------------------------------------------------
def load_problems():
    """The task's problem module; loaded from its file when ptb_gym is not installed (e.g. on a bare GPU box)."""
    try:
        from ptb_gym.envs.math import problems
    except ImportError:
        spec = importlib.util.spec_from_file_location("ptb_problems", REPO / "envs" / "math" / "problems.py")
        problems = importlib.util.module_from_spec(spec)
        sys.modules["ptb_problems"] = problems
        spec.loader.exec_module(problems)
    return problems


_OPS_WORDS = {"+": ("plus", "added to"), "-": ("minus", "take away"), "*": ("times", "multiplied by"),
              "/": ("divided by", "divided by")}
_TASK_PAST = {"reads": "read", "writes": "wrote", "paints": "painted", "plants": "planted", "packs": "packed",
              "knits": "knitted"}


class CorpusWriter:
    """Generates corpus documents with the task's vocabulary. All randomness comes from one seeded ``Random``."""

    def __init__(self, seed: int, problems) -> None:
        self.rng = random.Random(seed)
        self.p = problems
        self._stems = iter(())
        # Statements are drawn from their own seed; any that would read like a test problem are skipped.
        self._test_stems = {self.stem(q.question) for q in problems.split("test")}
        self._problem_seed = seed + 7919

    @staticmethod
    def stem(question: str) -> str:
        """A problem's text without its final question (every template's question starts "How many")."""
        return question.rsplit(" How many", 1)[0]

    def statement(self) -> str:
        while True:
            p = next(self._stems, None)
            if p is None:  # draw problems in blocks, from a seed that no split uses
                self._problem_seed += 1
                self._stems = iter(self.p.generate(10_000, self._problem_seed))
                continue
            stem = self.stem(p.question)
            if stem not in self._test_stems:
                break
        if self.rng.random() < 0.7:
            return f"{stem} Working it out: {', then '.join(p.steps)}. The result is {p.answer}."
        return f"{stem} The result is {p.answer}."

    # numbers drawn like the problems draw them
    def fact(self) -> tuple[int, str, int, int]:
        r = self.rng
        op = r.choice("+-*/")
        if op == "+":
            a, b = r.randint(0, 600), r.randint(0, 400)
            return a, op, b, a + b
        if op == "-":
            a = r.randint(1, 999)
            b = r.randint(0, a)
            return a, op, b, a - b
        k, m = r.randint(1, 12), r.randint(1, 80)
        if r.random() < 0.5:
            k, m = m, k
        if op == "*":
            return k, op, m, k * m
        return k * m, op, k, m

    def fact_text(self) -> str:
        a, op, b, c = self.fact()
        r = self.rng
        style = r.random()
        if style < 0.4:
            return f"{a}{op}{b}={c}"
        if style < 0.6:
            return f"{a} {op} {b} = {c}"
        word = r.choice(_OPS_WORDS[op])
        if op == "+" and r.random() < 0.3:
            return f"The sum of {a} and {b} is {c}."
        if op == "*" and r.random() < 0.3:
            return f"The product of {a} and {b} is {c}."
        return f"{a} {word} {b} {r.choice(['is', 'equals', 'makes'])} {c}."

    def chain_text(self) -> str:
        """Two or three linked operations in step notation, as a worked solution writes them."""
        r = self.rng
        a, op, b, x = self.fact()
        steps = [f"{a}{op}{b}={x}"]
        for _ in range(r.randint(1, 2)):
            op = r.choice("+-*/")
            if op == "+":
                b = r.randint(1, 300)
                steps.append(f"{x}+{b}={x + b}" if r.random() < 0.6 else f"{b}+{x}={x + b}")
                x += b
                continue
            if op == "-" and x > 1:
                b = r.randint(1, x - 1)
                steps.append(f"{x}-{b}={x - b}")
                x -= b
            elif op == "*" and x <= 120:
                b = r.randint(2, 9)
                steps.append(f"{x}*{b}={x * b}")
                x *= b
            else:
                divisors = [d for d in range(2, 13) if x % d == 0 and x > 0]
                if not divisors:
                    continue
                b = r.choice(divisors)
                steps.append(f"{x}/{b}={x // b}")
                x //= b
        return " ".join(steps)

    def story(self) -> str:
        r, p = self.rng, self.p
        name, he, his = r.choice(p.NAMES)
        He = he.capitalize()
        other = r.choice([n for n in p.NAMES if n[0] != name])[0]
        obj = r.choice(p.OBJECTS)
        box, boxes = r.choice(p.CONTAINERS)
        item, items = r.choice(p.ITEMS)
        people = r.choice(p.PEOPLE)
        show = r.random() < 0.5  # half the stories also show the arithmetic in step notation

        def eq(a, op, b, c):
            return f" ({a}{op}{b}={c})" if show else ""

        kind = r.randrange(14)
        if kind == 0:
            a, b = r.randint(3, 400), r.randint(2, 300)
            verb = r.choice(p.GAIN_VERBS)[1]
            return f"{name} had {a} {obj}. {He} {verb} {b} more, so {he} had {a + b} {obj}{eq(a, '+', b, a + b)}."
        if kind == 1:
            a = r.randint(10, 600)
            b = r.randint(1, a - 1)
            verb = r.choice(p.LOSE_VERBS)[1]
            return f"{name} had {a} {obj}. {He} {verb} {b} of them and had {a - b} {obj} left{eq(a, '-', b, a - b)}."
        if kind == 2:
            k, m = r.randint(2, 12), r.randint(2, 60)
            return (f"{name} had {k} {boxes} with {m} {obj} in each {box}. "
                    f"That made {k * m} {obj} in all{eq(k, '*', m, k * m)}.")
        if kind == 3:
            k, q = r.randint(2, 12), r.randint(2, 60)
            return (f"{name} shared {k * q} {obj} equally among {k} {people}, "
                    f"and each of them got {q} {obj}{eq(k * q, '/', k, q)}.")
        if kind == 4:
            c, pr = r.randint(2, 12), r.randint(2, 75)
            return f"{name} bought {c} {items} at ${pr} each and spent ${c * pr}{eq(c, '*', pr, c * pr)}."
        if kind == 5:
            a, b = r.randint(3, 400), r.randint(2, 300)
            return (f"{name} had {a} {obj}. {other} had {b} more {obj} than {name}, "
                    f"so {other} had {a + b}{eq(a, '+', b, a + b)}.")
        if kind == 6:
            a = r.randint(10, 600)
            b = r.randint(1, a - 1)
            return (f"{name} had {a} {obj} and {other} had {b} fewer, "
                    f"which means {other} had {a - b} {obj}{eq(a, '-', b, a - b)}.")
        if kind == 7:
            a, k = r.randint(2, 80), r.randint(2, 9)
            return (f"{other} had {k} times as many {obj} as {name}. {name} had {a}, "
                    f"so {other} had {a * k}{eq(a, '*', k, a * k)}. Together they had {a + a * k} {obj}"
                    f"{eq(a, '+', a * k, a + a * k)}.")
        if kind == 8:
            unit, units = r.choice(p.TIME_UNITS)
            w, d = r.randint(3, 80), r.randint(2, 12)
            c = r.randint(1, w * d - 1)
            return (f"{name} earned ${w} each {unit} for {d} {units}, which came to ${w * d}{eq(w, '*', d, w * d)}. "
                    f"After spending ${c} on a {item}, {he} had ${w * d - c} left{eq(w * d, '-', c, w * d - c)}.")
        if kind == 9:
            c, pr = r.randint(2, 9), r.randint(2, 60)
            bill = next(b for b in (20, 50, 100, 200, 500, 1000) if b > c * pr)
            return (f"{name} paid for {c} {items} at ${pr} each with a ${bill} bill. The {items} cost "
                    f"${c * pr}{eq(c, '*', pr, c * pr)}, so {he} got ${bill - c * pr} back in change"
                    f"{eq(bill, '-', c * pr, bill - c * pr)}.")
        if kind == 10:
            verb, unit, thing = r.choice(p.TASKS)
            day, days = r.choice(p.TIME_UNITS[:2])
            rate, d = r.randint(2, 40), r.randint(2, 12)
            total = rate * d + r.randint(1, 300)
            return (f"{thing.capitalize()} had {total} {unit}. {name} {_TASK_PAST[verb]} {rate} {unit} every {day} "
                    f"for {d} {days}, {rate * d} {unit} in all{eq(rate, '*', d, rate * d)}, and "
                    f"{total - rate * d} {unit} were left{eq(total, '-', rate * d, total - rate * d)}.")
        if kind == 11:
            a, b, c, d = r.randint(2, 9), r.randint(2, 30), r.randint(2, 9), r.randint(2, 30)
            return (f"{name} bought {a} {boxes} of {obj} with {b} in each and {c} more {boxes} with {d} in each. "
                    f"That was {a * b} and {c * d} {obj}, {a * b + c * d} {obj} in total"
                    f"{eq(a * b, '+', c * d, a * b + c * d)}.")
        if kind == 12:
            w, h1, h2 = r.randint(5, 40), r.randint(2, 12), r.randint(2, 12)
            return (f"{name} earned ${w} an hour and worked {h1} hours one day and {h2} hours the next. {He} made "
                    f"${w * h1} and ${w * h2}, so {he} earned ${w * h1 + w * h2} in those two days.")
        k, q = r.randint(2, 10), r.randint(2, 40)
        keep = r.randint(1, 150)
        return (f"{name} had {k * q + keep} {obj}. {He} kept {keep} for {his} family and shared the other "
                f"{k * q} equally among {k} {people}, so each got {q}{eq(k * q, '/', k, q)}.")

    def document(self, statement_frac: float) -> str:
        r = self.rng
        if r.random() < statement_frac:
            return " ".join(self.statement() for _ in range(r.randint(1, 3)))
        kind = r.random()
        if kind < 0.25:
            return " ".join(self.fact_text() for _ in range(r.randint(4, 10)))
        if kind < 0.4:
            return "\n".join(self.chain_text() for _ in range(r.randint(3, 6)))
        if kind < 0.5:
            return " ".join(self.story() if r.random() < 0.6 else self.fact_text() for _ in range(r.randint(3, 5)))
        return " ".join(self.story() for _ in range(r.randint(2, 4)))


def build_corpus(cfg: Config, problems) -> list[str]:
    writer = CorpusWriter(cfg.seed, problems)
    docs = [writer.document(cfg.statement_frac) for _ in range(cfg.corpus_docs)]
    for d in docs[:5000]:  # the corpus must not teach the task's format: that is the post-trainer's job
        assert "?" not in d and "####" not in d and "Question" not in d and "Answer" not in d, d
    return docs


# ---- 2. the tokenizer ------------------------------------------------------------------------------------------
def train_tokenizer(cfg: Config, docs: list[str], problems):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    task_format = [f"Question: {p.question}\nAnswer: {p.solution()} #### {p.answer}" for p in problems.split("train")]
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs[: cfg.tokenizer_docs] + task_format, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS,
                                   unk_token=EOS, model_max_length=cfg.max_position_embeddings)


# ---- 3. the model and its training -----------------------------------------------------------------------------
def pack(tokenizer, docs: list[str], seq_len: int):
    import torch

    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(eos)
    n = len(ids) // seq_len
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def main(cfg: Config) -> None:
    problems = load_problems()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    docs = build_corpus(cfg, problems)
    print(f"corpus: {len(docs)} documents, {sum(map(len, docs)) / 1e6:.1f}M characters ({time.time() - t0:.0f} s)")
    print("sample:", docs[0][:300].replace("\n", " | "))
    tokenizer = train_tokenizer(cfg, docs, problems)
    model, facts = pretrain(cfg, tokenizer, docs)
    sample = save(model, tokenizer, out, "Tom had 12 apples. He bought")
    write_card(out, cfg, facts, sample)


def pretrain(cfg, tokenizer, docs: list[str]):
    """A Llama of `cfg`'s shape, pretrained on `docs` packed into `cfg.seq_len`-token sequences: (model, facts)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    data = pack(tokenizer, docs, cfg.seq_len)
    print(f"tokenizer: vocab {len(tokenizer)}; corpus {data.numel() / 1e6:.1f}M tokens in {len(data)} sequences "
          f"({time.time() - t0:.0f} s)")

    eos = tokenizer.eos_token_id
    model_cfg = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    model = LlamaForCausalLM(model_cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters on {device}")

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95), fused=device == "cuda")

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))

    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(data), generator=gen)
    cursor, losses = 0, []
    model.train()
    t_train = time.time()
    for step in range(cfg.steps):
        if cursor + cfg.batch_size > len(order):  # another epoch over the corpus, in a new order
            order, cursor = torch.randperm(len(data), generator=gen), 0
        batch = data[order[cursor: cursor + cfg.batch_size]].to(device, non_blocking=True)
        cursor += cfg.batch_size
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            recent = torch.stack(losses[-cfg.log_every:]).float().mean().item()
            print(f"step {step + 1}/{cfg.steps} loss {recent:.4f} lr {lr_at(step):.2e} "
                  f"({time.time() - t_train:.0f} s)", flush=True)
    facts = {
        "parameters": n_params, "steps": cfg.steps, "batch_size": cfg.batch_size, "seq_len": cfg.seq_len,
        "train_seconds": round(time.time() - t_train),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "final_loss": round(torch.stack(losses[-cfg.log_every:]).float().mean().item(), 4),
        "corpus_tokens": data.numel(), "epochs": round(cfg.steps * cfg.batch_size / len(data), 2),
        "learned_vocab": len(tokenizer),
    }
    print(json.dumps(facts))
    return model, facts


def save(model, tokenizer, out: Path, sample_prompt: str, end_tokens: tuple[str, ...] = ()) -> str:
    """Save model (float32 safetensors), generation config and tokenizer; returns a sample continuation.
    Generation stops at eos and at each of `end_tokens` (a chat turn's end, say)."""
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    model = model.float().cpu().eval()
    stops = [eos, *tokenizer.convert_tokens_to_ids(list(end_tokens))]
    model.generation_config = GenerationConfig(eos_token_id=stops if end_tokens else eos, pad_token_id=eos,
                                               bos_token_id=eos, do_sample=False, max_new_tokens=64)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    sample_ids = tokenizer(sample_prompt, return_tensors="pt")
    sample = tokenizer.decode(model.generate(**sample_ids, max_new_tokens=24)[0])
    print("sample continuation:", sample)
    return sample


def write_card(out: Path, cfg: Config, facts: dict, sample: str) -> None:
    size_mb = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 1e6
    card = f"""# ptb-tiny

The base model of ptb-gym's embedded tier (`PTB/math-v0`): a {facts['parameters'] / 1e6:.2f}M-parameter
Llama-architecture causal LM, pretrained from scratch by `baselines/pretrain_tiny.py`. It is small enough to be
fine-tuned on 2 CPU cores in minutes, and it knows the math task's words and arithmetic notation but not its
question/answer format, so it scores about 0 on the task before post-training.

| | |
| --- | --- |
| architecture | `LlamaForCausalLM`: hidden {cfg.hidden_size}, MLP {cfg.intermediate_size}, {cfg.num_layers} layers, {cfg.num_heads} heads, RoPE, tied embeddings, context {cfg.max_position_embeddings} |
| parameters | {facts['parameters']:,} (float32 safetensors; this folder is {size_mb:.1f} MB) |
| tokenizer | byte-level BPE, {facts['learned_vocab']:,} learned tokens in {cfg.vocab_size} embedding rows (the rest free for added tokens), digits split one per token; `<|endoftext|>` is eos, bos and pad |
| pretraining | {facts['steps']:,} steps of {facts['batch_size']} x {facts['seq_len']} tokens ({facts['epochs']} epochs of {facts['corpus_tokens'] / 1e6:.1f}M tokens), AdamW (lr {cfg.lr}, warmup {cfg.warmup_steps}, cosine to {cfg.min_lr_ratio}x), bf16 autocast |
| time, device | {facts['train_seconds']} s on {facts['device']} |
| final pretraining loss | {facts['final_loss']} (mean of the last {cfg.log_every} steps) |

## Corpus

{cfg.corpus_docs:,} synthetic documents generated from seed {cfg.seed} with the vocabulary of
`ptb_gym.envs.math.problems` (names, objects, containers, prices, rates): arithmetic facts in words and in
notation ("12 + 7 = 19", "19 times 3 is 57", "12+7=19"), chains of operations in step notation
("12+7=19 19*3=57"), and short past-tense stories with numbers ("Tom had 12 apples. He bought 7 more, so he had
19 apples (12+7=19)."). {cfg.statement_frac:.0%} of the documents are problem statements: the sentences of a
problem generated by `problems.generate` from a seed no split uses, without its question, followed by the
arithmetic and the result ("Tom has 12 apples. He buys 7 more apples. Working it out: 12+7=19. The result is
19."); any whose text matches a test problem's is skipped. No document asks a question or uses the task's
"Question:", "Answer:" or "####" format, and nothing is drawn from the test split. The tokenizer was also
trained on the train split in the task's format, so that format tokenizes compactly; the model never saw it.

Sample continuation of "Tom had 12 apples. He bought": `{sample}`

## Rebuild

```
python baselines/pretrain_tiny.py --out envs/math/ptb_tiny
```

(deterministic data and initialisation; GPU kernels make the weights differ in the last bits between runs).
"""
    (out / "README.md").write_text(card)


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Config):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return Config(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
