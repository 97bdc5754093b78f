"""Property-based fuzzing of `env.step` (issue 8, property 4): whatever the agent sends, `step` returns.

Each fuzzed action is one of: an arbitrary JSON-like value (nested dicts and lists, huge ints, nan and inf,
strings with NUL, lone surrogates, bidi controls), bytes, a string, a tool call's JSON text (cut short or
corrupted), an OpenAI `tool_calls` entry or SDK-like object with odd `function`s, objects whose attributes raise,
and, half the time, a real tool of `info["tools"]` with hostile argument values (wrong types, huge or negative
numbers, `../`, `/`, NUL, very long paths). The properties, after every action:

- `step` raises nothing (any exception counts);
- the observation is a str in `env.observation_space`, valid Unicode; reward, terminated and truncated are typed;
- every step is in the recording (read back with `ptb_gym.read_episode` when each episode ends);
- the env stays usable: episodes that end are reset, and `reset` and `close` work at the end.

Expensive tools are bounded: `run` and `launch` get commands that end at once, `wait` short timeouts, and
`train`, `evaluate` and `submit` only paths that name nothing real, so no model is trained or scored.

The CI test runs 300 actions (about half a minute); the `slow` test and `benchmarks/fuzz_step.py` run 10,000 and
report how many raised. Run it alone with `python tests/test_fuzz.py --actions 10000`.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import ptb_gym
from ptb_gym.protocol import MAX_ACTION_CHARS, action_for_record

gym.register_envs(ptb_gym)

CI_ACTIONS = 300
FULL_ACTIONS = 10_000
SMALL = {"train_size": 200, "dev_size": 16, "test_size": 32, "device": "cpu"}

# ------------------------------------------------------------------------------------------------ strategies

_odd_characters = st.sampled_from(
    ["\x00", "\x07", "\x1b", "\x7f", "\u0085", "\u200b", "\u202e", "\u2028", "\ufeff", "\ufffd", "\uffff",
     "\U0010ffff", "\U0001f600", "\u0301", "\u00e9", "\u0130", "/", "\\", ".", "~", "$", "`", "'", '"', "\n"])
_surrogates = st.characters(codec=None, min_codepoint=0xD800, max_codepoint=0xDFFF)
CHARACTERS = st.one_of(st.characters(), _odd_characters, _surrogates)
TEXT = st.text(CHARACTERS, max_size=40)

# Big values are made once and drawn by reference: generating them through hypothesis would take seconds each.
_BIG: dict[str, Any] = {}


def _big(name: str, make) -> Any:
    if name not in _BIG:
        _BIG[name] = make()
    return _BIG[name]


BIG_STRINGS = st.sampled_from([
    ("x100k", lambda: "x" * 100_000), ("limit", lambda: "y" * MAX_ACTION_CHARS),
    ("over", lambda: "z" * (MAX_ACTION_CHARS + 1)), ("nul4k", lambda: "\x00" * 4_096),
    ("lines", lambda: "line\n" * 30_000), ("deep-json", lambda: "[" * 60_000 + "]" * 60_000),
    ("5000-digits", lambda: "9" * 5_000),
]).map(lambda entry: _big(*entry))

# As (base, exponent, offset): hypothesis shows its strategies' values, and 10**5000 has no repr (over 4,300 digits).
HUGE_INTS = st.sampled_from([(2, 31, 0), (2, 63, -1), (2, 63, 0), (-2, 63, -1), (2, 64, 0), (10, 100, 0),
                             (-10, 101, 0), (10, 5000, 0), (10, 10000, 0), (-10, 10001, 0), (0, 1, -1)]).map(
    lambda t: t[0] ** t[1] + t[2])
FLOATS = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 1e300]))
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), HUGE_INTS, FLOATS, TEXT)
KEYS = st.one_of(TEXT, st.sampled_from(["tool", "name", "arguments", "function", "id", "type", "path"]))


def _json_like(leaves):
    return st.recursive(leaves, lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(KEYS, children, max_size=5)), max_leaves=20)


JSON_LIKE = _json_like(LEAVES)
# Python values JSON has no form for: non-string keys, tuples, sets, bytes.
PYTHON_LIKE = st.builds(
    lambda value, form, key: [value, (value,), {key: value, "tool": "list_files"}, {key: value}][form],
    _json_like(st.one_of(LEAVES, st.binary(max_size=20))), st.integers(0, 3),
    st.one_of(st.integers(), st.none(), st.tuples(st.integers()), st.floats()))

def _repeated(*pairs: tuple[str, int]) -> st.SearchStrategy:
    """Long strings made when drawn: a strategy's repr shows its values, and hypothesis computes it."""
    return st.sampled_from(pairs).map(lambda pair: pair[0] * pair[1])


