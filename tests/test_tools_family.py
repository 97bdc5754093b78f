"""PTB/tools-v0: its items, public files, harnesses, scoring (against hostile completions too) and corpus."""

from __future__ import annotations

import json
import random
import time

import pytest
from ptb_gym.envs.tools import TASK, corpus, functions, problems


def harness(name):
    return TASK.harness(name)


# ---- data -----------------------------------------------------------------------------------------------------
def test_items_are_deterministic_and_splits_disjoint():
    assert problems.generate(100, seed=3) == problems.generate(100, seed=3)
    assert problems.generate(30, seed=3) == problems.generate(100, seed=3)[:30]
    assert problems.split("train", 200) == problems.split("train")[:200]
    train = {item["request"] for item in problems.split("train")}
    dev = {item["request"] for item in problems.split("dev")}
    assert len(train) == 5000 and len(dev) == 200 and not train & dev
    for seed in (None, 777):
        test = {item["request"] for item in problems.split("test", 1000, seed)}
        assert len(test) == 1000 and not test & (train | dev)
    assert problems.split("test", 20, 1) != problems.split("test", 20, 2)
    with pytest.raises(ValueError, match="only the test split"):
        problems.split("dev", 5, seed=1)


def test_train_asks_for_a_third_of_the_functions_and_test_for_all_of_them():
    asked = {split: {item["call"]["name"] for item in TASK.records(split, 1000, seed=5 if split == "test" else None)}
             for split in ("train", "test")}
    assert asked["train"] == functions.SEEN and len(functions.SEEN) == len(functions.FUNCTIONS) // 3
    assert asked["test"] == set(functions.BY_NAME)
    offered = {name for item in TASK.records("train", 5000) for name in item["functions"]}
    assert offered == functions.SEEN  # the unseen functions are only in data/functions.json


def test_every_call_is_valid_for_its_schema_and_readable_off_the_request():
    for item in TASK.records("test", 500, seed=9):
        schema = functions.schema(functions.BY_NAME[item["call"]["name"]])["parameters"]
        arguments = item["call"]["arguments"]
        assert item["call"]["name"] in item["functions"] and len(set(item["functions"])) == problems.OFFERED
        assert set(schema["required"]) <= set(arguments) <= set(schema["properties"])
        for key, value in arguments.items():
            spec = schema["properties"][key]
            assert isinstance(value, int if spec["type"] == "integer" else str)
            assert value in spec.get("enum", [value])
            assert str(value) in item["request"]
        assert item["prompt"] == problems.task_prompt(item["functions"], item["request"])


def test_public_files_hold_every_schema_and_records_no_more_than_the_goal_says():
    schemas = json.loads(TASK.public_files()["data/functions.json"])
    assert [s["name"] for s in schemas] == [f.name for f in functions.FUNCTIONS]
    for split in ("train", "dev"):
        assert all(set(r) == {"prompt", "functions", "request", "call"} for r in TASK.records(split, 100))


# ---- scoring --------------------------------------------------------------------------------------------------
ITEM = {"call": {"name": "get_forecast", "arguments": {"city": "Oslo", "days": 3}},
        "functions": ["get_forecast", "call_contact", "lock_door"], "request": "Forecast for Oslo, 3 days ahead."}


@pytest.mark.parametrize(("completion", "right"), [
    (' {"name": "get_forecast", "arguments": {"city": "Oslo", "days": 3}}', True),
    (' {"arguments": {"days": 3, "city": "Oslo"}, "name": "get_forecast"} and more', True),  # order, trailing text
    (' {"name": "get_forecast", "arguments": {"city": "Oslo", "days": "3"}}', False),  # a string for an integer
    (' {"name": "get_forecast", "arguments": {"city": "Oslo", "days": 3.0}}', False),
    (' {"name": "get_forecast", "arguments": {"city": "Oslo", "days": true}}', False),
    (' {"name": "get_forecast", "arguments": {"city": "oslo", "days": 3}}', False),
    (' {"name": "get_forecast", "arguments": {"city": "Oslo"}}', False),  # an argument missing
    (' {"name": "get_forecast", "arguments": {"city": "Oslo", "days": 3, "unit": "celsius"}}', False),  # one extra
    (' {"name": "get_weather", "arguments": {"city": "Oslo", "days": 3}}', False),
    (' {"name": "get_forecast", "arguments": {"city": "Oslo", "days": 3}, "id": 1}', False),
    (' get_forecast(city="Oslo", days=3)', False),  # the json harness wants JSON
    ('', False), (' {', False), (' null', False), (' [1, 2]', False), (' {"name": "get_forecast"}', False),
    (" " + "[" * 100_000, False), (" " + '{"a":' * 50_000, False), ("\x00\ud800 {", False),
])
def test_the_json_harness_scores_exactly_the_expected_call(completion, right):
    assert TASK.score([ITEM], [completion], harness("json")) == [float(right)]


