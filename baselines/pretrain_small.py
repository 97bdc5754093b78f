"""Pretrain ``ptb-small``, the base model the embedded families share (math-v1, code, tools), or ``ptb-small-2``
(math-v2's, which copies a format from its context), from scratch.

Usage (from the repository root, with ptb-gym installed; a GPU takes a few minutes, a CPU many hours):

    python baselines/pretrain_small.py --out envs/ptb_small
    python baselines/pretrain_small.py --name ptb-small-2 --out envs/math/ptb_small2 --steps 8000 \
        --format-tokens no --newline-tokens yes --open-formats yes --long-docstrings yes \
        --mix math:0.28,code:0.14,tools:0.1,patterns:0.35,repeats:0.13     # PTB/math-v2's, which copies a format
    python baselines/pretrain_small.py --out /tmp/ptb_small --steps 200 --corpus-docs 20000   # a smoke run

The successor of ``pretrain_tiny.py`` (which still rebuilds ``ptb-tiny``, PTB/math-v0's model), and built the
same way: a synthetic corpus, a byte-level BPE tokenizer, a small Llama. What is new:

1. **A corpus of every family's domain**, never its task format: ``pretrain_tiny``'s arithmetic and stories, each
   family's ``corpus.documents`` (``ptb_gym.envs.code.corpus``: Python code and what it prints;
   ``ptb_gym.envs.tools.corpus``: JSON, configs and calls in code), and
2. **pattern documents**, so that the model learns to copy a format from its context, as PostTrainBench's base
   models do (they score higher few-shot than zero-shot): a few examples of one made-up format (random labels,
   separators and result markers, never a task's ``Question:``, ``Answer:`` or ``####``) applied to different
   content: a worked sum, a word transformation, fields pulled out of a sentence into JSON, a function guessed
   from its values. Sequences are 512 tokens, long enough for a task's few-shot prompt.
3. **A chat template** (``<|system|>``, ``<|user|>``, ``<|assistant|>``, ``<|end|>``), for the families'
   chat-message harnesses. The base model never saw it: like a base model's, its chat turns are untrained.

The tokenizer is also trained on each task's train split in its evaluation format, so formats tokenize
compactly; the model never sees them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_tiny import EOS, Config as TinyConfig, CorpusWriter, load_problems, pretrain, save  # noqa: E402

CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
FORBIDDEN = ("Question", "Answer", "####")
"""What no pretraining document contains: the math task's format is the post-trainer's to teach."""


@dataclass(frozen=True)
class Config(TinyConfig):
    name: str = "ptb-small"
    """The model's name, in its card."""
    out: str = "envs/ptb_small"
    corpus_docs: int = 600_000
    vocab_size: int = 4096
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    max_position_embeddings: int = 1024
    seq_len: int = 512
    batch_size: int = 64
    steps: int = 6000
    mix: str = "math:0.35,code:0.25,tools:0.2,patterns:0.2"
    """Share of each source among the corpus documents: `math`, `code`, `tools`, `patterns` and `repeats`."""
    format_tokens: bool = True
    """Train the tokenizer on the tasks' train prompts too, so that formats tokenize compactly. Their labels
    (`Question`, `Answer`, `Call`) then become tokens no pretraining document holds, whose embeddings stay at
    their random initialisation."""
    newline_tokens: bool = False
    """Keep every newline a token of its own, never merged with the next line's indentation: a prompt that ends
    on a newline (HumanEval's) then ends on a token that pretraining followed by indented code."""
    long_docstrings: bool = False
    """A quarter of the code corpus's functions get a multi-line docstring whose triple quotes close on a line of
    their own, as a HumanEval prompt ends: after one, a base that never saw it writes a new top-level line, not a
    body (`ptb-small-2` has them)."""
    related_functions: bool = False
    """The code corpus gets `related` snippets (versions of one function with the same body;
    `ptb_gym.envs.code.corpus`), from which a base learns to copy a function's body from its context."""
    call_patterns: bool = False
    """Pattern documents may be function calls: made-up functions on offer and a request, then the call in a
    made-up JSON or Python format (`ptb_gym.envs.tools.corpus.call_example`), never a task's."""
    open_formats: bool = False
    """Pattern documents draw labels and markers from an open set (made-up words, random symbol runs) besides the
    fixed lists, so that what pays in pretraining is copying the format of the context, not recalling a known one."""


