"""parse_tool_call: the text forms small open models write tool calls in, their errors, and hostile text."""

from __future__ import annotations

import time

import pytest

from ptb_gym.errors import ToolError
from ptb_gym.protocol import MAX_ACTION_CHARS
from ptb_gym.tool_calls import MAX_REPLY_CHARS, parse_tool_call
from ptb_gym.tools import ALL_TOOLS

TOOLS = [tool.schema for tool in ALL_TOOLS]  # as info["tools"] gives them
TRAIN = {"tool": "train", "arguments": {"data": "data/sft.jsonl", "max_steps": 200}}


def parsed(text, tools=TOOLS):
    result = parse_tool_call(text, tools)
    return result.action, result.form, result.ignored


# -------------------------------------------------------------------------------------------------- forms

@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "train", "arguments": {"data": "data/sft.jsonl", "max_steps": 200}}\n</tool_call>',
    'Training now.\n<tool_call>{"name": "train", "arguments": {"data": "data/sft.jsonl", "max_steps": 200}}',  # cut
    ('<tool_call>\n```json\n{"name": "train", "arguments": {"data": "data/sft.jsonl", "max_steps": 200}}\n```\n'
     '</tool_call>'),
    '<tool_call>train(data="data/sft.jsonl", max_steps=200)</tool_call>',
])
def test_hermes_tags(text):
    assert parsed(text) == (TRAIN, "hermes", 0)


@pytest.mark.parametrize("text", [
    'Here is the call:\n```json\n{"name": "train", "arguments": {"data": "data/sft.jsonl", "max_steps": 200}}\n```',
    '```\n{"name": "train", "arguments": {"data": "data/sft.jsonl", "max_steps": 200}}\n```',
    '```JSON {"name": "train", "arguments": {"data": "data/sft.jsonl", "max_steps": 200}}```',
    ('```python\nimport json\nprint(json.dumps(x))\n```\nThen:\n'
     '```python\ntrain(data="data/sft.jsonl", max_steps=200)\n```'),
])
def test_code_fences(text):
    assert parsed(text) == (TRAIN, "fence", 0)


@pytest.mark.parametrize("text", [
    'I will train: {"name": "train", "arguments": {"data": "data/sft.jsonl", "max_steps": 200}} now.',
    ('Records look like {"prompt": "Q", "completion": "A"}; so {"tool": "train", "arguments": '
     '{"data": "data/sft.jsonl", "max_steps": 200}}'),
    ('{"type": "function", "function": {"name": "train", "arguments": '
     '"{\\"data\\": \\"data/sft.jsonl\\", \\"max_steps\\": 200}"}}'),
])
def test_json_in_prose(text):
    assert parsed(text) == (TRAIN, "json", 0)


@pytest.mark.parametrize("text", [
    'train(data="data/sft.jsonl", max_steps=200)',
    "Let me call train(data='data/sft.jsonl', max_steps=200) to start.",
    'train("data/sft.jsonl", max_steps=200)',  # positional: the schema's parameter order
    'train(\n    data="data/sft.jsonl",\n    max_steps=200,\n)',
])
def test_python_calls(text):
    assert parsed(text) == (TRAIN, "python", 0)


def test_python_literals_only_never_evaluated():
    action, *_ = parsed('write_data(path="d.jsonl", records=[{"text": "a"}, {"text": "b, (c)"}], append=true)')
    assert action == {"tool": "write_data", "arguments": {"path": "d.jsonl", "records": [{"text": "a"},
                                                                                        {"text": "b, (c)"}],
                                                          "append": True}}
    assert parsed("train(data='x', learning_rate=-1e-4, lora=None)")[0]["arguments"] == {
        "data": "x", "learning_rate": -1e-4, "lora": None}
    with pytest.raises(ToolError, match="not a literal"):
        parse_tool_call('train(data=__import__("os").system("touch /tmp/pwned"))', TOOLS)


def test_parameters_key_and_arguments_as_a_json_string():
    assert parsed('<tool_call>{"name": "train", "parameters": {"data": "data/sft.jsonl", "max_steps": 200}}'
                  '</tool_call>')[0] == TRAIN
    assert parsed('<tool_call>{"name": "train", "arguments": "{\\"data\\": \\"data/sft.jsonl\\", '
                  '\\"max_steps\\": 200}"}</tool_call>')[0] == TRAIN


def test_the_first_call_runs_and_the_rest_are_counted():
    two = '<tool_call>{"name": "list_files"}</tool_call>\n<tool_call>{"name": "budget"}</tool_call>'
    assert parsed(two) == ({"tool": "list_files", "arguments": {}}, "hermes", 1)
    array = '[TOOL_CALLS][{"name": "budget", "arguments": {}}, {"name": "list_files", "arguments": {}}]'
    assert parsed(array) == ({"tool": "budget", "arguments": {}}, "json", 1)
    # A tag wins over a JSON object elsewhere in the prose.
    assert parsed('{"name": "budget"} <tool_call>{"name": "list_files"}</tool_call>')[1] == "hermes"


def test_reasoning_is_skipped():
    assert parsed('<think>maybe train(data="x")?</think>\nbudget()')[0]["tool"] == "budget"
    assert parsed('thinking about submit(checkpoint="x")...</think>budget()')[0]["tool"] == "budget"
    with pytest.raises(ToolError, match="inside <think>"):
        parse_tool_call("<think>I should train(data='x')", TOOLS)


