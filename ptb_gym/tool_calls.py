"""Tool calls written as text, the way small open models emit them, read into the action `env.step` takes.

A model served without a tool-call parser (a vLLM or llama.cpp server started without one, a base model's
completion) writes its call in the reply's text. `parse_tool_call(text, tools)` finds it in the forms such models
use, in this order of precedence:

1. Hermes / Qwen tags: `<tool_call>{"name": "train", "arguments": {...}}</tool_call>` (a missing closing tag is
   accepted: servers often stop on it);
2. a code fence, ```json ... ``` or a bare ``` ... ```, holding the JSON object (or a Python-style call);
3. a JSON object in prose: `First I list the files: {"name": "list_files", "arguments": {}}`;
4. a Python-style call of a tool by name: `train(data="data/sft.jsonl", max_steps=200)`, read with `ast` (literal
   values only: strings, numbers, True/False/None or true/false/null, lists, dicts; never evaluated). Positional
   arguments take the schema's parameter order.

A JSON call is `{"name": ..., "arguments": {...}}`, with `"tool"` for `"name"`, `"parameters"` for `"arguments"`
(Llama 3's form), the arguments an object or its JSON string, or an OpenAI `{"function": {...}}` entry; a JSON
array of calls counts as its calls. Reasoning (`<think>...</think>`, or everything before a lone `</think>`) is
skipped.

**One call per reply.** The first call of the first form present is returned; the rest of the reply is ignored,
never run, and `TextToolCall.ignored` counts the further calls of that form, so that a loop can tell the model
that only the first one ran. A `<tool_call>` tag is decisive: when the first block is malformed, the reply is an
error, not a fallback to a JSON object elsewhere in the prose. In the other forms, text that is not a call (a
code fence with a script, a JSON record) is passed over.

What comes back is checked by the env's own parser (`protocol.parse_action`: sizes, depth, plain JSON values)
and names a tool of `tools`; the arguments are checked against the tool's schema by `env.step`, as for any
action. When nothing parses, `ToolError` says what was wrong (the JSON error with its position and the text
there, an unknown tool with a did-you-mean, an argument that is not a literal) and which forms are accepted,
with an example for a tool of the episode: send its message back to the model as the next user message.

Hostile text cannot crash or stall the parser: a reply is read up to `MAX_REPLY_CHARS`, every scan is linear,
at most `MAX_CANDIDATES` places per form are decoded (decoded regions are skipped, not decoded again), each at
most `MAX_ACTION_CHARS` long, and deep nesting, huge numbers, NUL bytes or lone surrogates end as a ToolError.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ptb_gym.errors import ToolError, did_you_mean
from ptb_gym.protocol import MAX_ACTION_CHARS, MAX_TOOL_NAME_CHARS, Tool, parse_action

MAX_REPLY_CHARS = 2 * MAX_ACTION_CHARS
"""Longest reply read: room for one maximal action and as much prose again."""
MAX_CANDIDATES = 32
"""Most places decoded per form (tag blocks, fences, JSON objects, Python calls): bounds the work on any text."""
_MAX_CALL_SITES = 1_000
"""Most `name(` places looked at for a Python-style call (each is a dictionary look-up)."""

_JSON_START = re.compile(r'\{\s*"')
_CALL_SITE = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(")
_FENCE_TAG = re.compile(r"[\w+.-]{0,20}")
_INLINE_TAG = re.compile(r"[A-Za-z][\w+.-]{0,19}[ \t]+(?=[\[{])")
_CALL_KEYS = ('"name"', '"tool"', '"function"')
_JSON_NAMES = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class TextToolCall:
    """A tool call read from a reply's text."""

    action: dict[str, Any]
    """The action for `env.step`: `{"tool": name, "arguments": {...}}`."""
    form: str
    """Where it was found: "hermes" (a <tool_call> tag), "fence", "json" (an object in prose) or "python"."""
    ignored: int = 0
    """Further calls of the same form in the reply, not run (one call per step)."""