# ---- pattern documents: in-context format copying -------------------------------------------------------------
LABELS = ("Input", "Output", "Text", "Result", "Problem", "Solution", "Task", "Reply", "In", "Out", "Prompt",
          "Response", "Item", "Value", "Source", "Target", "Case", "Work", "Query", "Sum", "Note", "Data")
SEPARATORS = (": ", " = ", " -> ", ":\n", " | ")
MARKERS = ("=>", "->", "==", "::", "%%", "$$", "||", ">>", "@@", "~~", "##", "**", "//")
WORDS = ("apple", "river", "stone", "cloud", "paper", "tiger", "green", "piano", "lemon", "candle", "window",
         "rocket", "garden", "silver", "orange", "pencil", "marble", "forest", "bridge", "yellow", "castle",
         "dragon", "rabbit", "summer", "winter", "number", "button", "ticket", "planet", "violet")


CALL_KEYS = (("name", "arguments"), ("function", "args"), ("tool", "input"), ("call", "params"), ("fn", "kwargs"),
             ("action", "parameters"))
"""The keys of a call pattern's JSON: which pair a document uses is only known from its examples."""
SYMBOLS = "#$%&*+=~^@!|/<>;"
SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")


class PatternWriter:
    """Documents of 3 to 8 examples of one made-up format, separated by blank lines like a few-shot prompt."""

    def __init__(self, rng: random.Random, math_writer: CorpusWriter, open_formats: bool = False,
                 call_patterns: bool = False) -> None:
        self.rng, self.math, self.open = rng, math_writer, open_formats
        self.contents = (self.worked, self.words, self.fields, self.function) + ((self.calls,) if call_patterns else ())

    def label(self) -> str:
        r = self.rng
        if not self.open or r.random() < 0.5:
            return r.choice(LABELS)
        if r.random() < 0.5:
            return r.choice(WORDS).capitalize()
        return "".join(r.choices(SYLLABLES, k=r.randint(2, 3))).capitalize()

    def marker(self) -> str:
        r = self.rng
        if not self.open or r.random() < 0.5:
            return r.choice(MARKERS)
        # Up to 5 symbols: a base that saw markers of 3 at most cut the shots' `####` to `##` (candidate L).
        while "####" in (marker := "".join(r.choices(SYMBOLS, k=r.randint(1, 5)))):
            pass  # never the math task's own marker
        return marker

    def document(self) -> str:
        r = self.rng
        first = self.label()
        while (second := self.label()) == first:
            pass
        sep = r.choice(SEPARATORS)
        make = r.choice(self.contents)
        state = make(None)  # a content kind fixes what stays the same across the document's examples
        examples = []
        for _ in range(r.randint(3, 8)):
            source, target = make(state)
            examples.append(f"{first}{sep}{source}\n{second}{sep}{target}")
        return "\n\n".join(examples)

    def repeats(self, words: list[str]) -> str:
        """A run of pieces, then the same run again, once to three times: the documents in which only copying
        from the context predicts the text, which is how a small model learns the induction heads that copying a
        few-shot prompt's format needs. Most pieces are words of the other documents (`words`), so that copying
        works on the tokens prompts are made of: runs of made-up words alone taught a copy that works on nothing
        else (candidate F copied its own runs at 4.5 nats/token and random runs of a prompt's tokens not at all)."""
        r = self.rng

        def piece() -> str:
            kind = r.random()
            if kind < 0.7:
                return r.choice(words)
            if kind < 0.85:
                return "".join(r.choices(SYLLABLES, k=r.randint(1, 3)))
            return "".join(r.choices(SYMBOLS, k=r.randint(1, 3))) if kind < 0.95 else str(r.randint(0, 999))

        run = " ".join(piece() for _ in range(r.randint(4, 40)))
        return r.choice(("\n", "\n\n", " ")).join([run] * r.randint(2, 4))

    def worked(self, state):
        r = self.rng
        if state is None:
            return self.marker()
        text = self.math.statement()  # "<stem> Working it out: 12+7=19, then 19*3=57. The result is 57."
        stem, _, result = text.rpartition(" The result is ")
        stem, _, work = stem.partition(" Working it out: ")
        work = work.rstrip(".").replace(", then ", " ")
        shown = f"{work} {state} " if work and r.random() < 0.8 else f"{state} "
        return stem, shown + result.rstrip(".")

    def words(self, state):
        r = self.rng
        if state is None:
            return r.choice(("upper", "reverse", "first", "last", "count", "sorted", "joined"))
        words = r.sample(WORDS, r.randint(2, 5))
        target = {"upper": " ".join(w.upper() for w in words), "reverse": " ".join(reversed(words)),
                  "first": words[0], "last": words[-1], "count": str(len(words)),
                  "sorted": " ".join(sorted(words)), "joined": "-".join(words)}[state]
        return " ".join(words), target

    def fields(self, state):
        r, p = self.rng, self.math.p
        if state is None:
            return r.sample(("name", "item", "count", "price"), r.randint(1, 3))
        values = {"name": r.choice(p.NAMES)[0], "item": r.choice(p.OBJECTS), "count": r.randint(2, 99),
                  "price": r.randint(1, 500)}
        sentence = (f"{values['name']} has {values['count']} {values['item']} at ${values['price']} each.")
        picked = ", ".join(f'"{k}": {values[k]!r}'.replace("'", '"') for k in state)
        return sentence, "{" + picked + "}"

    def function(self, state):
        r = self.rng
        if state is None:
            return r.choice(("+", "*", "-")), r.randint(2, 12), r.choice(("f", "g", "h", "step", "calc"))
        op, k, name = state
        x = r.randint(k if op == "-" else 0, 60)
        return f"{name}({x})", str({"+": x + k, "*": x * k, "-": x - k}[op])

    def calls(self, state):
        r = self.rng
        if state is None:  # the call's keys and syntax, how functions are listed, the request's label
            keys, as_json, bullet = r.choice(CALL_KEYS), r.random() < 0.7, r.choice(("- ", "* ", "", "  "))
            return keys, as_json, bullet, self.label(), r.random() < 0.5
        from ptb_gym.envs.tools.corpus import call_example
        from ptb_gym.envs.tools.problems import signature

        (name_key, arguments_key), as_json, bullet, request_label, described = state
        offered, request, name, arguments = call_example(r)
        listing = "\n".join(bullet + signature(f) + (f": {f.description}" if described else "") for f in offered)
        if as_json:
            call = json.dumps({name_key: name, arguments_key: arguments})
        else:
            call = f"{name}({', '.join(f'{key}={value!r}' for key, value in arguments.items())})"
        return f"{listing}\n{request_label}: {request}", call


