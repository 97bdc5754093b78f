"""PTB/code: HumanEval-style Python functions, generated from seeds (`problems.py`).

The model continues a function's signature and docstring with its body; the function counts when every hidden
test holds (pass@1), run in the sandbox of `ptb_gym.execution`, which compares values outside it. Only a
quarter of the kinds come with solutions in the train split: training on those alone is the obvious recipe, and
writing solutions for the others from their docstrings is the better one (`recipes.py`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptb_gym.envs.task import SHARED_MODEL, Harness, Prompt, Recipe, Task

_FENCED = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)
_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
INSTRUCTION = ("Complete the following Python function. Reply with the whole function, signature included, in "
               "one ```python code block.\n\n```python\n{prompt}```")
FEW_SHOT_EXAMPLES = 2


@dataclass(frozen=True)
class CodeHarness(Harness):
    extraction: str = "body"
    """How the program is read from the completion: `body` (the prompt, then the completion), `fenced` (the
    first ```python block) or `lenient` (the block, else the completion as a function or a body)."""


@dataclass(frozen=True)
class CodeTask(Task):
    def records(self, split: str, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        return [dict(record) for record in _records(split, n, seed)]

    def prompt(self, item: dict[str, Any], harness: Harness) -> Prompt:
        if harness.chat:
            return [{"role": "user", "content": INSTRUCTION.format(prompt=item["prompt"])}]
        return "".join([*_shots(harness.shots), item["prompt"]])

    def expected(self, item: dict[str, Any]) -> Any:
        return item.get("tests", item["visible_tests"])  # the asserts it is scored by

    @property
    def recipes(self) -> dict[str, Recipe]:
        from ptb_gym.envs.code import recipes

        return recipes.RECIPES[self.name]

    def score(self, items: Sequence[dict[str, Any]], completions: Sequence[str], harness: Harness) -> list[float]:
        """1.0 for a completion whose function passes every hidden test (the visible ones for dev items)."""
        from ptb_gym.execution import check_asserts

        sources = [_program(item, completion, harness) for item, completion in zip(items, completions, strict=True)]
        tests = [item.get("tests", item["visible_tests"]) for item in items]
        return [float(ok) for ok in check_asserts(sources, tests)]


def _program(item: dict[str, Any], completion: str, harness: Harness) -> str:
    if harness.extraction == "body":
        return item["prompt"] + completion
    block = _FENCED.search(completion)
    if block:
        return block.group(1)
    if harness.extraction == "fenced":
        return ""
    return completion if f"def {item['entry_point']}(" in completion else item["prompt"] + completion


@functools.lru_cache(maxsize=8)
def _records(split: str, n: int, seed: int | None) -> tuple[dict[str, Any], ...]:
    from ptb_gym.envs.code import problems

    return tuple(problem.record(split) for problem in problems.split(split, n, seed))


@functools.lru_cache(maxsize=4)
def _shots(k: int) -> tuple[str, ...]:
    solved = [r for r in _records("train", 100, None) if "canonical_solution" in r][:k]
    return tuple(f"{r['prompt']}{r['canonical_solution']}\n\n" for r in solved)


HARNESSES = (
    CodeHarness("completion", "zero-shot; the prompt is the signature and docstring, the completion its body "
                "(primary)", max_new_tokens=96, stop=_STOP),
    CodeHarness("few_shot", f"{FEW_SHOT_EXAMPLES} solved train problems before the prompt",
                shots=FEW_SHOT_EXAMPLES, max_new_tokens=96, stop=_STOP),
    CodeHarness("instruct", "chat: asked to complete the function; the program is the first ```python block",
                chat=True, max_new_tokens=192, stop=("<|end|>",), extraction="fenced"),
    CodeHarness("instruct_lenient", "chat, as `instruct`; without a code block the reply is taken as the code",
                chat=True, max_new_tokens=192, stop=("<|end|>",), extraction="lenient"),
)

TASK = CodeTask(
    name="code-v0",
    title="Python functions from docstrings",
    goal=(
        "Post-train the base model so that it writes small Python functions from their docstrings, as in "
        "HumanEval. It is evaluated on hidden test problems drawn from the same distribution as "
        "data/dev.jsonl, zero-shot: the prompt is the record's `prompt` as plain text (a `def` line and a "
        "docstring with one example, ending with a newline), with greedy decoding of at most 96 new tokens; "
        "the continuation, cut before the first \"\\ndef \", \"\\nclass \", \"\\nif __name__\", \"\\nprint(\" or "
        "\"\\n#\", is the function's body. A problem counts when the prompt followed by that body defines a "
        "function that passes every one of the problem's hidden tests (pass@1; each test calls the function "
        "and compares its value with the expected one, within 3 seconds). Each record of data/train.jsonl and "
        "data/dev.jsonl has `prompt`, `entry_point` (the function's name) and `visible_tests` (two asserts "
        "like the hidden ones); some train records also have `canonical_solution`, a body that passes the "
        "tests."
    ),
    harnesses=HARNESSES,
    primary_harness="completion",
    embedded_model=SHARED_MODEL,
    scores_file=Path(__file__).parent / "scores.json",
    budget_s=900.0,
)

TASKS = {"v0": TASK}