@pytest.mark.parametrize(("completion", "right"), [
    (' get_forecast(city="Oslo", days=3)', True),
    (" get_forecast(days=3, city='Oslo')", True),
    (' get_forecast("Oslo", 3)', False),  # positional arguments do not name the parameters
    (' get_forecast(city="Oslo", days=3.0)', False),
    (' get_forecast(city="Oslo", days=__import__("os").getpid())', False),  # literals only, never evaluated
    (' get_forecast(**{"city": "Oslo", "days": 3})', False),
    (' api.get_forecast(city="Oslo", days=3)', False),
    (' {"name": "get_forecast", "arguments": {"city": "Oslo", "days": 3}}', False),
    (" " + "(" * 10_000, False), (" get_forecast(city=" + "[" * 5000 + ")", False),
])
def test_the_python_harness_reads_a_call_with_literal_keyword_arguments(completion, right):
    assert TASK.score([ITEM], [completion], harness("python")) == [float(right)]


def test_hostile_completions_cost_the_scorer_nothing():
    started = time.monotonic()
    hostile = ["{" * 200_000, "[" * 200_000 + "]" * 200_000, '"' * 10**6, "1e999999999", "9" * 100_000]
    for name in ("json", "python", "chat_json"):
        assert TASK.score([ITEM] * len(hostile), hostile, harness(name)) == [0.0] * len(hostile)
    assert time.monotonic() - started < 5


def test_harness_prompts():
    item = TASK.records("dev", 1)[0]
    assert TASK.prompt(item, harness("json")) == item["prompt"] and item["prompt"].endswith("\nCall:")
    few = TASK.prompt(item, harness("few_shot"))
    assert few.endswith(item["prompt"]) and few.count("\nCall: {") == 2
    assert TASK.prompt(item, harness("python")).endswith("\nPython call:")
    system, user = TASK.prompt(item, harness("chat_json"))
    assert user == {"role": "user", "content": item["request"]}
    assert all(json.dumps(functions.schema(functions.BY_NAME[n])) in system["content"] for n in item["functions"])
    assert TASK.expected(item) == json.dumps(item["call"])


# ---- corpus ---------------------------------------------------------------------------------------------------
def test_corpus_is_deterministic_and_never_holds_an_item_or_a_task_format():
    docs = corpus.documents(random.Random(1), 3000)
    assert docs == corpus.documents(random.Random(1), 3000)
    assert all(0 < len(d) <= corpus.MAX_CHARS for d in docs)
    for marker in ("Question", "Answer", "####", "Functions:", "Request:", "Call:"):
        assert not any(marker in d for d in docs), marker
    requests = {item["request"] for item in TASK.records("test", 1000, seed=3)}
    assert not any(request in doc for doc in docs for request in requests)
    assert sum('"name":' in d for d in docs) > 300  # JSON and schemas make up much of it


def test_call_patterns_pair_a_made_up_request_with_its_call_in_the_documents_own_format():
    import ast
    import re

    from ptb_gym.baselines import pretrain_small

    writer = pretrain_small.PatternWriter(random.Random(0), math_writer=None, call_patterns=True)
    keys = set()
    for _ in range(200):
        state = writer.calls(None)  # what a document keeps: the call's keys and syntax, the listing's style
        (name_key, arguments_key), as_json = state[:2]
        for _ in range(3):
            source, call = writer.calls(state)
            listing, request = source.rsplit("\n", 1)
            if as_json:
                parsed = json.loads(call)
                assert set(parsed) == {name_key, arguments_key}
                name, arguments = parsed[name_key], parsed[arguments_key]
            else:
                tree = ast.parse(call, mode="eval").body
                name, arguments = tree.func.id, {k.arg: ast.literal_eval(k.value) for k in tree.keywords}
            assert name in re.findall(r"(\w+)\(", listing) and name not in functions.BY_NAME
            assert all(str(value) in request for value in arguments.values())
            assert not any(f in source + call for f in ("Functions:", "Request:", "Call:", "Question", "Answer"))
        keys.add((name_key, arguments_key))
    assert len(keys) == len(pretrain_small.CALL_KEYS)  # which keys a call has, only the document's examples say