# ---- the corpus, the tokenizer, the model ---------------------------------------------------------------------
def build_corpus(cfg: Config, problems) -> list[str]:
    import importlib

    rng = random.Random(cfg.seed)
    math_writer = CorpusWriter(cfg.seed, problems)
    patterns = PatternWriter(random.Random(cfg.seed + 1), math_writer, cfg.open_formats, cfg.call_patterns)
    shares = {name: float(share) for name, share in (part.split(":") for part in cfg.mix.split(","))}
    counts = {name: round(cfg.corpus_docs * share / sum(shares.values())) for name, share in shares.items()}
    docs: list[str] = []
    for name, count in counts.items():
        if name == "math":
            docs += [math_writer.document(cfg.statement_frac) for _ in range(count)]
        elif name == "patterns":
            docs += [patterns.document() for _ in range(count)]
        elif name == "repeats":
            continue  # made of the other documents' words, below
        else:
            options = ({"long_docstrings": cfg.long_docstrings, "related": cfg.related_functions} if name == "code"
                       else {})
            docs += importlib.import_module(f"ptb_gym.envs.{name}.corpus").documents(random.Random(cfg.seed + 2), count,
                                                                                      **options)
    if counts.get("repeats"):
        words = [word for doc in rng.sample(docs, min(len(docs), 20_000)) for word in doc.split()]
        docs += [patterns.repeats(words) for _ in range(counts["repeats"])]
    rng.shuffle(docs)
    leaks = [d for d in docs if any(f in d for f in FORBIDDEN)]
    assert not leaks, f"{len(leaks)} documents hold a task format, e.g. {leaks[0][:200]!r}"
    return docs


def task_formats(families: set[str], limit: int = 3000) -> list[str]:
    """The train items of the tasks of `families` on this model, in their evaluation format, for the tokenizer."""
    from ptb_gym.envs import load_task
    from ptb_gym.envs.task import SHARED_MODEL
    from ptb_gym.registration import ENVS

    texts = []
    for entry in ENVS:
        if entry.family not in families or (task := load_task(entry.task)).embedded_model != SHARED_MODEL:
            continue
        harness = task.harness(task.primary_harness)
        for item in task.records("train", limit):
            prompt = task.prompt(item, harness)
            texts.append(prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt))
            texts.append(" ".join(str(v) for v in item.values()))
    return texts


