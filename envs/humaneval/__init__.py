"""PTB/humaneval: the 164 HumanEval problems (`ptb-gym data prepare humaneval`), pass@1, executed in the scoring
sandbox of `ptb_gym.execution`, never in the trusted process.

A program passes when HumanEval's own test (`check(candidate)`) runs to its end in the sandbox, and, for its
asserts of the form `assert candidate(...) == <literal>` (1,075 of 1,181), when the value the function returns,
sent back as JSON, equals the literal outside the sandbox: a completion cannot pass those by returning an object
whose `__eq__` always holds. The train and dev splits are the generated problems of `PTB/code` (none of
HumanEval's); the agent may make its own data, never from HumanEval's problems (the contamination check).
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptb_gym.envs.code import FEW_SHOT_EXAMPLES
from ptb_gym.envs.task import (
    CHAT_ENDS,
    SHARED_MODEL,
    Harness,
    Prompt,
    Recipe,
    Task,
    fixed_test_split,
)

_INSTRUCTION = ("Read the following function signature and docstring, and fully implement the function described. "
                "Your response should only contain the code for this function.\n\n{prompt}")
# HumanEval's stop sequences (the Codex paper's), for a plain-text completion of the body
_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
_PROBE_NAMES = frozenset(dir(builtins)) | {"candidate"}
_FENCED = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


@dataclass(frozen=True)
class HumanEvalTask(Task):
    def records(self, split: str, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        if split == "test":
            return fixed_test_split(_test_items(), n)
        from ptb_gym.envs import code

        return code.TASK.records(split, n)

    def prompt(self, item: dict[str, Any], harness: Harness) -> Prompt:
        if harness.chat:
            return [{"role": "user", "content": _INSTRUCTION.format(prompt=item["prompt"])}]
        from ptb_gym.envs import code

        return code.TASK.prompt(item, harness)  # the train problems' solutions as shots, then the prompt

    def question(self, item: dict[str, Any]) -> str:
        return item["prompt"]

    def expected(self, item: dict[str, Any]) -> Any:
        return item.get("test", item.get("visible_tests"))

    @property
    def recipes(self) -> dict[str, Recipe]:
        from ptb_gym.envs.humaneval import recipes

        return recipes.recipes(_INSTRUCTION)

    def score(self, items: Sequence[dict[str, Any]], completions: Sequence[str], harness: Harness) -> list[float]:
        """1.0 for a completion whose program passes the item's tests (HumanEval's, or a dev item's asserts)."""
        from ptb_gym.execution import check_asserts, run_tests

        programs = [_program(item, completion, harness) for item, completion in zip(items, completions, strict=True)]
        if not all("test" in item for item in items):  # dev items: the generated problems' asserts
            return [float(ok) for ok in check_asserts(programs, [item["visible_tests"] for item in items])]
        ran = run_tests([f"{program}\n\n{item['test']}\n\ncheck({item['entry_point']})\n"
                         for program, item in zip(programs, items)])
        values = check_asserts([f"{program}\n\ncandidate = {item['entry_point']}\n"
                                for program, item in zip(programs, items)],
                               [_value_asserts(item["test"]) for item in items])
        return [float(a and b) for a, b in zip(ran, values)]


def _program(item: dict[str, Any], completion: str, harness: Harness) -> str:
    """The prompt, then the completion (plain text) or the reply's first code block, else the reply (chat), as
    inspect_evals runs HumanEval: a reply that redefines the function replaces the prompt's."""
    if not harness.chat:
        return item["prompt"] + completion
    block = _FENCED.search(completion)
    return item["prompt"] + "\n" + (block.group(1) if block else completion)


@functools.cache
def _value_asserts(test: str) -> tuple[str, ...]:
    """The asserts of `check` that compare what the function returns with a literal, on their own: only names of
    builtins and `candidate` (none of the test's own variables)."""
    (check,) = [node for node in ast.parse(test).body if isinstance(node, ast.FunctionDef) and node.name == "check"]
    found = []
    for node in check.body:
        if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
                and isinstance(node.test.ops[0], ast.Eq)):
            continue
        names = {n.id for n in ast.walk(node.test.left) if isinstance(n, ast.Name)}
        try:
            ast.literal_eval(node.test.comparators[0])
        except ValueError:
            continue
        if "candidate" in names and names <= _PROBE_NAMES:
            found.append(f"assert {ast.unparse(node.test)}")
    return tuple(found)


@functools.cache
def _test_items() -> tuple[dict[str, Any], ...]:
    from ptb_gym import benchmark_data

    return tuple(benchmark_data.records("humaneval", "test.jsonl"))


HARNESSES = (
    Harness("instruct", "zero-shot with the chat template: asked to implement the function; the program is the "
            "prompt, then the reply's first ```python block, else the reply (primary)", chat=True,
            max_new_tokens=512, stop=CHAT_ENDS),
    Harness("few_shot", f"plain text: {FEW_SHOT_EXAMPLES} solved train problems, then the prompt; the "
            "completion is the body", shots=FEW_SHOT_EXAMPLES, max_new_tokens=384, stop=_STOP),
    Harness("completion", "zero-shot plain text, as the Codex paper ran HumanEval: the prompt, then its body",
            max_new_tokens=384, stop=_STOP),
)

TASK = HumanEvalTask(
    name="humaneval-v0",
    title="HumanEval (real problems)",
    goal=(
        "Post-train the base model so that it writes Python functions from their signature and docstring: it is "
        "evaluated on HumanEval's 164 problems (hidden), pass@1. The primary evaluation is zero-shot with the "
        "base tokenizer's chat template: one user message, \"" + _INSTRUCTION.replace("\n", "\\n").replace(
            "{prompt}", "<the problem's prompt: imports, a def line and a docstring>") + "\", then greedy decoding "
        "of at most 512 new tokens ended by the end-of-turn token. The program is the prompt followed by the reply's "
        "first ```python code block (the whole reply when it has none), so a reply may give the body or the "
        "whole function; it passes when HumanEval's unit tests of the problem all hold (run in a "
        "sandbox, a few seconds each). data/train.jsonl and data/dev.jsonl are generated problems (not "
        "HumanEval's) with `prompt`, `entry_point`, `visible_tests` (asserts) and, for some, "
        "`canonical_solution` (a body that passes); other data you make is allowed, except HumanEval's "
        "problems: the final model's data is checked for them."
    ),
    harnesses=HARNESSES,
    primary_harness="instruct",
    embedded_model=SHARED_MODEL,
    scores_file=Path(__file__).parent / "scores.json",
    budget_s=1200.0,
)

TASKS = {"v0": TASK}