PATH_PARTS = st.one_of(st.sampled_from(["..", ".", "", "a", "b", "data", "TASK.md", "logs", "runs", "\x00", "ü",
                                        "~", "$HOME", "*", " ", "proc", "etc", "..."]), _repeated(("x", 300)))
PATHS = st.one_of(
    st.sampled_from(["../", "/", ".", "", "\x00", "a/../../b", "../outside.txt", "/etc/passwd", "data/../../x",
                     "~/x", "./././TASK.md", "//", "\\..\\x", "data/train.jsonl/", "data\x00/x", "TASK.md", "data",
                     "logs", "notes/a.txt", "base_model/x"]),
    _repeated(("a", 5_000), ("a/", 3_000), ("x", 255), ("x", 256), ("../", 1_000)),
    st.lists(PATH_PARTS, min_size=1, max_size=8).map("/".join),
    st.tuples(st.booleans(), st.lists(PATH_PARTS, min_size=1, max_size=4)).map(
        lambda t: ("/" if t[0] else "") + "/".join(t[1])),
    TEXT,
)
# Paths for train/evaluate/submit: hostile, but never a real file or checkpoint (no model is trained or scored).
UNREAL_PATHS = st.one_of(
    st.sampled_from(["../", "/", "", "\x00", "a/../../b", "../base_model", "/etc", "nope", "~", "//",
                     "data/none.jsonl", "base_model/nothing", "TASK.md/x"]),
    _repeated(("a", 5_000), ("a/", 3_000), ("x", 256)),
    st.lists(PATH_PARTS.filter(lambda part: part not in (".", "", "data", "logs", "runs", "TASK.md")),
             min_size=1, max_size=5).map(lambda parts: "nowhere/" + "/".join(parts)),
)
# Commands that end at once whatever the text: printf of a quoted string, or a comment.
COMMANDS = st.one_of(
    st.sampled_from(["true", "false", "exit 3", "echo hi", "echo err >&2", "ls", "pwd", "", " ", "\x00",
                     "printf 'a\\0b'", "echo a\x00b", "head -c 100 /dev/zero", "cat TASK.md", "kill -9 $$"]),
    TEXT.map(lambda text: "printf %s " + shlex.quote(text)),
    TEXT.map(lambda text: "# " + text.replace("\n", " ")),
    BIG_STRINGS.map(lambda text: "# " + text[:150_000].replace("\n", " ")),
)
JOB_IDS = st.one_of(st.sampled_from(["job-1", "job-2", "job-3", "job-0", "job--1", "job-99999999999999999999",
                                     "../job-1", "job-1\x00", "", " ", "JOB-1"]), TEXT)
RECORDS = st.one_of(
    st.lists(st.fixed_dictionaries({"text": TEXT}), max_size=4),
    st.lists(st.fixed_dictionaries({"prompt": TEXT, "completion": TEXT}), max_size=4),
    st.lists(JSON_LIKE, max_size=4),
)
CONTENT = st.one_of(TEXT, BIG_STRINGS, st.text(CHARACTERS, max_size=2_000))
SMALL_TIMEOUTS = st.one_of(st.integers(-3, 2), st.integers(-(10**30), -1))
_BAD_VALUE = st.one_of(JSON_LIKE, PYTHON_LIKE)


def _value_for(tool: str, name: str, spec: dict) -> st.SearchStrategy:
    """A hostile value for one argument: of its type most of the time, of any type sometimes."""
    kind = spec.get("type")
    if tool in ("run", "launch") and name == "command":
        right = COMMANDS
    elif tool == "wait" and name == "timeout_s":
        return st.one_of(SMALL_TIMEOUTS, SMALL_TIMEOUTS.map(str), st.sampled_from([None, 1.5, math.nan, "x", []]))
    elif tool in ("train", "evaluate", "submit") and kind == "string":
        return st.one_of(UNREAL_PATHS, st.sampled_from([None, 5, [], {}, b"x", True]))
    elif name == "job_id":
        right = JOB_IDS
    elif name == "records":
        right = RECORDS
    elif name == "content":
        right = CONTENT
    elif kind == "string":
        right = PATHS
    elif kind == "integer":
        right = st.one_of(st.integers(-10, 1_000), HUGE_INTS, st.integers().map(str),
                          st.sampled_from([1.0, 2.5, math.nan, math.inf, "1e3", " 7 ", "0x10", True]))
    elif kind == "number":
        right = st.one_of(FLOATS, st.integers(), st.sampled_from(["1e-3", "nan", "inf", "-0", "1e999"]))
    elif kind == "boolean":
        right = st.one_of(st.booleans(), st.sampled_from(["true", "FALSE", "yes", 1, 0, None]))
    else:
        right = _BAD_VALUE
    return st.one_of(right, right, right, _BAD_VALUE)


