"""Malformed actions and crashing tools: `env.step` turns each into an observation, records it, and the env stays
usable (issue 8, property 4). The fuzzer (test_fuzz.py) covers the random space; these are the cases it is
unlikely to draw: input that is huge, nested 100,000 deep, or an object that fights back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest

import ptb_gym
from ptb_gym.errors import ToolError
from ptb_gym.protocol import MAX_ACTION_CHARS, action_for_record, parse_action, tool
from tests.conftest import call

# ------------------------------------------------------------------------------------------- hostile objects


class EvilStr(str):
    """A str whose comparisons and hash raise: `name in tools` would crash on it."""

    def __eq__(self, other):
        raise RuntimeError("EvilStr.__eq__")

    def __ne__(self, other):
        raise RuntimeError("EvilStr.__ne__")

    def __hash__(self):
        raise RuntimeError("EvilStr.__hash__")

    def __str__(self):
        raise RuntimeError("EvilStr.__str__")


class EvilKeyStr(str):
    """Usable as a dict key (its hash works), but comparing it raises."""

    __hash__ = str.__hash__

    def __eq__(self, other):
        raise RuntimeError("EvilKeyStr.__eq__")


class EvilInt(int):
    def __index__(self):
        raise RuntimeError("EvilInt.__index__")

    def __int__(self):
        raise RuntimeError("EvilInt.__int__")

    def __repr__(self):
        raise RuntimeError("EvilInt.__repr__")

    def __lt__(self, other):
        raise RuntimeError("EvilInt.__lt__")

    __gt__ = __le__ = __ge__ = __lt__


class RaisingRepr:
    def __repr__(self):
        raise RuntimeError("__repr__")

    __str__ = __repr__


class RaisingFunction:
    """An SDK-like tool call whose `.function` raises."""

    id = "call_1"

    @property
    def function(self):
        raise RuntimeError("function property")


class SlotsFunction:
    """`.function` without a `__dict__` (vars() fails on it)."""

    __slots__ = ("name", "arguments")

    def __init__(self, name, arguments):
        self.name, self.arguments = name, arguments


class RaisingName:
    @property
    def name(self):
        raise ValueError("name property")

    arguments = "{}"


class RaisingMapping(Mapping):
    """A Mapping whose every access raises."""

    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("__iter__")

    def __len__(self) -> int:
        raise RuntimeError("__len__")


class LyingDict(dict):
    def get(self, *args):
        raise ZeroDivisionError("get")

    def items(self):
        raise ZeroDivisionError("items")

    def __contains__(self, key):
        raise ZeroDivisionError("__contains__")


def nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def sdk_call(function) -> SimpleNamespace:
    return SimpleNamespace(id="call_1", type="function", function=function)


# Each a factory: some are 10 MB, made only when the test runs.
MALFORMED: dict[str, Callable[[], Any]] = {
    # JSON text
    "deep JSON text (100,000 [)": lambda: "[" * 100_000 + "]" * 100_000,
    "deep JSON object text": lambda: '{"a":' * 30_000 + "1" + "}" * 30_000,
    "deep JSON arguments": lambda: {"tool": "list_files", "arguments": "[" * 50_000 + "]" * 50_000},
    "10 MB JSON text": lambda: json.dumps(call("write_file", path="big.txt", content="x" * 10_000_000)),
    "10 MB dict": lambda: call("write_file", path="big.txt", content="x" * 10_000_000),
    "integer of 5,000 digits in JSON": lambda: '{"tool": "read_file", "arguments": {"path": "TASK.md", '
                                               '"start_line": ' + "9" * 5_000 + "}}",
    "NaN in JSON": lambda: '{"tool": "read_file", "arguments": {"path": "TASK.md", "start_line": NaN}}',
    "Infinity in JSON arguments": lambda: {"tool": "read_file", "arguments": '{"path": "TASK.md", "max_lines": -Infinity}'},
    "1e999 in JSON": lambda: '{"tool": "read_file", "arguments": {"path": "TASK.md", "max_lines": 1e999}}',
    "invalid JSON arguments": lambda: {"tool": "list_files", "arguments": "{bad"},
    "arguments a list": lambda: {"tool": "list_files", "arguments": [1, 2]},
    "arguments a number": lambda: {"tool": "list_files", "arguments": 3.5},
    "arguments a JSON list": lambda: {"tool": "list_files", "arguments": "[1]"},
    "bytes, not UTF-8": lambda: b"\xff\xfe{\x00",
    "bytes, 10 MB": lambda: b"{" * 10_000_000,
    "empty string": lambda: "",
    "whitespace": lambda: " \n\t ",
    "JSON null": lambda: "null",
    "lone surrogate in text": lambda: "\ud800",
    "lone surrogate escaped in JSON": lambda: '{"tool": "write_file", "arguments": {"path": "s.txt", "content": "\\ud800"}}',
    "lone surrogate in a dict": lambda: call("write_file", path="s.txt", content="a\udc80b"),
    "lone surrogate in a path": lambda: call("read_file", path="\ud800"),
    "lone surrogate in a key": lambda: {"tool": "list_files", "arguments": {"\udfff": 1}},
    # the tool's name
    "tool a list": lambda: {"tool": ["x"]},
    "tool a dict": lambda: {"tool": {"name": "list_files"}},
    "tool None": lambda: {"tool": None, "arguments": {}},
    "tool empty": lambda: {"tool": ""},
    "tool 150,000 characters": lambda: {"tool": "x" * 150_000},
    "function name an int": lambda: {"function": {"name": 5}},
    "function a string": lambda: {"id": "call_1", "type": "function", "function": "list_files"},
    "function a list": lambda: {"function": [{"name": "list_files"}]},
    "function None": lambda: {"function": None},
    "misplaced arguments": lambda: {"tool": "read_file", "args": {"path": "TASK.md"}},
    # keys
    "non-string keys": lambda: {1: "x", "tool": "list_files"},
    "non-string and string keys (unsortable)": lambda: {1: 2, "x": 3},
    "tuple key in arguments": lambda: {"tool": "list_files", "arguments": {(1, 2): 3}},
    "None key in arguments": lambda: {"tool": "list_files", "arguments": {None: 3}},
    # values that do not fit the tool's types
    "NaN for an int": lambda: call("read_file", path="TASK.md", start_line=float("nan")),
    "inf for an int": lambda: call("read_file", path="TASK.md", max_lines=float("inf")),
    "-inf for a number": lambda: call("train", data="data/train.jsonl", learning_rate=float("-inf")),
    "1e300 for an int": lambda: call("read_file", path="TASK.md", max_lines=1e300),
    "10**10000 for an int": lambda: call("read_file", path="TASK.md", start_line=10**10000),
    "-10**100 for an int": lambda: call("tail", job_id="job-1", lines=-(10**100)),
    "int string of 5,000 digits": lambda: call("read_file", path="TASK.md", start_line="9" * 5_000),
    "bool for an int": lambda: call("read_file", path="TASK.md", start_line=True),
    "list for a string": lambda: call("read_file", path=["TASK.md"]),
    "dict for a bool": lambda: call("write_file", path="a.txt", content="x", append={"yes": 1}),
    "records not a list": lambda: call("write_data", path="d.jsonl", records="[]"),
    "records of odd things": lambda: call("write_data", path="d.jsonl", records=[1, None, [], "x"]),
    "bytes as an argument": lambda: call("write_file", path="a.txt", content=b"\xff"),
    "set as an argument": lambda: call("write_file", path="a.txt", content={"a"}),
    "object as an argument": lambda: call("write_file", path="a.txt", content=object()),
    "NUL in a path": lambda: call("read_file", path="a\x00b"),
    "NUL in a command": lambda: call("run", command="echo a\x00b"),
    "NUL in content": lambda: call("write_file", path="nul.txt", content="a\x00b"),
    "NUL in a job id": lambda: call("tail", job_id="job-1\x00"),
    "path of 100,000 characters": lambda: call("read_file", path="a/" * 50_000),
    "a path component of 10,000 characters": lambda: call("write_file", path="x" * 10_000, content="x"),
    "nested dict 10,000 deep in arguments": lambda: {"tool": "list_files", "arguments": {"path": nested_dict(10_000)}},
    "nested list 100,000 deep": lambda: nested_list(100_000),
    # str/int subclasses and objects that fight back
    "str subclass whose hash and eq raise (tool)": lambda: {"tool": EvilStr("list_files")},
    "str subclass whose eq raises (key)": lambda: {EvilKeyStr("tool"): "list_files"},
    "str subclass as a path": lambda: call("read_file", path=EvilStr("TASK.md")),
    "str subclass as an argument name": lambda: {"tool": "read_file", "arguments": {EvilKeyStr("path"): "TASK.md"}},
    "int subclass whose conversions raise": lambda: call("read_file", path="TASK.md", max_lines=EvilInt(5)),
    "SDK object whose .function raises": lambda: RaisingFunction(),
    "SDK object with __slots__ function": lambda: sdk_call(SlotsFunction("list_files", "{}")),
    "SDK object whose function.name raises": lambda: sdk_call(RaisingName()),
    "SDK object whose function is None": lambda: sdk_call(None),
    "SDK object whose function is a str": lambda: sdk_call("list_files"),
    "SDK object whose arguments are bytes": lambda: sdk_call(SimpleNamespace(name="list_files", arguments=b"{}")),
    "object whose repr raises": lambda: RaisingRepr(),
    "Mapping whose access raises": lambda: RaisingMapping(),
    "dict subclass whose methods raise": lambda: LyingDict(tool="list_files"),
    "a list of two calls": lambda: [call("list_files"), call("budget")],
    "an empty list": lambda: [],
    "a set": lambda: {1, 2},
    "a tuple": lambda: ("list_files", {}),
    "a class": lambda: dict,
    "a function": lambda: print,
    "a generator": lambda: (x for x in range(3)),
    "None": lambda: None,
    "NaN": lambda: float("nan"),
    "10**10000": lambda: 10**10000,
    "Ellipsis": lambda: ...,
}


@tool
def example(episode, path: str, count: int = 3, rate: float = 0.5, fast: bool = False,
            mode: str = "a", items: list | None = None) -> str:
    """An example tool for argument coercion.

    Args:
        path: A path.
        count: An integer.
        rate: A number.
        fast: A boolean.
        mode: A string.
        items: An array.
    """
    return "ok"


# ---------------------------------------------------------------------------------------- the protocol alone


@pytest.mark.parametrize("kind", MALFORMED)
def test_parse_action_raises_only_tool_errors(kind):
    action = MALFORMED[kind]()
    try:
        call_ = parse_action(action)
    except ToolError as error:
        assert str(error) and len(str(error)) < 2_000, kind
        return
    # What parses is plain JSON data a tool and the recorder can use as it is.
    assert type(call_.name) is str and type(call_.arguments) is dict
    json.dumps(call_.arguments, allow_nan=False).encode()


ODD_VALUES = [float("nan"), float("inf"), -float("inf"), 1e300, 10**10000, -(10**100), 2**63, "9" * 5000, " 12 ",
              "+5", "0x10", "1e3", "", True, None, [], {}, b"x", EvilStr("x"), EvilKeyStr("a"), EvilInt(3),
              RaisingRepr(), "\ud800", 3, 2.0, "true", " FALSE "]


@pytest.mark.parametrize("argument", ["count", "rate", "fast", "mode", "items"])
def test_argument_coercion_raises_only_tool_errors(argument):
    for value in ODD_VALUES:
        try:
            coerced = example.validate({"path": "p", argument: value})[argument]
        except ToolError:
            continue
        expected = {"count": int, "rate": (int, float), "fast": bool, "mode": str, "items": list}[argument]
        assert isinstance(coerced, expected) and type(coerced) in (int, float, bool, str, list), (argument, value)
        if isinstance(coerced, float):
            assert math.isfinite(coerced)
        if isinstance(coerced, int):
            assert abs(coerced) < 2**63


def test_coercion_keeps_what_is_unambiguous():
    assert example.validate({"path": "p", "count": "5", "rate": "0.25", "fast": "true", "items": []}) == {
        "path": "p", "count": 5, "rate": 0.25, "fast": True, "items": []}
    assert example.validate({"path": "p", "count": 4.0})["count"] == 4
    for value, message in [(float("inf"), "must be an integer"), (10**30, "at most 64 bits"),
                           ("9" * 5_000, "must be an integer")]:
        with pytest.raises(ToolError, match=message):
            example.validate({"path": "p", "count": value})
    with pytest.raises(ToolError, match="finite number"):
        example.validate({"path": "p", "rate": float("nan")})


def test_validate_accepts_odd_argument_names_only_as_errors():
    with pytest.raises(ToolError, match="unknown argument"):
        example.validate({1: 2})
    with pytest.raises(ToolError, match="unknown argument"):
        example.validate({"x" * 100_000: 1})
    with pytest.raises(ToolError):
        example.validate(RaisingMapping())


def test_malformed_actions_say_what_is_wrong():
    for action, message in [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (nested_list(100_000), "nested too deeply"),
        (b"\xff", "not UTF-8"),
        ({"tool": ["x"]}, "'tool' must be a tool name"),
        ({"function": {"name": 5}}, "'name' must be a tool name"),
        ({"function": "list_files"}, "'function' must be an object"),
        ({1: 2, "x": 3}, "key that is not a string"),
        (call("read_file", path="TASK.md", start_line=10**10000), "64-bit"),
        ('{"tool": "a", "arguments": {"n": NaN}}', "NaN, which JSON does not allow"),
        (call("write_file", path="a", content="\ud800"), r"lone surrogate \(U\+D800\)"),
        ({"tool": "read_file", "args": {"path": "x"}}, "under 'arguments', not 'args'"),
        (RaisingFunction(), "could not be read .RuntimeError"),
    ]:
        with pytest.raises(ToolError, match=message):
            parse_action(action)


def test_sdk_objects_parse_without_vars():
    parsed = parse_action(sdk_call(SlotsFunction("read_file", '{"path": "a"}')))
    assert (parsed.name, parsed.arguments, parsed.call_id) == ("read_file", {"path": "a"}, "call_1")


def test_action_size_limit_in_the_protocol():
    # The limit is on the action's text as sent, or on its compact JSON when it is not text.
    text = exact_text_action(MAX_ACTION_CHARS)
    assert len(text) == MAX_ACTION_CHARS and parse_action(text).name == "write_file"
    with pytest.raises(ToolError, match="200,000 characters"):
        parse_action(exact_text_action(MAX_ACTION_CHARS + 1))
    action = exact_dict_action(MAX_ACTION_CHARS)
    assert parse_action(action).arguments == action["arguments"]
    with pytest.raises(ToolError, match="200,000 characters"):
        parse_action(exact_dict_action(MAX_ACTION_CHARS + 1))
    with pytest.raises(ToolError, match="200,000 characters"):  # escapes count: "\n" is two characters of JSON
        parse_action(call("write_file", path="a", content="\n" * (MAX_ACTION_CHARS // 2 + 10)))
    with pytest.raises(ToolError, match="200,000 characters"):
        parse_action(exact_text_action(MAX_ACTION_CHARS + 1).encode())


def test_action_for_record_never_raises_and_is_bounded():
    for kind, factory in MALFORMED.items():
        recorded = action_for_record(factory())
        text = json.dumps(recorded, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")  # the recorder writes UTF-8
        assert len(recorded if isinstance(recorded, str) else text) <= MAX_ACTION_CHARS + 1_000, kind
    assert action_for_record(call("list_files")) == call("list_files")
    assert action_for_record('{"tool": "x"}') == '{"tool": "x"}'


def exact_text_action(size: int) -> str:
    """A write_file action as JSON text of exactly `size` characters."""
    empty = json.dumps(call("write_file", path="exact.txt", content=""))
    return json.dumps(call("write_file", path="exact.txt", content="x" * (size - len(empty))))


def exact_dict_action(size: int) -> dict:
    """A write_file action whose compact JSON is exactly `size` characters."""
    empty = json.dumps(call("write_file", path="exact.txt", content=""), separators=(",", ":"))
    return call("write_file", path="exact.txt", content="y" * (size - len(empty)))


# ------------------------------------------------------------------------------------------ through env.step


def checked_step(env, action) -> tuple[str, dict]:
    """One step that must not raise and must return a well-formed result."""
    observation, reward, terminated, truncated, info = env.step(action)
    assert isinstance(observation, str) and env.observation_space.contains(observation)
    observation.encode("utf-8")  # valid Unicode: agents' clients send it on as UTF-8
    assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    assert isinstance(info, dict)
    return observation, info


def recorded_steps(info: dict) -> list[dict]:
    return ptb_gym.read_episode(info["recording"]).steps


def test_step_turns_every_malformed_action_into_an_observation(make_env, tmp_path):
    env = make_env(record_dir=str(tmp_path / "runs"), max_steps=10_000)
    _, reset_info = env.reset(seed=0)
    failures, steps = [], 0
    for kind, factory in MALFORMED.items():
        try:
            checked_step(env, factory())
            steps += 1
        except Exception as error:  # noqa: BLE001 - collect them all: the lead wants the whole list
            failures.append(f"{kind}: {type(error).__name__}: {str(error)[:200]}")
            _, reset_info = env.reset(seed=0)  # the recording's count is unknown now: start a fresh one
            steps = 0
    assert not failures, "step raised or misreported on:\n" + "\n".join(failures)
    observation, info = checked_step(env, call("list_files"))
    assert "TASK.md" in observation and "error" not in info
    assert len(recorded_steps(reset_info)) == steps + 1
    env.reset(seed=1)
    env.close()


CRASHES = [RuntimeError("boom"), KeyError("k"), RecursionError("deep"), MemoryError(), OSError(5, "I/O error"),
           UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), ValueError("embedded null byte")]


@pytest.fixture
def crashing_tool():
    """Make a registered tool raise `error` (restored after the test)."""
    from ptb_gym.tools import TOOLS_BY_NAME

    patched: list[tuple[Any, Callable]] = []

    def crash(name: str, error: BaseException) -> None:
        target = TOOLS_BY_NAME[name]

        def raiser(episode, **arguments):
            raise error

        patched.append((target, target.function))
        object.__setattr__(target, "function", raiser)  # Tool is frozen; the env holds this same object

    yield crash
    for target, function in patched:
        object.__setattr__(target, "function", function)


@pytest.mark.parametrize("error", CRASHES, ids=lambda e: type(e).__name__)
def test_a_crash_inside_a_tool_is_an_observation_and_the_env_stays_usable(make_env, tmp_path, crashing_tool, error):
    env = make_env(record_dir=str(tmp_path / "runs"))
    _, reset_info = env.reset(seed=0)
    crashing_tool("budget", error)
    observation, info = checked_step(env, call("budget"))
    assert observation.startswith("Error:") and re.search(r"fail|internal|crash|bug", observation, re.I), observation
    assert "error" in info
    observation, info = checked_step(env, call("list_files"))
    assert "TASK.md" in observation
    steps = recorded_steps(reset_info)
    assert [s["tool"] for s in steps] == ["budget", "list_files"]
    assert steps[0]["info"].get("error")
    env.reset(seed=1)
    checked_step(env, call("list_files"))
    env.close()
    env.close()


def test_a_crash_in_the_write_path_is_an_observation(make_env, tmp_path, crashing_tool):
    # A tool that fails half way through (here write_file) must not take the env with it either.
    env = make_env(record_dir=str(tmp_path / "runs"))
    _, reset_info = env.reset(seed=0)
    crashing_tool("write_file", RuntimeError("disk on fire"))
    observation, info = checked_step(env, call("write_file", path="a.txt", content="x"))
    assert "error" in info and "RuntimeError" in observation
    env.reset(seed=0)
    env.close()


def test_action_size_limit_through_step(make_env, tmp_path):
    env = make_env(record_dir=str(tmp_path / "runs"))
    _, reset_info = env.reset(seed=0)
    root = reset_info["workspace"]
    for action in (exact_text_action(MAX_ACTION_CHARS + 1), exact_dict_action(MAX_ACTION_CHARS + 1),
                   exact_text_action(10 * MAX_ACTION_CHARS)):
        observation, info = checked_step(env, action)
        assert "200,000 characters" in observation and "error" in info
    observation, _ = checked_step(env, call("list_files"))
    assert "exact.txt" not in observation  # nothing over the limit was written
    text = exact_text_action(MAX_ACTION_CHARS)
    assert env.action_space.contains(text)
    observation, info = checked_step(env, text)
    assert "error" not in info, observation
    content = json.loads(text)["arguments"]["content"]
    with open(f"{root}/exact.txt") as written:
        assert written.read() == content
    observation, info = checked_step(env, exact_dict_action(MAX_ACTION_CHARS))
    assert "error" not in info, observation
    assert len(recorded_steps(reset_info)) == 6


AGENT_MISTAKES = {
    "NUL in a command": lambda: call("run", command="echo a\x00b"),
    "NUL in a launched command": lambda: call("launch", command="echo a\x00b"),
    "a command of 150,000 characters (over Linux's 128 KiB per argument)": lambda: call("run", command="#" + "x" * 150_000),
    "a launched command of 150,000 characters": lambda: call("launch", command="#" + "x" * 150_000),
    "a path of 100,000 characters": lambda: call("read_file", path="a/" * 50_000),
    "a path component of 10,000 characters": lambda: call("write_file", path="x" * 10_000, content="x"),
    "a directory path of 5,000 characters": lambda: call("list_files", path="a" * 5_000),
    "a checkpoint path of 5,000 characters": lambda: call("evaluate", checkpoint="c" * 5_000),
    "NUL in a job id": lambda: call("tail", job_id="job-1\x00"),
}


@pytest.mark.parametrize("kind", AGENT_MISTAKES)
def test_agent_mistakes_are_not_reported_as_env_failures(make_env, kind):
    # Failure kinds follow one rule (issue 8): what the agent can cause is its mistake (a ToolError that says how
    # to fix it), never "the env failed", which RL trainers drop from training.
    env = make_env()
    env.reset(seed=0)
    observation, info = checked_step(env, AGENT_MISTAKES[kind]())
    assert "error" in info, observation
    assert not info.get("internal_error") and "bug in ptb-gym" not in observation, observation