def parse_tool_call(text: Any, tools: Iterable[Mapping[str, Any] | str | Tool]) -> TextToolCall:
    """Read the first tool call of a model's reply, or raise `ToolError` with a message the model can act on.

    Args:
        text: The reply's text (the message's `content`); None or an empty text is an error.
        tools: The episode's tools: `info["tools"]` (OpenAI schemas), tool names or `Tool`s.
    """
    catalog = _Catalog(tools)
    text = _reply_text(text, catalog)
    problem: str | None = None
    for form, found, decisive in (("hermes", _tagged(text, catalog), True), ("fence", _fenced(text, catalog), False),
                                  ("json", _json_objects(text, "the JSON object at position {}"), False),
                                  ("python", _python_calls(text, catalog, "the call at position {}"), False)):
        for where, call, attempt_problem in found:
            if call is not None:
                try:
                    action = catalog.action(call)
                except ToolError as error:
                    attempt_problem = str(error)
                else:
                    return TextToolCall(action, form, sum(1 for _, other, _ in found if other is not None))
            problem = problem or f"{where}: {attempt_problem}"
            if decisive:
                raise catalog.error(problem)
    raise catalog.error(problem or "it holds no tool call (no <tool_call> tag, no JSON object with a \"name\", "
                                   "no call of a tool by name)")


# ---------------------------------------------------------------------------------------------- the forms

# Each form yields (where, call, problem): a call-shaped dict (call), or a failed attempt at one (problem).
Found = Iterator[tuple[str, dict[str, Any] | None, str | None]]


def _tagged(text: str, catalog: _Catalog) -> Found:
    """`<tool_call>` blocks: each ends at `</tool_call>`, at the next `<tool_call>` or at the end of the text."""
    start, count = text.find("<tool_call>"), 0
    while start != -1 and count < MAX_CANDIDATES:
        count += 1
        body_start = start + len("<tool_call>")
        ends = [i for i in (text.find("</tool_call>", body_start), text.find("<tool_call>", body_start)) if i != -1]
        end = min(ends) if ends else len(text)
        where = "the <tool_call> block" if count == 1 else f"<tool_call> block {count}"
        yielded = False
        for item in _segment(_unfence(text[body_start:end]), where, catalog, any_name=True):
            yielded = True
            yield item
        if not yielded:
            yield where, None, f"it holds no tool call: {_excerpt(text[body_start:end].strip())!r}"
        start = text.find("<tool_call>", end)


def _fenced(text: str, catalog: _Catalog) -> Found:
    """Code fences (``` ... ```), paired in order; the language tag (json, python, none) is skipped."""
    opening, count = text.find("```"), 0
    while opening != -1 and count < MAX_CANDIDATES:
        closing = text.find("```", opening + 3)
        if closing == -1:
            closing = len(text)  # a reply cut off inside its fence
        count += 1
        yield from _segment(_unfence(text[opening:closing + 3]), f"code fence {count}", catalog, any_name=False)
        opening = text.find("```", closing + 3)


def _segment(body: str, where: str, catalog: _Catalog, *, any_name: bool) -> Found:
    """The calls in a block's or a fence's text: a JSON value, else Python-style calls (of any name with
    `any_name`: a <tool_call> block is meant as a call, a fence may hold a script)."""
    body = body.strip()
    if body[:1] in ("{", "["):
        try:
            value = _loads(body)
        except ToolError as error:
            yield where, None, str(error)
            return
        yield from _calls_of(value, where)
    else:
        yield from _python_calls(body, catalog, where, any_name=any_name)


def _json_objects(text: str, where: str) -> Found:
    """JSON objects in prose: each `{"` is tried (at most MAX_CANDIDATES of them), skipping decoded regions."""
    decoder, resume, tries = json.JSONDecoder(), 0, 0
    for match in _JSON_START.finditer(text):
        if match.start() < resume:
            continue
        if tries == MAX_CANDIDATES:
            return
        tries += 1
        try:
            value, end = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError) as error:
            if any(key in text[match.start():match.start() + 200] for key in _CALL_KEYS):  # an attempt at a call
                yield where.format(match.start()), None, _json_problem(error, text, match.start())
            continue
        resume = end
        yield from _calls_of(value, where.format(match.start()))


def _calls_of(value: Any, where: str) -> Found:
    """A decoded JSON value's calls: a call-shaped object, or the call-shaped objects of an array."""
    for item in (value if isinstance(value, list) else [value])[:MAX_CANDIDATES]:
        if isinstance(item, dict) and any(key in item for key in ("name", "tool", "function")):
            yield where, item, None


