"""PTB/tools: function calling in the manner of BFCL's simple category, generated from seeds (`problems.py`).

The model is offered three functions and a request, and writes the call as JSON; a call counts when it names
the right function with exactly the right arguments, each of the right JSON type. The train split asks for a
third of the functions only: training on it as it is, is the obvious recipe; making data for every function
of data/functions.json is the better one (`recipes.py`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptb_gym.envs.task import SHARED_MODEL, Harness, Prompt, Recipe, Task

FEW_SHOT_EXAMPLES = 2
MAX_CALL_CHARS = 4000
"""Longer completions are not parsed (a hostile completion must cost the scorer nothing)."""
_SYSTEM = ("You can call these functions, described as JSON schemas:\n{schemas}\nReply with one call as JSON: "
           '{{"name": <function name>, "arguments": {{<argument>: <value>, ...}}}}.')


@dataclass(frozen=True)
class ToolsHarness(Harness):
    syntax: str = "json"
    """How the call is written: `json` (`{"name": ..., "arguments": {...}}`) or `python` (`name(arg=value)`)."""


@dataclass(frozen=True)
class ToolsTask(Task):
    def records(self, split: str, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        return json.loads(json.dumps(_records(split, n, seed)))  # deep copies: callers may edit them

    def prompt(self, item: dict[str, Any], harness: Harness) -> Prompt:
        from ptb_gym.envs.tools import functions, problems

        if harness.chat:
            schemas = "\n".join(json.dumps(functions.schema(functions.BY_NAME[name])) for name in item["functions"])
            return [{"role": "system", "content": _SYSTEM.format(schemas=schemas)},
                    {"role": "user", "content": item["request"]}]
        if harness.syntax == "python":
            return problems.task_prompt(item["functions"], item["request"]).removesuffix("Call:") + "Python call:"
        return "\n\n".join([*_shots(harness.shots), item["prompt"]])

    def expected(self, item: dict[str, Any]) -> Any:
        return json.dumps(item["call"])

    def public_files(self) -> dict[str, bytes]:
        from ptb_gym.envs.tools import functions

        schemas = [functions.schema(f) for f in functions.FUNCTIONS]
        return {"data/functions.json": (json.dumps(schemas, indent=1) + "\n").encode()}

    @property
    def recipes(self) -> dict[str, Recipe]:
        from ptb_gym.envs.tools import recipes

        return recipes.RECIPES[self.name]

    def score(self, items: Sequence[dict[str, Any]], completions: Sequence[str], harness: Harness) -> list[float]:
        """1.0 for a completion whose call is the expected one: same function, same arguments, same types."""
        return [float(_call(completion, harness) == _typed(item["call"]))
                for item, completion in zip(items, completions, strict=True)]


def _typed(value: Any) -> Any:
    """`value` with every scalar tagged by its type, so that `1 == True == 1.0` and `"5" != 5` are told apart."""
    if isinstance(value, dict):
        return {key: _typed(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _call(completion: str, harness: Harness) -> Any:
    """The call a completion writes, typed as `_typed` does; None when it writes none."""
    text = completion.strip()[:MAX_CALL_CHARS]
    try:
        if harness.syntax == "python":
            call = _python_call(text)
        else:
            start = text.find("{")
            call, _ = json.JSONDecoder().raw_decode(text[start:]) if start >= 0 else (None, 0)
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
        return None
    if not (isinstance(call, dict) and set(call) == {"name", "arguments"} and isinstance(call["arguments"], dict)):
        return None
    return _typed(call)


def _python_call(text: str) -> dict[str, Any] | None:
    """`name(key=literal, ...)` as `{"name": ..., "arguments": {...}}`; anything else is None."""
    tree = ast.parse(text.split("\n", 1)[0], mode="eval").body
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and not tree.args):
        return None
    if any(keyword.arg is None for keyword in tree.keywords):
        return None
    return {"name": tree.func.id,
            "arguments": {keyword.arg: ast.literal_eval(keyword.value) for keyword in tree.keywords}}


@functools.lru_cache(maxsize=8)
def _records(split: str, n: int, seed: int | None) -> tuple[dict[str, Any], ...]:
    from ptb_gym.envs.tools import problems

    return tuple(problems.split(split, n, seed))


@functools.lru_cache(maxsize=4)
def _shots(k: int) -> tuple[str, ...]:
    return tuple(f"{r['prompt']} {json.dumps(r['call'])}" for r in _records("train", k, None))


HARNESSES = (
    ToolsHarness("json", "zero-shot; the prompt lists the functions and the request, the completion is the call "
                 "as JSON (primary)", max_new_tokens=64, stop=("\n",)),
    ToolsHarness("few_shot", f"{FEW_SHOT_EXAMPLES} train items with their calls before the prompt",
                 shots=FEW_SHOT_EXAMPLES, max_new_tokens=64, stop=("\n",)),
    ToolsHarness("python", "zero-shot; the prompt ends `Python call:` and the call is read as `name(arg=value)`",
                 max_new_tokens=64, stop=("\n",), syntax="python"),
    ToolsHarness("chat_json", "chat: the functions' JSON schemas in the system message, the request as the user's; "
                 "the call is the first JSON object of the reply", chat=True, max_new_tokens=96, stop=("<|end|>",)),
)

TASK = ToolsTask(
    name="tools-v0",
    title="Function calling",
    goal=(
        "Post-train the base model so that it answers a request by calling one of the functions it is offered, "
        "as in BFCL's simple category. It is evaluated on hidden test items drawn from the same distribution "
        "as data/dev.jsonl, zero-shot: the prompt is the record's `prompt` as plain text (a `Functions:` list "
        "of three functions, each `- name(parameter: type, optional?: type): description`, then "
        "`Request: <request>` and `Call:` on their own lines), with greedy decoding of at most 64 new tokens "
        "cut at the first newline. The completion must hold the call as one JSON object, "
        '`{\"name\": <function>, \"arguments\": {<parameter>: <value>, ...}}`, and counts when it names the '
        "function the request asks for with exactly the arguments the request gives (no others), integers "
        "as JSON numbers and strings as the request spells them. Each record of data/train.jsonl and "
        "data/dev.jsonl has `prompt`, `functions` (the names on offer), `request` and `call` (the expected "
        "call); data/functions.json holds the JSON schema of every function an item may offer."
    ),
    harnesses=HARNESSES,
    primary_harness="json",
    embedded_model=SHARED_MODEL,
    scores_file=Path(__file__).parent / "scores.json",
    budget_s=1200.0,
)

V1 = dataclasses.replace(TASK, name="tools-v1", scores_file=Path(__file__).parent / "scores-v1.json", budget_s=1800.0)
"""tools-v0 with a stronger reference (`recipes.py`: 1,200 steps where v0's took 800, which left it at 59.4%, under
the 60% a reference must reach) and the budget for it; the items, harnesses and base model are v0's."""

TASKS = {"v0": TASK, "v1": V1}