def test_tools_as_names_or_tool_objects():
    assert parsed('budget()', ["budget", "submit"])[0] == {"tool": "budget", "arguments": {}}
    assert parsed('submit("final_model")', ALL_TOOLS)[0] == {"tool": "submit",
                                                             "arguments": {"checkpoint": "final_model"}}
    with pytest.raises(ToolError, match="by name"):
        parse_tool_call('submit("final_model")', ["budget", "submit"])


def test_the_action_is_what_env_step_takes(make_env):
    env = make_env()
    _, info = env.reset(seed=0)
    action = parse_tool_call('read_file(path="TASK.md", max_lines=3)', info["tools"]).action
    observation, _, _, _, step_info = env.step(action)
    assert "error" not in step_info and observation.strip()


# ------------------------------------------------------------------------------------------------- errors

def error_of(text, tools=TOOLS) -> str:
    with pytest.raises(ToolError) as caught:
        parse_tool_call(text, tools)
    message = str(caught.value)
    message.encode("utf-8")  # sendable to a server as it is
    assert message.startswith("No tool call could be read from your reply: ")
    # Every error says which forms are accepted, with a real tool of the episode.
    assert '<tool_call>{"name": "list_files", "arguments": {"path": "."}}</tool_call>' in message
    assert "```json" in message and 'list_files(path=".")' in message
    return message


def test_malformed_json_says_where():
    message = error_of('<tool_call>{"name": "budget", "arguments": {}</tool_call>')
    assert "the <tool_call> block: not valid JSON" in message and "at position" in message
    assert "near '" in message


def test_a_malformed_tag_is_not_passed_over_for_another_call():
    message = error_of('<tool_call>{"name": "budget",</tool_call> or maybe {"name": "submit"}')
    assert "not valid JSON" in message


def test_unknown_tools_get_a_did_you_mean():
    assert "unknown tool 'trian'. Did you mean 'train'?" in error_of('<tool_call>{"name": "trian"}</tool_call>')
    assert "'trian' is not a tool. Did you mean 'train'?" in error_of('trian(data="x")')
    assert "Tools: list_files, read_file" in error_of('{"name": "nope", "arguments": {}}')


def test_other_errors():
    assert "it holds no tool call" in error_of("I think I should train a model.")
    assert "it is empty" in error_of("   ")
    assert "it has no text" in error_of(None)
    assert "not UTF-8" in error_of(b"\xff\xfe")
    assert "holds no tool call" in error_of("<tool_call>hello</tool_call>")
    assert "no closing parenthesis" in error_of('train(data="x"')
    assert "takes at most 3 arguments" in error_of('read_file("a", 1, 2, 3)')
    assert "twice" in error_of('read_file("a", path="b")')
    assert "Put the arguments of budget() under 'arguments', not 'args'" in error_of('{"name": "budget", "args": {}}')
    assert "must be an object" in error_of('{"name": "budget", "arguments": [1]}')


def test_the_example_uses_the_episodes_tools():
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look up.", "parameters": {
        "type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}}}]
    with pytest.raises(ToolError) as caught:
        parse_tool_call("hello", tools)
    assert '<tool_call>{"name": "lookup", "arguments": {"key": "..."}}</tool_call>' in str(caught.value)
    assert 'lookup(key="...")' in str(caught.value)


# ---------------------------------------------------------------------------------------------- hostile text

N = MAX_REPLY_CHARS - 100
HOSTILE = {
    "too long": "x" * (MAX_REPLY_CHARS + 1),
    "one word": "a" * N,
    "call sites": "a(" * (N // 2),
    "nested tool calls": "train(" * (N // 6),
    "near misses": "trian(" * (N // 6),
    "distinct names": "".join(f"n{i}x( " for i in range(N // 9)),
    "braces": "{" * N,
    "object starts": '{"' * (N // 2),
    "nested objects": '{"name":' * (N // 8),
    "objects over an array": '{"name": ' * 1000 + "[" + "0," * ((N - 9000) // 2),
    "deep array": '{"name": "budget", "arguments": ' + "[" * (N - 40),
    "tags": "<tool_call>" * (N // 11),
    "fences": "```" * (N // 3),
    "deep fence": "```json\n" + "[" * (N - 20) + "\n```",
    "deep tag": "<tool_call>" + '{"a":' * (N // 5 - 5),
    "deep python": "train(data=" + "[" * (N - 20) + "]" * 5 + ")",
    "unary chain": "train(data=" + "-" * (N - 20) + "1)",
    "binop chain": "train(data=" + "1+" * ((N - 20) // 2) + "1)",
    "huge int": "train(max_steps=" + "9" * (N - 30) + ")",
    "huge JSON int": '{"name": "budget", "arguments": {"x": ' + "9" * 10_000 + "}}",
    "quotes": "train(data=" + "'" * (N - 20) + ")",
    "NUL": "train(data='\x00')",
    "surrogates": "\ud800" * N,
    "surrogate in a name": '<tool_call>{"name": "budget\ud800"}</tool_call>',
    "surrogate in an argument": 'train(data="\ud800")',
    "escaped surrogate": '<tool_call>{"name": "train", "arguments": {"data": "\\udc00"}}</tool_call>',
    "think tags": "<think>" * (N // 7),
    "parens": "train" + "(" * (N - 10),
    "big action": '<tool_call>{"name": "write_file", "arguments": {"path": "a", "content": "'
                  + "x" * MAX_ACTION_CHARS + '"}}</tool_call>',
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_text_is_a_tool_error_in_bounded_time(name):
    started = time.perf_counter()
    with pytest.raises(ToolError) as caught:
        parse_tool_call(HOSTILE[name], TOOLS)
    assert time.perf_counter() - started < 2.0, name  # about 0.25 s at worst on one core
    str(caught.value).encode("utf-8")
    assert len(str(caught.value)) < 2_000