def _python_calls(text: str, catalog: _Catalog, where: str, *, any_name: bool = False) -> Found:
    """Python-style calls `name(...)` of a known tool (of any name with `any_name`); a near miss of a tool's name
    is a failed attempt."""
    resume = parsed = 0
    for index, match in enumerate(_CALL_SITE.finditer(text)):
        if index == _MAX_CALL_SITES or parsed == MAX_CANDIDATES:
            return
        name = match.group(1)
        if match.start() < resume or len(name) > MAX_TOOL_NAME_CHARS:
            continue
        place = where.format(match.start())
        if not any_name and name not in catalog.parameters:
            hint = did_you_mean(name, catalog.parameters)
            if hint:
                yield place, None, f"{name!r} is not a tool.{hint}"
            continue
        parsed += 1
        end = _closing_paren(text, match.end() - 1)
        if end is None:
            yield place, None, f"the call {_excerpt(text[match.start():])!r} has no closing parenthesis"
            return
        resume = end
        try:
            yield place, _python_call(text[match.start():end], catalog), None
        except ToolError as error:
            yield place, None, str(error)


def _python_call(source: str, catalog: _Catalog) -> dict[str, Any]:
    """`name(arg, key=value, ...)` as {"name", "arguments"}, literals only; positional arguments take the order of
    the tool's parameters."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        raise ToolError(f"{_excerpt(source)!r} is not a Python call ({error.msg}, column {error.offset})") from None
    except (RecursionError, MemoryError):
        raise ToolError(f"the call {_excerpt(source)!r} is nested too deeply") from None
    except Exception as error:  # noqa: BLE001 - NUL bytes, lone surrogates, a 5,000-digit number
        raise ToolError(f"the call {_excerpt(source)!r} could not be read ({type(error).__name__}: "
                        f"{_excerpt(str(error), 120)})") from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ToolError(f"{_excerpt(source)!r} is not a call of a tool by name")
    arguments: dict[str, Any] = {}
    name, order = call.func.id, catalog.parameters.get(call.func.id)
    if call.args and order is not None:  # an unknown name is refused by the catalog, whatever its arguments
        if not order:
            raise ToolError(f"{name}() takes its arguments by name: write name=value")
        if len(call.args) > len(order):
            raise ToolError(f"{name}() takes at most {len(order)} arguments ({', '.join(order)}), got "
                            f"{len(call.args)} positional ones")
        for key, node in zip(order, call.args):
            arguments[key] = _literal(node, f"{name}() argument {key!r}")
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ToolError(f"{call.func.id}() is given **{ast.unparse(keyword.value)[:40]}: write each argument "
                            "as name=value")
        if keyword.arg in arguments:
            raise ToolError(f"{name}() got argument {keyword.arg!r} twice")
        arguments[keyword.arg] = _literal(keyword.value, f"{name}() argument {keyword.arg!r}")
    return {"name": name, "arguments": arguments}


def _literal(node: ast.AST, where: str) -> Any:
    """A literal's JSON value (recursion is bounded by the tokenizer's 200 levels of brackets)."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, bool, int, float))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float)):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(element, where) for element in node.elts]
    if isinstance(node, ast.Dict):
        result = {}
        for key, value in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise ToolError(f"{where}: dict keys must be strings")
            result[key.value] = _literal(value, where)
        return result
    shown = ast.unparse(node) if isinstance(node, ast.AST) else repr(node)
    raise ToolError(f"{where} is {_excerpt(shown, 60)!r}, which is not a literal: write the value itself (a string, "
                    "number, true/false, null, list or dict); nothing is evaluated")


