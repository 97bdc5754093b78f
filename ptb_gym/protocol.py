"""The tool protocol: typed functions become tools, and agents' actions become tool calls.

A tool is a plain function whose first parameter is the episode it acts on; its other parameters are what
the agent passes. The OpenAI function schema comes from the signature and the Google-style docstring, so one
text serves the human reader and the model (the habit of Inspect AI's `@tool`)::

    @tool
    def read_file(episode: Episode, path: str, max_chars: int = 20_000) -> str:
        '''Read a text file of the workspace.

        Args:
            path: Path relative to the workspace root.
            max_chars: Longest text returned; longer files are cut head+tail.
        '''

Actions arrive in any of the forms agents produce (`parse_action`): a dict `{"tool": ..., "arguments": ...}`,
its JSON string, or an OpenAI `tool_calls` entry (dict or SDK object). Anything malformed raises `ToolError`
with a message that says how to fix it; the env shows it to the agent as the observation.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ptb_gym.errors import ToolError, did_you_mean

ACTION_EXAMPLE = '{"tool": "list_files", "arguments": {"path": "."}}'
OPENAI_EXAMPLE = '{"id": "call_1", "type": "function", "function": {"name": "list_files", "arguments": "{}"}}'

MAX_ACTION_CHARS = 200_000
"""Longest action: its text as sent, or its compact JSON; a tool call may carry a script or a batch of records."""
MAX_ACTION_DEPTH = 64
"""Deepest nesting of arrays and objects in an action (records of records are a few levels)."""
MAX_TOOL_NAME_CHARS = 128
"""Longest tool name accepted (OpenAI's limit is 64); a longer one is not worth a did-you-mean search."""
MAX_INT = 2**63 - 1
"""Largest integer (in size) in an action: numbers beyond 64 bits mean nothing to any tool."""
_TOP = "the top level"
_SURROGATE = re.compile("[\\ud800-\\udfff]")


@dataclass
class ToolResult:
    """What a tool returns when it has more to say than text: `info` lands in the step's info dict."""

    text: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """One parsed action."""

    name: str
    arguments: dict[str, Any]
    call_id: str | None = None


@dataclass(frozen=True)
class Tool:
    """A function the agent can call, with its OpenAI function schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., str | ToolResult]

    @property
    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI's function-calling format."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def __call__(self, episode: Any, arguments: Mapping[str, Any]) -> ToolResult:
        result = self.function(episode, **self.validate(arguments))
        return result if isinstance(result, ToolResult) else ToolResult(str(result))

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check the agent's arguments against the schema; coerce what is unambiguous ("5" -> 5)."""
        properties = self.parameters["properties"]
        if not isinstance(arguments, Mapping):
            raise ToolError(f"The arguments of {self.name}() must be an object, got {_json_kind(arguments)}.")
        try:
            arguments = {str.__str__(key) if isinstance(key, str) else key: value for key, value in arguments.items()}
        except Exception as error:  # noqa: BLE001 - a mapping that cannot be read is the caller's mistake
            raise ToolError(f"The arguments of {self.name}() could not be read ({type(error).__name__}).") from None
        unknown = [name for name in arguments if not isinstance(name, str) or name not in properties]
        if unknown:
            shown = unknown[0] if isinstance(unknown[0], str) else _safe_repr(unknown[0])
            raise ToolError(
                f"{self.name}() got unknown argument {_clip(shown, 80)!r}."
                f"{did_you_mean(shown, properties) if len(shown) <= MAX_TOOL_NAME_CHARS else ''} "
                f"Its arguments are: {', '.join(properties) or 'none'}."
            )
        missing = [name for name in self.parameters.get("required", []) if name not in arguments]
        if missing:
            raise ToolError(f"{self.name}() is missing required argument {missing[0]!r}. {self._usage()}")
        return {name: _coerce(self.name, name, value, properties[name]) for name, value in arguments.items()}

    def _usage(self) -> str:
        parts = [f"{name}: {spec.get('type', 'any')}" for name, spec in self.parameters["properties"].items()]
        return f"Usage: {self.name}({', '.join(parts)})."


def tool(function: Callable[..., str | ToolResult]) -> Tool:
    """Make a tool of a typed function whose first parameter is the episode."""
    summary, arg_docs = _parse_docstring(inspect.getdoc(function) or "")
    hints = typing.get_type_hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in list(inspect.signature(function).parameters.values())[1:]:
        if parameter.name not in arg_docs:
            raise TypeError(f"tool {function.__name__}: parameter {parameter.name!r} has no docstring entry")
        properties[parameter.name] = {**_json_type(hints[parameter.name]), "description": arg_docs[parameter.name]}
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
        elif parameter.default is not None:
            properties[parameter.name]["default"] = parameter.default
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return Tool(function.__name__, summary, parameters, function)


def parse_action(action: Any) -> ToolCall:
    """Turn any supported action form into a `ToolCall`, or raise `ToolError` saying how to fix it.

    Never raises anything else, whatever `action` is (any JSON-like value, bytes, a str, an SDK object whose
    attributes raise, huge or deeply nested input). The call's arguments come back as plain JSON data (exact
    `dict`, `list`, `str`, `int`, `float`, `bool`, None; finite numbers, 64-bit integers, valid Unicode), at
    most `MAX_ACTION_DEPTH` levels deep, the action at most `MAX_ACTION_CHARS` characters as text (or as
    compact JSON when it is not text), so tools and the recorder can use them without further checks.
    Not guaranteed: that the tool exists or that the arguments fit its schema (see `Tool.validate`).
    """
    try:
        return _parse_action(action)
    except ToolError:
        raise
    except RecursionError:
        raise ToolError(f"The action is nested too deeply; at most {MAX_ACTION_DEPTH} levels are accepted. "
                        f"Send one tool call, for example {ACTION_EXAMPLE}") from None
    except Exception as error:  # noqa: BLE001 - an odd object from the agent is its mistake, not the env's crash
        raise ToolError(f"The action could not be read ({type(error).__name__}: {_clip(_safe_str(error))}). "
                        f"Send one tool call as a dict or its JSON string, for example {ACTION_EXAMPLE}") from None


def action_for_record(action: Any) -> Any:
    """The action as a recording can store it: JSON data, bounded in size and depth; never raises.

    A str is kept as sent when it fits `MAX_ACTION_CHARS` (else its head and tail); other values become their
    plain JSON form when they are well formed and within the limits, else a clipped `repr` (say, a bytes
    action, an object whose attributes raise, a 10 MB dict). Not the parsed call: use `parse_action` for that.
    """
    try:
        if isinstance(action, str):
            return _escape_surrogates(_clip(str.__str__(action), MAX_ACTION_CHARS))
        if isinstance(action, (Mapping, list, tuple, bool, int, float)) or action is None:
            try:
                return _plain(action, measure=True)
            except ToolError:
                pass
        return _clip(_safe_repr(action), 2_000)
    except Exception:  # noqa: BLE001 - recording must not fail on an odd value
        return f"<unrecordable {type(action).__name__} action>"


def _parse_action(action: Any) -> ToolCall:
    action = _single(action)  # e.g. an SDK message's `tool_calls` list of one
    if isinstance(action, (str, bytes, bytearray, memoryview)):
        # The text is within the limit, so what it decodes to is too: no second measure.
        action = _single(_plain(_decode_json(_text_of(action), "The action is"), measure=False))
    else:
        if not isinstance(action, (Mapping, list, tuple)) and _has_attribute(action, "function"):
            action = _sdk_tool_call(action)  # an OpenAI SDK tool-call object (pydantic model, dataclass, namespace)
        action = _plain(action, measure=True)
    if not isinstance(action, dict):
        raise ToolError(
            f"An action must be a tool call (a dict or its JSON string), got {_json_kind(action)}: "
            f"{_clip(_safe_repr(action))}. For example {ACTION_EXAMPLE}"
        )
    call_id = action.get("id")
    if "function" in action:  # OpenAI tool_calls entry: {"id", "type": "function", "function": {...}}
        if not isinstance(action["function"], dict):
            raise ToolError(f"The tool call's 'function' must be an object with 'name' and 'arguments', got "
                            f"{_json_kind(action['function'])}. For example {OPENAI_EXAMPLE}")
        action = action["function"]
    key = "tool" if "tool" in action else "name"
    name = action.get(key)
    if name is None:
        raise ToolError(f"The tool call names no tool (expected a 'tool' or 'name' key), got keys "
                        f"{_clip(repr(sorted(action)))}. For example {ACTION_EXAMPLE}")
    if not isinstance(name, str) or not name.strip():
        raise ToolError(f"The tool call's {key!r} must be a tool name (a non-empty string), got "
                        f"{_clip(repr(name))}. For example {ACTION_EXAMPLE}")
    if len(name) > MAX_TOOL_NAME_CHARS:
        raise ToolError(f"The tool name is {len(name)} characters long: {_clip(name, 60)!r}; tool names are "
                        f"short (e.g. 'list_files'). Send one tool call, for example {ACTION_EXAMPLE}")
    if "arguments" not in action:
        misplaced = [k for k in ("args", "parameters", "params", "input", "kwargs") if k in action]
        if misplaced:
            raise ToolError(f"Put the arguments of {name}() under 'arguments', not {misplaced[0]!r}. "
                            f"For example {ACTION_EXAMPLE}")
    arguments = action.get("arguments")
    if isinstance(arguments, str):
        text = arguments
        arguments = _plain(_decode_json(text, f"The arguments of {name}() are"), measure=False) if text.strip() else None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ToolError(f"The arguments of {name}() must be an object (a dict of argument names to values), got "
                        f"{_json_kind(arguments)}. For example {ACTION_EXAMPLE}")
    return ToolCall(name, arguments, call_id if isinstance(call_id, str) else None)


def _single(action: Any) -> Any:
    """The one call of a list of one; ToolError for a list of any other length; anything else as it is."""
    if not isinstance(action, (list, tuple)):
        return action
    if len(action) != 1:
        raise ToolError(f"Send exactly one tool call per step, got a list of {len(action)}.")
    return action[0]


def _text_of(action: str | bytes | bytearray | memoryview) -> str:
    """The action's text: an exact str of at most MAX_ACTION_CHARS characters."""
    if isinstance(action, str):
        text = str.__str__(action)  # an exact str, whatever the subclass overrides
    else:
        data = bytes(action)
        if len(data) > 4 * MAX_ACTION_CHARS:  # more bytes than any text of the limit can take in UTF-8
            raise _too_long(len(data), "bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ToolError(f"The action is not UTF-8 text (byte {data[error.start]:#04x} at position "
                            f"{error.start}): send the tool call as JSON text or a dict.") from None
    if len(text) > MAX_ACTION_CHARS:
        raise _too_long(len(text))
    return text


def _decode_json(text: str, what: str) -> Any:
    """`text` decoded as JSON, or ToolError; `what` starts the message ("The action is")."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ToolError(
            f"{what} not valid JSON ({error.msg} at position {error.pos}): {_clip(text)!r}. "
            f"Send one tool call, for example {ACTION_EXAMPLE}"
        ) from None
    except RecursionError:
        raise ToolError(f"{what} nested too deeply; at most {MAX_ACTION_DEPTH} levels are accepted.") from None
    except ValueError as error:  # an integer of more than 4,300 digits
        raise ToolError(f"{what} not usable JSON: {_clip(str(error))}") from None


def _reject_constant(name: str) -> Any:
    raise ToolError(f"The action contains {name}, which JSON does not allow: send finite numbers.")


def _escape_surrogates(text: str) -> str:
    """`text` with each lone surrogate written as its `\\uXXXX` escape, so that it can be encoded as UTF-8."""
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _has_attribute(value: Any, name: str) -> bool:
    try:
        getattr(value, name)
        return True
    except AttributeError:
        return False


def _sdk_tool_call(action: Any) -> dict[str, Any]:
    """The dict form of an SDK tool-call object, read through plain attribute access (no `vars`, no `__dict__`)."""
    function = getattr(action, "function")
    if not isinstance(function, Mapping):
        if function is None or isinstance(function, (str, bytes, int, float, list, tuple)):
            raise ToolError(f"The tool call's 'function' must be an object with 'name' and 'arguments', got "
                            f"{type(function).__name__}. For example {OPENAI_EXAMPLE}")
        function = {key: getattr(function, key) for key in ("name", "arguments") if _has_attribute(function, key)}
    call_id = getattr(action, "id", None)
    return {"id": call_id if isinstance(call_id, str) else None, "function": function}


def _plain(value: Any, *, measure: bool) -> Any:
    """`value` as plain JSON data (see `parse_action`), or ToolError; iterative, so depth cannot crash it.

    With `measure`, its compact JSON must fit MAX_ACTION_CHARS: counted while converting (a lower bound, so a
    huge value stops early), then exactly.
    """
    budget = [MAX_ACTION_CHARS]  # compact-JSON characters still allowed

    def spend(n: int) -> None:
        if measure:
            budget[0] -= n
            if budget[0] < 0:
                raise _too_long(None)

    def leaf(item: Any, where: str) -> Any:
        if item is None or item is True or item is False:
            spend(5)
            return item
        if isinstance(item, str):
            text = str.__str__(item)
            spend(len(text) + 2)
            surrogate = _SURROGATE.search(text)
            if surrogate:
                raise ToolError(f"The action's text at {where} has a lone surrogate (U+{ord(surrogate.group()):04X}) "
                                "at position {}, which is not valid Unicode: send UTF-8 text."
                                .format(surrogate.start()))
            return text
        if isinstance(item, int):
            number = int.__int__(item)
            if not -MAX_INT <= number <= MAX_INT:
                raise ToolError(f"The integer at {where} ({_describe_int(number)}) is out of range: integers in "
                                f"an action are 64-bit (at most {MAX_INT} in size).")
            spend(len(str(number)))
            return number
        if isinstance(item, float):
            number = float.__float__(item)
            if not math.isfinite(number):
                raise ToolError(f"The number at {where} is {number}, which JSON does not allow: send finite numbers.")
            spend(len(repr(number)))
            return number
        raise ToolError(f"The action holds a {type(item).__name__} at {where}; an action is JSON data "
                        "(objects, arrays, strings, numbers, true/false, null).")

    def items_of(container: Any) -> list[tuple[Any, Any]]:
        if isinstance(container, dict):
            return list(dict.items(container))  # not the subclass's items()
        return list(container.items())

    root: list[Any] = [None]
    # Each entry: (value to convert, where it goes: (container, key), path for messages, depth)
    stack: list[tuple[Any, Any, Any, str, int]] = [(value, root, 0, _TOP, 0)]
    while stack:
        item, target, slot, where, depth = stack.pop()
        if depth > MAX_ACTION_DEPTH:
            raise ToolError(f"The action is nested too deeply ({where}); at most {MAX_ACTION_DEPTH} levels are "
                            "accepted.")
        if isinstance(item, Mapping):
            pairs = items_of(item)
            spend(2 + max(0, 2 * len(pairs) - 1))  # braces, colons, commas
            converted: Any = {}
            for key, child in pairs:
                if not isinstance(key, str):
                    raise ToolError(f"The action has a key that is not a string ({_clip(_safe_repr(key), 60)} at "
                                    f"{where}); JSON object keys are strings.")
                key = leaf(key, where)
                converted[key] = None
                stack.append((child, converted, key, _join(where, _clip(key, 40)), depth + 1))
        elif isinstance(item, (list, tuple)):
            elements = list(item)
            spend(2 + max(0, len(elements) - 1))  # brackets, commas
            converted = [None] * len(elements)
            for index, child in enumerate(elements):
                stack.append((child, converted, index, f"{'' if where == _TOP else where}[{index}]", depth + 1))
        else:
            converted = leaf(item, where)
        target[slot] = converted
    if measure:  # escapes make the JSON longer than counted: measure it exactly (cheap now that it is bounded)
        size = len(json.dumps(root[0], ensure_ascii=False, separators=(",", ":")))
        if size > MAX_ACTION_CHARS:
            raise _too_long(size)
    return root[0]


def _join(where: str, key: str) -> str:
    return key if where == _TOP else f"{where}.{key}"


def _describe_int(number: int) -> str:
    digits = int(number.bit_length() * 0.30103) + 1
    return f"about {digits} digits"


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _too_long(size: int | None, unit: str = "characters") -> ToolError:
    measured = f"is {size:,} {unit}" if size is not None else f"is over {MAX_ACTION_CHARS:,} characters (as compact JSON)"
    return ToolError(f"The action {measured}; an action is limited to {MAX_ACTION_CHARS:,} characters. Write a big "
                     "file in parts (write_file with append=true), or generate it with a script (run).")


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
        return text if isinstance(text, str) else f"<{type(value).__name__} object>"
    except Exception:  # noqa: BLE001 - a repr that raises (or a huge int) is still shown
        return f"<{type(value).__name__} object>"


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__}>"


# ---------------------------------------------------------------------------------------------- internals

_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}


def _json_type(annotation: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_null = [arg for arg in args if arg is not type(None)]
        return _json_type(non_null[0]) if len(non_null) == 1 else {}
    if origin is Literal:
        return {"type": _JSON_TYPES[type(args[0])], "enum": list(args)}
    if origin in (list, tuple) or annotation in (list, tuple):
        return {"type": "array", "items": _json_type(args[0]) if args else {}}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    raise TypeError(f"no JSON schema type for annotation {annotation!r}")


def _coerce(tool_name: str, name: str, value: Any, spec: Mapping[str, Any]) -> Any:
    """The agent's `value` for argument `name` as the schema's type, or ToolError (never another exception)."""
    where = f"{tool_name}() argument {name!r}"
    try:
        return _coerce_value(where, value, spec)
    except ToolError:
        raise
    except Exception as error:  # noqa: BLE001 - an odd value (a raising __eq__, say) is the agent's mistake
        raise ToolError(f"{where} could not be read ({type(error).__name__}): {_clip(_safe_repr(value))}.") from None


def _coerce_value(where: str, value: Any, spec: Mapping[str, Any]) -> Any:
    expected = spec.get("type")
    if expected == "integer":
        if isinstance(value, bool):
            raise ToolError(f"{where} must be an integer, got a boolean.")
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                raise ToolError(f"{where} must be an integer, got {_clip(_safe_repr(value))}.")
            value = int(value)
        elif isinstance(value, str):
            if not re.fullmatch(r"\s*[-+]?\d{1,30}\s*", value):
                raise ToolError(f"{where} must be an integer, got {_clip(_safe_repr(value))}.")
            value = int(value)
        elif isinstance(value, int):
            value = int.__int__(value)  # an exact int, whatever a subclass overrides
        else:
            raise ToolError(f"{where} must be an integer, got {_clip(_safe_repr(value))}.")
        if not -MAX_INT <= value <= MAX_INT:
            raise ToolError(f"{where} must be an integer of at most 64 bits, got {_describe_int(value)}.")
    elif expected == "number":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ToolError(f"{where} must be a number, got {_clip(_safe_repr(value))}.")
        value = int.__int__(value) if isinstance(value, int) else float.__float__(value)
        if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
            raise ToolError(f"{where} must be a number of sensible size, got an integer of {_describe_int(value)}.")
        if isinstance(value, float) and not math.isfinite(value):
            raise ToolError(f"{where} must be a finite number, got {value}.")
    elif expected == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ToolError(f"{where} must be true or false, got {_clip(_safe_repr(value))}.")
    elif expected == "string":
        if not isinstance(value, str):
            raise ToolError(f"{where} must be a string, got {_json_kind(value)}.")
        value = str.__str__(value)
    elif expected == "array" and not isinstance(value, list):
        raise ToolError(f"{where} must be an array, got {_json_kind(value)}.")
    elif expected == "object" and not isinstance(value, Mapping):
        raise ToolError(f"{where} must be an object, got {_json_kind(value)}.")
    if "enum" in spec and not any(type(value) is type(option) and value == option for option in spec["enum"]):
        raise ToolError(f"{where} must be one of {spec['enum']}, got {_clip(_safe_repr(value))}.")
    return value


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Summary text and per-argument descriptions of a Google-style docstring."""
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section, current = "summary", None
    for line in doc.splitlines():
        stripped = line.strip()
        if re.fullmatch(r"(Args|Arguments|Returns|Raises|Example|Examples):", stripped):
            section, current = stripped[:-1], None
            continue
        if section == "summary":
            summary_lines.append(line)
        elif section in ("Args", "Arguments") and stripped:
            match = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", stripped)
            if match and not line.startswith("        "):
                current = match.group(1)
                args[current] = match.group(2)
            elif current:
                args[current] += " " + stripped
    return "\n".join(summary_lines).strip(), args


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