def _arguments_for(schema: dict) -> st.SearchStrategy:
    function = schema["function"]
    tool, properties = function["name"], function["parameters"]["properties"]
    required = set(function["parameters"].get("required", []))
    pieces = {name: st.one_of(_value_for(tool, name, spec), st.just(_MISSING) if name not in required
                              else _value_for(tool, name, spec)) for name, spec in properties.items()}
    base = st.fixed_dictionaries(pieces).map(lambda d: {k: v for k, v in d.items() if v is not _MISSING})
    # Sometimes a required argument is dropped, or an unknown one added.
    return st.one_of(base, base, base, base.flatmap(lambda d: st.dictionaries(KEYS, _BAD_VALUE, max_size=2).map(
        lambda extra: {**d, **extra})), base.map(lambda d: dict(list(d.items())[1:])))


_MISSING = object()


class SlotsFunction:
    __slots__ = ("name", "arguments")

    def __init__(self, name, arguments):
        self.name, self.arguments = name, arguments


class RaisingAttributes:
    """An SDK-like object whose attributes raise what it was given."""

    def __init__(self, error: BaseException, where: str):
        self._error, self._where = error, where

    def __getattr__(self, name):
        if name == self._where or self._where == "*":
            raise self._error
        if name == "function":
            return RaisingAttributes(self._error, "name")
        raise AttributeError(name)

    def __repr__(self):
        if self._where in ("*", "repr"):
            raise self._error
        return "RaisingAttributes()"


class EvilStr(str):
    __hash__ = str.__hash__

    def __eq__(self, other):
        raise RuntimeError("EvilStr.__eq__")