def _closing_paren(text: str, opening: int) -> int | None:
    """The index after the parenthesis that closes the one at `opening`, skipping Python strings; None if none
    within MAX_ACTION_CHARS."""
    depth, i, limit = 0, opening, min(len(text), opening + MAX_ACTION_CHARS)
    while i < limit:
        char = text[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif char in "\"'":
            quote = char * 3 if text.startswith(char * 3, i) else char
            i += len(quote)
            while i < limit and not text.startswith(quote, i):
                i += 2 if text[i] == "\\" else 1
            i += len(quote) - 1
        i += 1
    return None


def _unfence(body: str) -> str:
    """A fence's content without the backticks and the language tag (also inside a <tool_call> block)."""
    body = body.strip()
    if not body.startswith("```"):
        return body
    body = body[3:-3] if body.endswith("```") and len(body) >= 6 else body[3:]
    tag, newline, rest = body.partition("\n")
    if newline and _FENCE_TAG.fullmatch(tag.strip()):
        return rest
    inline = _INLINE_TAG.match(body)  # ```json {"name": ...}``` on one line
    return body[inline.end():] if inline else body


# ---------------------------------------------------------------------------------------- JSON and the tools

def _loads(body: str) -> Any:
    if len(body) > MAX_ACTION_CHARS:
        raise ToolError(f"it is {len(body):,} characters long; an action is at most {MAX_ACTION_CHARS:,}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise ToolError(_json_problem(error, body, 0)) from None


def _json_problem(error: Exception, text: str, start: int) -> str:
    if isinstance(error, json.JSONDecodeError):
        position = error.pos - start
        return (f"not valid JSON ({error.msg} at position {position}, near "
                f"{_excerpt(text[max(start, error.pos - 30):error.pos + 10], 60)!r})")
    if isinstance(error, RecursionError):
        return "the JSON is nested too deeply"
    return f"not usable JSON ({_excerpt(str(error), 120)})"


class _Catalog:
    """The episode's tools: names, parameter order (for positional arguments) and an example call."""

    def __init__(self, tools: Iterable[Mapping[str, Any] | str | Tool]):
        self.parameters: dict[str, list[str]] = {}
        self.schemas: dict[str, Mapping[str, Any]] = {}
        for item in tools:
            if isinstance(item, Tool):
                item = item.schema
            if isinstance(item, str):
                self.parameters[item] = []
                continue
            function = item.get("function", item)
            parameters = function.get("parameters") or {}
            self.parameters[function["name"]] = list(parameters.get("properties", {}))
            self.schemas[function["name"]] = parameters
        if not self.parameters:
            raise ValueError("parse_tool_call needs the episode's tools (info['tools']), got none")

    def action(self, call: dict[str, Any]) -> dict[str, Any]:
        """A call-shaped dict as the env's action, checked by `parse_action`; ToolError if it is not one."""
        call = call["function"] if isinstance(call.get("function"), dict) else call
        call = dict(call)
        if "arguments" not in call and "parameters" in call:
            call["arguments"] = call.pop("parameters")
        parsed = parse_action(call)
        if parsed.name not in self.parameters:
            raise ToolError(f"unknown tool {parsed.name!r}.{did_you_mean(parsed.name, self.parameters)}")
        return {"tool": parsed.name, "arguments": parsed.arguments}

    def error(self, problem: str) -> ToolError:
        name, arguments = self.example()
        call_json = json.dumps({"name": name, "arguments": arguments})
        python = f"{name}({', '.join(f'{key}={json.dumps(value)}' for key, value in arguments.items())})"
        problem = problem.strip()
        return ToolError(
            f"No tool call could be read from your reply: {problem}{'' if problem[-1:] in '.?!' else '.'} "
            f"Send one tool call per reply, as "
            f"<tool_call>{call_json}</tool_call>, or the same JSON object in a ```json code fence or on its own, "
            f"or as a Python call: {python}. Tools: {', '.join(self.parameters)}.")

    def example(self) -> tuple[str, dict[str, Any]]:
        """A tool of the episode (list_files where there is one) with plausible arguments."""
        name = "list_files" if "list_files" in self.parameters else next(iter(self.parameters))
        schema = self.schemas.get(name, {})
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if required:
            placeholders = {"string": "...", "integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}
            return name, {key: placeholders.get(properties.get(key, {}).get("type"), "...") for key in required}
        defaults = [(key, spec["default"]) for key, spec in properties.items() if "default" in spec]
        return name, dict(defaults[:1])


def _reply_text(text: Any, catalog: _Catalog) -> str:
    """The reply as an exact str, its reasoning skipped; ToolError when there is none to read."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise catalog.error(f"it is not UTF-8 text (byte {error.start})") from None
    if text is None or not isinstance(text, str):
        raise catalog.error("it has no text" if text is None else f"it is a {type(text).__name__}, not text")
    text = str.__str__(text)
    if len(text) > MAX_REPLY_CHARS:
        raise catalog.error(f"it is {len(text):,} characters long; a reply is read up to {MAX_REPLY_CHARS:,}")
    closing = text.rfind("</think>")
    if closing != -1:
        text = text[closing + len("</think>"):]
    elif "<think>" in text:
        text = text[:text.find("<think>")]
        if not text.strip():
            raise catalog.error("it ended inside <think>, before any call: finish the reasoning, then call a tool")
    if not text.strip():
        raise catalog.error("it is empty")
    return text


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
