"""PTB/math: GSM8K-style word problems, generated from seeds.

Answers count in GSM8K's format: the model writes its working, then `#### N` with the final number.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ptb_gym.envs.task import Harness, Task

_HERE = Path(__file__).parent
_STRICT = re.compile(r"####\s*(-?[\d,]+)")
_NUMBER = re.compile(r"-?\d[\d,]*")
FEW_SHOT_EXAMPLES = 4


class MathTask(Task):
    def records(self, split: str, n: int) -> list[dict[str, Any]]:
        return [dict(record) for record in _records(split, n)]

    def prompt(self, item: dict[str, Any], harness: Harness) -> str:
        question = f"Question: {item['question']}\nAnswer:"
        if not harness.shots:
            return question
        return "\n\n".join([*_shots(harness.shots), question])

    def is_correct(self, item: dict[str, Any], completion: str, harness: Harness) -> bool:
        # The model's answer ends where it starts a new question (base models ramble on).
        answer_text = re.split(r"\n\s*\n|\nQuestion:", completion, maxsplit=1)[0]
        if harness.extraction == "strict":
            found = _STRICT.findall(answer_text)
        else:
            found = _NUMBER.findall(answer_text)[-1:]
        return bool(found) and found[0].replace(",", "") == str(item["answer"])


@functools.lru_cache(maxsize=8)
def _records(split: str, n: int) -> tuple[dict[str, Any], ...]:
    from ptb_gym.envs.math import problems

    return tuple(problem.record() for problem in problems.split(split, n))


@functools.lru_cache(maxsize=4)
def _shots(k: int) -> tuple[str, ...]:
    return tuple(
        f"Question: {r['question']}\nAnswer: {r['solution']} #### {r['answer']}" for r in _records("train", k)
    )


TASK = MathTask(
    name="math",
    title="Grade-school math word problems",
    goal=(
        "Post-train the base model so that it solves grade-school math word problems. It is evaluated "
        "on hidden test problems like those in data/dev.jsonl, zero-shot, with the prompt\n\n"
        "    Question: <question>\\nAnswer:\n\n"
        "and greedy decoding of at most 48 new tokens. The answer counts if the completion contains "
        "`#### <number>` with the right number before any new question, as in GSM8K: for example "
        "` 12+7=19 19*3=57 #### 57` (writing the arithmetic out first helps small models). "
        "Each record of data/train.jsonl and data/dev.jsonl has `question`, `solution` (the arithmetic "
        "steps) and `answer`."
    ),
    harnesses=(
        Harness("zero_shot_strict", "zero-shot; the answer is the number after `####` (primary)"),
        Harness("zero_shot_flexible", "zero-shot; the answer is the last number written", extraction="last_number"),
        Harness(
            "few_shot",
            f"{FEW_SHOT_EXAMPLES} solved train problems before the question; the answer is the number after `####`",
            shots=FEW_SHOT_EXAMPLES,
        ),
    ),
    primary_harness="zero_shot_strict",
    embedded_model=_HERE / "ptb_tiny",
    scores_file=_HERE / "scores.json",
)
