"""Tools as typed functions, and actions in every form agents send."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ptb_gym.errors import ToolError
from ptb_gym.protocol import parse_action, tool
from ptb_gym.tools import ALL_TOOLS


@tool
def example(episode, path: str, count: int = 3, fast: bool = False) -> str:
    """Do an example thing.

    Args:
        path: Where to do it.
        count: How many times,
            across two lines.
        fast: Whether to hurry.
    """
    return f"{path} {count} {fast}"


def test_schema_comes_from_signature_and_docstring():
    function = example.schema["function"]
    assert function["name"] == "example"
    assert function["description"] == "Do an example thing."
    parameters = function["parameters"]
    assert parameters["required"] == ["path"]
    assert parameters["properties"]["count"] == {
        "type": "integer", "description": "How many times, across two lines.", "default": 3}
    assert parameters["properties"]["fast"]["type"] == "boolean"


def test_every_tool_has_a_complete_schema():
    for t in ALL_TOOLS:
        function = t.schema["function"]
        assert function["description"], t.name
        for name, spec in function["parameters"]["properties"].items():
            assert spec["description"], (t.name, name)
            assert "type" in spec, (t.name, name)
        json.dumps(t.schema)


@pytest.mark.parametrize("action", [
    {"tool": "example", "arguments": {"path": "a"}},
    '{"tool": "example", "arguments": {"path": "a"}}',
    {"name": "example", "arguments": '{"path": "a"}'},
    {"id": "call_1", "type": "function", "function": {"name": "example", "arguments": '{"path": "a"}'}},
    SimpleNamespace(id="call_1", type="function", function=SimpleNamespace(name="example", arguments='{"path": "a"}')),
    [{"tool": "example", "arguments": {"path": "a"}}],
])
def test_every_action_form_parses_to_the_same_call(action):
    call = parse_action(action)
    assert (call.name, call.arguments) == ("example", {"path": "a"})


@pytest.mark.parametrize("action, message", [
    ("not json", "not valid JSON.*for example"),
    ({"arguments": {}}, "names no tool"),
    ({"tool": "example", "arguments": "{bad"}, "arguments of example.. are not valid JSON"),
    ({"tool": "example", "arguments": [1]}, "must be an object"),
    ([], "exactly one tool call"),
    (42, "must be a tool call"),
])
def test_malformed_actions_say_how_to_fix_them(action, message):
    with pytest.raises(ToolError, match=message):
        parse_action(action)


def test_arguments_are_validated_and_coerced():
    assert example.validate({"path": "a", "count": "5", "fast": "true"}) == {"path": "a", "count": 5, "fast": True}
    with pytest.raises(ToolError, match="unknown argument 'pth'.*Did you mean 'path'"):
        example.validate({"pth": "a"})
    with pytest.raises(ToolError, match="missing required argument 'path'"):
        example.validate({})
    with pytest.raises(ToolError, match="'count' must be an integer"):
        example.validate({"path": "a", "count": "many"})