def train_tokenizer(cfg: Config, docs: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    steps = [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    if cfg.newline_tokens:
        steps.insert(0, pre_tokenizers.Split("\n", behavior="isolated"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=[EOS, *CHAT_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    families = {part.split(":")[0] for part in cfg.mix.split(",")}
    formats = task_formats(families) if cfg.format_tokens else []
    tok.train_from_iterator(docs[: cfg.tokenizer_docs] + formats, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS,
                                        unk_token=EOS, model_max_length=cfg.max_position_embeddings,
                                        additional_special_tokens=list(CHAT_TOKENS))
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def main(cfg: Config) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    docs = build_corpus(cfg, load_problems())
    print(f"corpus: {len(docs)} documents, {sum(map(len, docs)) / 1e6:.1f}M characters ({time.time() - t0:.0f} s)")
    for doc in docs[:4]:
        print("sample:", doc[:240].replace("\n", " | "))
    tokenizer = train_tokenizer(cfg, docs)
    model, facts = pretrain(cfg, tokenizer, docs)
    sample = save(model, tokenizer, out, "Input: apple river stone\nOutput: APPLE RIVER STONE\n\nInput: green piano\n"
                                         "Output:", end_tokens=("<|end|>",))
    write_card(out, cfg, facts, sample)


def write_card(out: Path, cfg: Config, facts: dict, sample: str) -> None:
    size_mb = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 1e6
    defaults = Config()
    flags = "".join(f" --{f.name.replace('_', '-')} {_flag(getattr(cfg, f.name))}" for f in dataclasses.fields(cfg)
                    if f.name != "out" and getattr(cfg, f.name) != getattr(defaults, f.name))
    (out / "README.md").write_text(f"""# {cfg.name}

A base model of ptb-gym's embedded families (`envs/CALIBRATION.md` names the tasks on it): a
{facts['parameters'] / 1e6:.2f}M-parameter Llama-architecture causal LM, pretrained from scratch by
`baselines/pretrain_small.py`. It is small enough to be fine-tuned on 2 CPU cores in minutes.

| | |
| --- | --- |
| architecture | `LlamaForCausalLM`: hidden {cfg.hidden_size}, MLP {cfg.intermediate_size}, {cfg.num_layers} layers, {cfg.num_heads} heads, RoPE, tied embeddings, context {cfg.max_position_embeddings} |
| parameters | {facts['parameters']:,} (float32 safetensors; this folder is {size_mb:.1f} MB) |
| tokenizer | byte-level BPE, {facts['learned_vocab']:,} tokens in {cfg.vocab_size} embedding rows, digits split one per token; `<|endoftext|>` is eos, bos and pad (no bos is prepended); a chat template with `<|system|>`, `<|user|>`, `<|assistant|>` and `<|end|>` turns, never seen in pretraining |
| pretraining | {facts['steps']:,} steps of {facts['batch_size']} x {facts['seq_len']} tokens ({facts['epochs']} epochs of {facts['corpus_tokens'] / 1e6:.1f}M tokens), AdamW (lr {cfg.lr}, warmup {cfg.warmup_steps}, cosine to {cfg.min_lr_ratio}x), bf16 autocast |
| time, device | {facts['train_seconds']} s on {facts['device']} |
| final pretraining loss | {facts['final_loss']} (mean of the last {cfg.log_every} steps) |

## Corpus

{cfg.corpus_docs:,} synthetic documents from seed {cfg.seed}, mixed `{cfg.mix}`: arithmetic and short stories with
numbers; Python code with what it prints; JSON records, configs and function calls in code; and pattern documents,
a few examples of one made-up format each (labels, separators and markers drawn at random), so that the model
can continue a format shown in its context. No document uses a task's prompt format, and nothing comes from a
test split.

Sample continuation of a pattern: `{sample}`

## Rebuild

```
python baselines/pretrain_small.py --out {out}{flags}
```

(deterministic data and initialisation; GPU kernels make the weights differ in the last bits between runs).
""")


def _flag(value) -> str:
    """A value as its command-line flag takes it."""
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Config):
        kind = (lambda text: text.lower() in ("1", "true", "yes")) if isinstance(f.default, bool) else type(f.default)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    return Config(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