_ERRORS = st.sampled_from([RuntimeError("boom"), ValueError("v"), TypeError("t"), KeyError("k"), MemoryError(),
                           RecursionError(), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")])
ODD_OBJECTS = st.one_of(
    st.builds(RaisingAttributes, _ERRORS, st.sampled_from(["function", "name", "arguments", "id", "repr", "*"])),
    st.sampled_from([object(), ..., print, dict, type, NotImplemented, iter([]), range(3), b"", bytearray(b"\xff"),
                     memoryview(b"{}"), frozenset({1}), 1j]),
    TEXT.map(EvilStr).map(lambda name: {"tool": name}),
)


def _tool_call_forms(name: st.SearchStrategy, arguments: st.SearchStrategy) -> st.SearchStrategy:
    """One call in every form agents send, some of them broken."""
    plain = st.builds(lambda n, a: {"tool": n, "arguments": a}, name, arguments)
    as_json_args = st.builds(lambda n, a: {"name": n, "arguments": _dumps(a)}, name, arguments)
    openai = st.builds(lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": _dumps(a)}},
                       st.one_of(TEXT, JSON_LIKE), name, arguments)
    sdk = st.builds(lambda n, a: SimpleNamespace(id="call_1", type="function",
                                                 function=SimpleNamespace(name=n, arguments=_dumps(a))), name, arguments)
    slots = st.builds(lambda n, a: SimpleNamespace(id=None, function=SlotsFunction(n, a)), name, arguments)
    as_text = plain.map(_dumps)
    as_bytes = as_text.map(lambda text: text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    in_a_list = plain.map(lambda call: [call])
    return st.one_of(plain, plain, as_json_args, openai, sdk, slots, as_text, as_text, as_bytes, in_a_list,
                     st.builds(_corrupted, as_text, st.integers(0, 4), st.floats(0, 1), TEXT))


def _dumps(value: Any) -> Any:
    try:
        return json.dumps(value)  # nan and inf become NaN and Infinity, as some clients send them
    except (TypeError, ValueError):
        return value  # not JSON: sent as is


def _corrupted(text: Any, how: int, where: float, insert: str) -> Any:
    """`text` (a call's JSON) cut short, with text inserted, with single quotes, doubled, or in a code fence."""
    if not isinstance(text, str) or not text:
        return text
    at = int(where * len(text))
    return [text[:at], text[:at] + insert + text[at:], text.replace('"', "'"), text + text,
            "```json\n" + text + "\n```"][how]


def action_strategy(tool_schemas: list[dict]) -> st.SearchStrategy:
    """Every kind of action: structured calls of real tools (about half), and everything else."""
    names = [schema["function"]["name"] for schema in tool_schemas]
    structured = st.one_of(*(
        _tool_call_forms(st.just(schema["function"]["name"]), _arguments_for(schema)) for schema in tool_schemas))
    odd_names = st.one_of(TEXT, st.sampled_from([n.upper() for n in names] + [n + " " for n in names]), JSON_LIKE)
    odd_calls = _tool_call_forms(st.one_of(st.sampled_from(names), odd_names), st.one_of(JSON_LIKE, _BAD_VALUE))
    odd_functions = st.builds(lambda f: {"id": "call_1", "type": "function", "function": f},
                              st.one_of(JSON_LIKE, PYTHON_LIKE))
    anything = st.one_of(JSON_LIKE, PYTHON_LIKE, TEXT, st.binary(max_size=64), BIG_STRINGS, ODD_OBJECTS,
                         odd_functions, st.lists(structured, max_size=3))
    return st.one_of(structured, structured, structured, odd_calls, anything, anything)


# ---------------------------------------------------------------------------------------------------- runner


def fuzz(actions: int, *, seed: int | None = None, max_steps: int = 150, workdir: str | None = None,
         verbose: bool = False) -> dict[str, Any]:
    """Send `actions` fuzzed actions to one env (resetting when an episode ends); count what went wrong.

    `seed` None: hypothesis's derandomized (same every run) draw. Returns the counts and, for each kind of
    exception or violated property, how often it happened and one example (action, message, where).
    """
    with tempfile.TemporaryDirectory(prefix="ptb-fuzz-", dir=workdir) as scratch:
        return _fuzz(actions, seed, max_steps, Path(scratch), verbose)


def _fuzz(actions: int, seed: int | None, max_steps: int, scratch: Path, verbose: bool) -> dict[str, Any]:
    options = {**SMALL, "workdir": str(scratch / "episodes"), "record_dir": str(scratch / "runs"),
               "max_steps": max_steps}
    state = SimpleNamespace(env=gym.make("PTB/math-v0", **options), steps=0, episode_steps=0, tainted=False,
                            recording=None, exceptions=0, violations=0, kinds={}, episodes=0, checked=0,
                            remade=0, tools=set(), errors=0, env_failures=0)

    def problem(kind: str, message: str, action: Any) -> None:
        entry = state.kinds.setdefault(kind, {"count": 0, "message": message[:500],
                                              "action": _short(action_for_record(action))})
        entry["count"] += 1
        if verbose:
            print(f"[fuzz] {kind}: {message[:200]}", file=sys.stderr)

    def start_episode() -> dict[str, Any]:
        _, info = state.env.reset()
        state.recording, state.episode_steps, state.tainted = info.get("recording"), 0, False
        state.episodes += 1
        return info

    def check_recording() -> None:
        if state.tainted or state.recording is None:
            return
        try:
            recorded = len(ptb_gym.read_episode(state.recording).steps)
        except Exception as error:  # noqa: BLE001
            state.violations += 1
            problem(f"recording unreadable: {type(error).__name__}", str(error), None)
            return
        state.checked += 1
        if recorded != state.episode_steps:
            state.violations += 1
            problem("recording misses steps", f"{recorded} recorded of {state.episode_steps}", None)

    def recover() -> None:
        """After an exception out of step: the env must still reset; if it cannot, that is counted, and a new one made."""
        try:
            start_episode()
        except Exception as error:  # noqa: BLE001
            problem(f"reset after an exception raised {type(error).__name__}", _where(error), None)
            state.violations += 1
            try:
                state.env.close()
            except Exception:  # noqa: BLE001
                pass
            state.env = gym.make("PTB/math-v0", **options)
            state.remade += 1
            start_episode()

    strategy = action_strategy(start_episode()["tools"])

    def one_step(action: Any) -> None:
        state.steps += 1
        state.episode_steps += 1
        try:
            observation, reward, terminated, truncated, info = state.env.step(action)
        except Exception as error:  # noqa: BLE001 - the property under test: nothing comes out of step
            state.exceptions += 1
            problem(f"step raised {type(error).__name__} at {_where(error)}", f"{error!s:.300}", action)
            state.tainted = True
            recover()
            return
        bad = _malformed(state.env, observation, reward, terminated, truncated, info)
        if bad:
            state.violations += 1
            problem(bad, repr(observation)[:300], action)
        if isinstance(info, dict):
            state.tools.add(info.get("tool"))
            state.errors += "error" in info
            if info.get("internal_error") or "bug in ptb-gym" in str(observation):
                # Not an exception, but the env blamed itself for the agent's input: reported, not asserted here.
                state.env_failures += 1
                problem(f"env failure observation ({info.get('tool')})", str(info.get("error", observation)), action)
        if terminated or truncated:
            check_recording()
            recover()

    settings_ = settings(max_examples=actions, database=None, deadline=None, phases=[Phase.generate],
                         suppress_health_check=list(HealthCheck), derandomize=seed is None, print_blob=False)

    @settings_
    @given(st.data())
    def run(data) -> None:
        if state.steps < actions:
            one_step(data.draw(strategy, label="action"))

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    started = time.monotonic()
    while state.steps < actions:  # hypothesis may stop short of max_examples; go on until the count is reached
        before = state.steps
        run()
        if state.steps == before:
            break
    check_recording()
    usable = True
    try:
        state.env.reset()
        state.env.close()
        state.env.close()
    except Exception as error:  # noqa: BLE001
        usable = False
        state.violations += 1
        problem(f"reset/close at the end raised {type(error).__name__}", _where(error), None)
    return {"actions": state.steps, "exceptions": state.exceptions, "violations": state.violations,
            "seconds": round(time.monotonic() - started, 2), "episodes": state.episodes,
            "recordings_checked": state.checked, "envs_remade": state.remade, "usable_at_end": usable,
            "tool_error_observations": state.errors, "env_failure_observations": state.env_failures,
            "tools_reached": sorted(t for t in state.tools if t),
            "problems": dict(sorted(state.kinds.items(), key=lambda kv: -kv[1]["count"]))}


def _malformed(env, observation, reward, terminated, truncated, info) -> str | None:
    if not isinstance(observation, str):
        return f"observation is a {type(observation).__name__}"
    if not env.observation_space.contains(observation):
        return f"observation of {len(observation)} characters is outside the observation space"
    try:
        observation.encode("utf-8")
    except UnicodeEncodeError:
        return "observation is not valid Unicode (lone surrogate)"
    if not isinstance(reward, float) or not math.isfinite(reward):
        return f"reward {reward!r} is not a finite float"
    if not isinstance(terminated, bool) or not isinstance(truncated, bool):
        return "terminated/truncated are not bools"
    if not isinstance(info, dict):
        return f"info is a {type(info).__name__}"
    return None


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    inner = [f for f in frames if "/ptb_gym/" in f.filename or "/tools/" in f.filename or "/envs/" in f.filename]
    frame = (inner or frames or [None])[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" if frame else "?"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 300 else text[:200] + f"... ({len(text)} characters)"


def describe(report: dict[str, Any]) -> str:
    lines = [f"{report['actions']} actions, {report['exceptions']} exceptions, {report['violations']} violated "
             f"properties, {report['env_failure_observations']} observations saying the env failed, "
             f"{report['episodes']} episodes, {report['seconds']} s"]
    for kind, entry in report["problems"].items():
        lines.append(f"  {entry['count']:>5} x {kind}: {entry['message'][:160]!r}; action {entry['action'][:160]}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- tests


def test_step_never_raises_on_fuzzed_actions(tmp_path):
    report = fuzz(CI_ACTIONS, workdir=str(tmp_path))
    print(describe(report))
    assert report["actions"] == CI_ACTIONS and report["usable_at_end"]
    assert report["exceptions"] == 0 and report["violations"] == 0, describe(report)
    assert report["recordings_checked"] >= 1
    # The fuzzer reaches the tools, not only the parser.
    assert len(report["tools_reached"]) >= 8, report["tools_reached"]


@pytest.mark.slow
def test_step_never_raises_on_10000_fuzzed_actions(tmp_path):
    report = fuzz(FULL_ACTIONS, seed=0, workdir=str(tmp_path))
    print(describe(report))
    assert report["actions"] == FULL_ACTIONS
    assert report["exceptions"] == 0 and report["violations"] == 0, describe(report)


def test_strategies_draw_every_kind_of_action():
    """The strategy itself: it yields structured calls, text, bytes, objects (a check on the fuzzer)."""
    schemas = [{"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}, "max_lines": {"type": "integer"}},
        "required": ["path"]}}}]
    seen: set[str] = set()

    @settings(max_examples=300, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(action_strategy(schemas))
    def draw(action):
        seen.add(type(action).__name__)

    draw()
    assert {"dict", "str", "bytes", "list", "SimpleNamespace"} <= seen, seen


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Fuzz env.step and print what raised.")
    parser.add_argument("--actions", type=int, default=FULL_ACTIONS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    arguments = parser.parse_args()
    result = fuzz(arguments.actions, seed=arguments.seed, verbose=arguments.verbose)
    print(describe(result))
    sys.exit(1 if result["exceptions"] or result["violations"] else 0)
