"""PTB/bfcl: BFCL v4's 400 `simple_python` function-calling questions (`ptb-gym data prepare bfcl`), each call
AST-matched against BFCL's ground truth by `checker.py` (BFCL's own rules: the right function, every required
parameter, no unknown one, each value of the right type and among the allowed ones).

The train and dev splits are BFCL's `live_simple` questions (user-contributed, none of `simple_python`'s), with
their ground truth and one call that satisfies it; the agent may make data of its own, never from the test
questions (the contamination check).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptb_gym.envs.bfcl import checker
from ptb_gym.envs.task import (
    CHAT_ENDS,
    SHARED_MODEL,
    Harness,
    Prompt,
    Recipe,
    Task,
    fixed_test_split,
)

# BFCL's system prompt for models without native function calling (abridged), in its two output syntaxes.
_SYSTEM = ("You are an expert in composing functions. You are given a question and a set of possible functions. "
           "Based on the question, you will need to make one function call to achieve the purpose.\n\n"
           "{format}\nYou SHOULD NOT include any other text in the response.\n\n"
           "Here is a list of functions in JSON format that you can invoke.\n{functions}\n")
_FORMATS = {"python": "Put the call in the format [func_name(param_name1=value1, param_name2=value2...)]",
            "json": 'Put the call in the format {"name": "func_name", "arguments": {"param_name1": value1, ...}}'}
FEW_SHOT_EXAMPLES = 2
DEV_EVERY = 5
"""Every fifth `live_simple` question is a dev item (52); the others are train items (204)."""


@dataclass(frozen=True)
class BFCLHarness(Harness):
    syntax: str = "python"
    """How the call is written: `python` (`[name(arg=value)]`) or `json`."""


@dataclass(frozen=True)
class BFCLTask(Task):
    def records(self, split: str, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        if split == "test":
            return fixed_test_split(_items("test.jsonl"), n)
        return json.loads(json.dumps(_pool(split)[:n]))

    def prompt(self, item: dict[str, Any], harness: Harness) -> Prompt:
        if harness.chat:
            system = _SYSTEM.format(format=_FORMATS[harness.syntax], functions=json.dumps(item["functions"]))
            return [{"role": "system", "content": system}, {"role": "user", "content": _request(item)}]
        shots = [f"{_plain(shot)} {_python_call(shot['call'])}\n\n" for shot in _shots(harness.shots)]
        return "".join([*shots, _plain(item)])

    def question(self, item: dict[str, Any]) -> str:
        return _request(item)

    def expected(self, item: dict[str, Any]) -> Any:
        return item["ground_truth"]

    @property
    def recipes(self) -> dict[str, Recipe]:
        from ptb_gym.envs.bfcl import recipes

        return recipes.recipes(_SYSTEM.format(format=_FORMATS["python"], functions="<functions>"))

    def score(self, items: Sequence[dict[str, Any]], completions: Sequence[str], harness: Harness) -> list[float]:
        parse = checker.parse_json_calls if harness.syntax == "json" else checker.parse_python_calls
        return [float(checker.check_simple(parse(completion), item["functions"], item["ground_truth"])[0])
                for item, completion in zip(items, completions, strict=True)]


def _request(item: dict[str, Any]) -> str:
    return "\n".join(message["content"] for message in item["messages"] if message["role"] == "user")


def _plain(item: dict[str, Any]) -> str:
    return f"Functions: {json.dumps(item['functions'])}\nRequest: {_request(item)}\nCall:"


def _a_right_call(item: dict[str, Any]) -> dict[str, Any]:
    """A call the ground truth accepts: each parameter's first allowed value, optional ones left out."""
    ((name, allowed),) = item["ground_truth"][0].items()
    return {"name": name, "arguments": _first_allowed(allowed)}


def _first_allowed(allowed: dict[str, list[Any]]) -> dict[str, Any]:
    """Per key, its first allowed value (a dict value's own keys likewise); keys that may be left out are."""
    chosen = {}
    for key, values in allowed.items():
        value = next((v for v in values if v != ""), "")
        if isinstance(value, list) and all(isinstance(v, dict) for v in value) and value:  # a list of dicts
            value = [_first_allowed(v) for v in value]
        if value != "":
            chosen[key] = _first_allowed(value) if isinstance(value, dict) else value
    return chosen


def _python_call(call: dict[str, Any]) -> str:
    return f"[{call['name']}({', '.join(f'{key}={value!r}' for key, value in call['arguments'].items())})]"


@functools.cache
def _items(file: str) -> tuple[dict[str, Any], ...]:
    from ptb_gym import benchmark_data

    return tuple(benchmark_data.records("bfcl", file))


@functools.cache
def _pool(split: str) -> tuple[dict[str, Any], ...]:
    """The `live_simple` questions of a public split, each with a right call (the 2 whose ground truth no call
    satisfies are left out)."""
    pool = [item for i, item in enumerate(_items("train_pool.jsonl")) if (i % DEV_EVERY == 0) == (split == "dev")]
    with_calls = [{**item, "call": _a_right_call(item)} for item in pool]
    return tuple(item for item in with_calls
                 if checker.check_simple(item["call"], item["functions"], item["ground_truth"])[0])


@functools.cache
def _shots(k: int) -> tuple[dict[str, Any], ...]:
    return tuple(TASK.records("train", k))


HARNESSES = (
    BFCLHarness("chat_python", "zero-shot with the chat template: BFCL's prompt for models without native function "
                "calling (the functions as JSON in the system message), the call as `[name(arg=value)]` (primary)",
                chat=True, max_new_tokens=256, stop=CHAT_ENDS),
    BFCLHarness("chat_json", "as `chat_python`, the call written as a JSON object", chat=True, max_new_tokens=256,
                stop=CHAT_ENDS, syntax="json"),
    BFCLHarness("few_shot", f"plain text: {FEW_SHOT_EXAMPLES} train questions with their calls, then `Functions:`, "
                "`Request:` and `Call:`", shots=FEW_SHOT_EXAMPLES, max_new_tokens=256, stop=("\n",)),
)

TASK = BFCLTask(
    name="bfcl-v0",
    title="BFCL v4 simple function calling (real questions)",
    goal=(
        "Post-train the base model so that it answers a request with a call of the function it is offered: it is "
        "evaluated on BFCL v4's `simple_python` questions (hidden; one function, given as a JSON schema, and one "
        "request). The primary evaluation is zero-shot with the base tokenizer's chat template: a system message, "
        "\"" + _SYSTEM.format(format=_FORMATS["python"], functions="<the function's JSON schema, in a list>")
        .replace("\n", "\\n") + "\", and the request as the user message, then greedy decoding of at most 256 new "
        "tokens ended by the end-of-turn token. The reply must be the call, `[name(param=value, ...)]` with "
        "Python literals; it counts as BFCL's AST checker counts it: the right function, every required parameter "
        "and no unknown one, each value of the schema's type and one of the values the ground truth allows "
        "(strings compared without case, spaces and punctuation). data/train.jsonl and data/dev.jsonl are "
        "BFCL's `live_simple` questions (not the test's), each with `messages`, `functions`, `ground_truth` (per "
        "parameter, the allowed values; \"\" means it may be left out) and `call`, one call that is right."
    ),
    harnesses=HARNESSES,
    primary_harness="chat_python",
    embedded_model=SHARED_MODEL,
    scores_file=Path(__file__).parent / "scores.json",
    budget_s=1200.0,
)

TASKS = {"v0": TASK}
