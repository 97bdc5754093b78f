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
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ptb_gym.errors import ToolError, did_you_mean

ACTION_EXAMPLE = '{"tool": "list_files", "arguments": {"path": "."}}'


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
        unknown = [name for name in arguments if name not in properties]
        if unknown:
            raise ToolError(
                f"{self.name}() got unknown argument {unknown[0]!r}.{did_you_mean(unknown[0], properties)} "
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
    """Turn any supported action form into a `ToolCall`, or raise `ToolError` saying how to fix it."""
    if isinstance(action, (str, bytes)):
        text = action.decode() if isinstance(action, bytes) else action
        try:
            action = json.loads(text)
        except json.JSONDecodeError as error:
            raise ToolError(
                f"The action is not valid JSON ({error.msg} at position {error.pos}): {_clip(text)!r}. "
                f"Send one tool call, for example {ACTION_EXAMPLE}"
            ) from None
    if not isinstance(action, Mapping) and hasattr(action, "function"):  # an OpenAI SDK tool-call object
        action = {"id": getattr(action, "id", None), "function": vars(action.function)}
    if isinstance(action, list):
        if len(action) != 1:
            raise ToolError(f"Send exactly one tool call per step, got a list of {len(action)}.")
        return parse_action(action[0])
    if not isinstance(action, Mapping):
        raise ToolError(
            f"An action must be a tool call (a dict or its JSON string), got {type(action).__name__}: "
            f"{_clip(repr(action))}. For example {ACTION_EXAMPLE}"
        )
    call_id = action.get("id")
    if isinstance(action.get("function"), Mapping):  # OpenAI tool_calls entry
        action = action["function"]
    name = action.get("tool", action.get("name"))
    if not isinstance(name, str) or not name:
        raise ToolError(
            f"The tool call names no tool (expected a 'tool' or 'name' key), got keys {sorted(action)}. "
            f"For example {ACTION_EXAMPLE}"
        )
    arguments = action.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            raise ToolError(f"The arguments of {name}() are not valid JSON ({error.msg}): {_clip(arguments)!r}")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise ToolError(f"The arguments of {name}() must be an object, got {type(arguments).__name__}.")
    return ToolCall(name, dict(arguments), call_id if isinstance(call_id, str) else None)


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
    expected = spec.get("type")
    where = f"{tool_name}() argument {name!r}"
    if expected == "integer":
        if isinstance(value, bool):
            raise ToolError(f"{where} must be an integer, got a boolean.")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int):
            raise ToolError(f"{where} must be an integer, got {_clip(repr(value))}.")
    elif expected == "number":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ToolError(f"{where} must be a number, got {_clip(repr(value))}.")
    elif expected == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ToolError(f"{where} must be true or false, got {_clip(repr(value))}.")
    elif expected == "string" and not isinstance(value, str):
        raise ToolError(f"{where} must be a string, got {type(value).__name__}.")
    elif expected == "array" and not isinstance(value, list):
        raise ToolError(f"{where} must be an array, got {type(value).__name__}.")
    elif expected == "object" and not isinstance(value, Mapping):
        raise ToolError(f"{where} must be an object, got {type(value).__name__}.")
    if "enum" in spec and value not in spec["enum"]:
        raise ToolError(f"{where} must be one of {spec['enum']}, got {value!r}.")
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
