"""PTB/math: GSM8K-style word problems, generated from seeds.

Answers count in GSM8K's format: the model writes its working, then `#### N` with the final number.

- `v0`: the first version, on `ptb-tiny`; its train split carries the worked arithmetic and its TASK.md hints
  that writing it out helps, so the obvious recipe is close to the reference.
- `v1`: on the shared base model; the splits carry final answers only, as the agent would find a dataset of
  questions and answers, and TASK.md says how the model is evaluated, never how to train it.
- `v2`: v1 on `ptb-small-2`, a base pretrained to copy a format from its context (`ptb_small2/`'s model card):
  it scores higher few-shot than zero-shot, as PostTrainBench's base models do.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptb_gym.envs.task import SHARED_MODEL, Harness, Recipe, Task

_HERE = Path(__file__).parent
_STRICT = re.compile(r"####\s*(-?[\d,]+)")
_NUMBER = re.compile(r"-?\d[\d,]*")
_END_OF_ANSWER = re.compile(r"\n\s*\n|\nQuestion:")  # base models ramble on into a new question
FEW_SHOT_EXAMPLES = 4


@dataclass(frozen=True)
class MathHarness(Harness):
    extraction: str = "strict"
    """How the answer is read from the completion: `strict` (`#### N`) or `last_number`."""


@dataclass(frozen=True)
class MathTask(Task):
    worked_solutions: bool = True
    """The public splits carry each problem's arithmetic steps (`solution`), not only its answer."""

    def records(self, split: str, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        records = [dict(record) for record in _records(split, n, seed)]
        if not self.worked_solutions and split != "test":
            for record in records:
                del record["solution"]
        return records

    def prompt(self, item: dict[str, Any], harness: Harness) -> str:
        question = f"Question: {item['question']}\nAnswer:"
        if not harness.shots:
            return question
        return "\n\n".join([*_shots(harness.shots), question])

    @property
    def recipes(self) -> dict[str, Recipe]:
        from ptb_gym.envs.math import recipes

        return recipes.RECIPES[self.name]

    def score(self, items: Sequence[dict[str, Any]], completions: Sequence[str], harness: Harness) -> list[float]:
        return [float(_answer(completion, harness) == str(item["answer"]))
                for item, completion in zip(items, completions, strict=True)]


def _answer(completion: str, harness: Harness) -> str | None:
    answer_text = _END_OF_ANSWER.split(completion, maxsplit=1)[0]
    found = _STRICT.findall(answer_text) if harness.extraction == "strict" else _NUMBER.findall(answer_text)[-1:]
    return found[0].replace(",", "") if found else None


@functools.lru_cache(maxsize=8)
def _records(split: str, n: int, seed: int | None) -> tuple[dict[str, Any], ...]:
    from ptb_gym.envs.math import problems

    return tuple(problem.record() for problem in problems.split(split, n, seed))


@functools.lru_cache(maxsize=4)
def _shots(k: int) -> tuple[str, ...]:
    return tuple(
        f"Question: {r['question']}\nAnswer: {r['solution']} #### {r['answer']}" for r in _records("train", k, None)
    )


HARNESSES = (
    MathHarness("zero_shot_strict", "zero-shot; the answer is the number after `####` (primary)"),
    MathHarness("zero_shot_flexible", "zero-shot; the answer is the last number written", extraction="last_number"),
    MathHarness(
        "few_shot",
        f"{FEW_SHOT_EXAMPLES} solved train problems before the question; the answer is the number after `####`",
        shots=FEW_SHOT_EXAMPLES,
    ),
)

V0 = MathTask(
    name="math-v0",
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
    harnesses=HARNESSES,
    primary_harness="zero_shot_strict",
    embedded_model=_HERE / "ptb_tiny",
    scores_file=_HERE / "scores.json",
)

V1 = MathTask(
    name="math-v1",
    title="Grade-school math word problems",
    goal=(
        "Post-train the base model so that it solves grade-school math word problems. It is evaluated "
        "on hidden test problems drawn from the same distribution as data/dev.jsonl, zero-shot, with the "
        "prompt\n\n"
        "    Question: <question>\\nAnswer:\n\n"
        "and greedy decoding of at most 64 new tokens. The answer counts if the completion contains "
        "`#### <number>` with the right number before any blank line or new `Question:`, as in GSM8K "
        "(anything may come before it). Each record of data/train.jsonl and data/dev.jsonl has `question` "
        "and `answer` (the final number, as a string)."
    ),
    harnesses=tuple(dataclasses.replace(h, max_new_tokens=64) for h in HARNESSES),
    primary_harness="zero_shot_strict",
    embedded_model=SHARED_MODEL,
    scores_file=_HERE / "scores-v1.json",
    worked_solutions=False,
)

V2 = dataclasses.replace(V1, name="math-v2", embedded_model=_HERE / "ptb_small2",
                         scores_file=_HERE / "scores-v2.json")

TASKS = {"v0": V0, "v1": V1, "v2": V2}
