"""envs/bfcl/checker.py: decoding completions and scoring them the way BFCL v4's AST checker scores "simple" items.

The items below are copied from bfcl_eval's BFCL_v4_simple_python.json and its possible answers, so the tests need
no data; the last test replays every ground truth of the real test items (the prepared BFCL data).
"""

from __future__ import annotations

import json
import time

from ptb_gym.envs.bfcl.checker import (
    MAX_CHARS,
    check_simple,
    parse_json_calls,
    parse_python_calls,
)


def _fn(name, properties, required):
    parameters = {"type": "dict", "properties": properties, "required": required}
    return {"name": name, "description": "", "parameters": parameters}


INT, FLOAT, STR, BOOL, DICT = ({"type": t} for t in ("integer", "float", "string", "boolean", "dict"))
FLOATS = {"type": "array", "items": FLOAT}
ITEMS = {  # id: (function schema, ground truth); descriptions dropped
    "simple_python_0": (
        _fn("calculate_triangle_area", {"base": INT, "height": INT, "unit": STR}, ["base", "height"]),
        {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}),
    "simple_python_1": (
        _fn("math.factorial", {"number": INT}, ["number"]),
        {"math.factorial": {"number": [5]}}),
    "simple_python_13": (
        _fn("calculate_area_under_curve", {"function": STR, "interval": FLOATS, "method": STR},
            ["function", "interval"]),
        {"calculate_area_under_curve": {"function": ["x**2", "lambda x: x**2", "y=x**2"], "interval": [[1.0, 3.0]],
                                        "method": ["", "trapezoidal"]}}),
    "simple_python_14": (
        _fn("calculate_derivative", {"function": STR, "x_value": FLOAT}, ["function"]),
        {"calculate_derivative": {"function": ["3x**2 + 2x - 1", "lambda x: 3x**2 + 2x - 1"], "x_value": ["", 0.0]}}),
    "simple_python_86": (
        _fn("city_distance.find_shortest",
            {"start_city": STR, "end_city": STR, "transportation": STR, "allow_transfer": BOOL},
            ["start_city", "end_city"]),
        {"city_distance.find_shortest": {"start_city": ["New York"], "end_city": ["Los Angeles"],
                                         "transportation": ["train"], "allow_transfer": [True]}}),
    "simple_python_260": (
        _fn("paint_requirement.calculate", {"area": DICT, "paint_coverage": INT, "exclusion": DICT},
            ["area", "paint_coverage"]),
        {"paint_requirement.calculate": {"area": [{"width": [20], "height": [12]}], "paint_coverage": [350],
                                         "exclusion": [{"type": ["window"], "area": [15]}]}}),
}


def score(item_id, text, parse=parse_python_calls):
    function, truth = ITEMS[item_id]
    return check_simple(parse(text), function, truth)


# ---- decoding -----------------------------------------------------------------------------------------------------
def test_parse_python_calls():
    assert parse_python_calls("[math.factorial(number=5)]") == [{"name": "math.factorial", "arguments": {"number": 5}}]
    assert parse_python_calls("f(a=-1.5, b=[1, {'k': 'v'}], c=True, d=None)") == [
        {"name": "f", "arguments": {"a": -1.5, "b": [1, {"k": "v"}], "c": True, "d": None}}]
    assert parse_python_calls("```python\n[f(a=1), g(b='x')]\n```") == [
        {"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {"b": "x"}}]
    assert parse_python_calls("<TOOLCALL>[f(a=1)]</TOOLCALL>") == [{"name": "f", "arguments": {"a": 1}}]
    # a bare name is a variable to BFCL, scored as its text
    assert parse_python_calls("f(unit=celsius)") == [{"name": "f", "arguments": {"unit": "celsius"}}]
    assert parse_python_calls("[]") == []
    for bad in ("Sure, here it is: f(a=1)", "f(5)", "f(a=1, 2)", "f(**{'a': 1})", "f(a=1+2)", "f(a=g(b=1))",
                "f(a=lambda: 1)", "f(a=x[0])", "f(a={1, 2})", "f()()", "'abc'.upper()", "5", None):
        assert parse_python_calls(bad) is None, bad


def test_parse_json_calls():
    call = [{"name": "math.factorial", "arguments": {"number": 5}}]
    assert parse_json_calls('{"name": "math.factorial", "arguments": {"number": 5}}') == call
    assert parse_json_calls('Here: ```json\n[{"function": "math.factorial", "parameters": {"number": 5}}]\n```') == call
    assert parse_json_calls('{"math.factorial": {"number": 5}}') == call  # BFCL's own {name: args}
    assert parse_json_calls('{"name": "math.factorial", "arguments": "{\\"number\\": 5}"}') == call  # OpenAI style
    assert parse_json_calls('[{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"x": 1}}]') == [
        {"name": "f", "arguments": {}}, {"name": "g", "arguments": {"x": 1}}]
    for bad in ("no json here", '{"name": 5}', '{"a": 1, "b": 2}', "[1, 2]", '{"name": "f", "arguments": [1]}',
                "{broken"):
        assert parse_json_calls(bad) is None, bad


# ---- scoring --------------------------------------------------------------------------------------------------------
def test_a_correct_call_in_python_and_in_json():
    assert score("simple_python_0", "[calculate_triangle_area(base=10, height=5, unit='units')]") == (True, "ok")
    assert score("simple_python_0", '{"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}',
                 parse_json_calls) == (True, "ok")
    assert score("simple_python_1", "math.factorial(number=5)") == (True, "ok")
    assert score("simple_python_1", "math_factorial(number=5)")[0]  # as OpenAI-style models must name it
    assert score("simple_python_260", "paint_requirement.calculate(area={'width': 20, 'height': 12},"
                                      " paint_coverage=350, exclusion={'type': 'Window', 'area': 15})")[0]


def test_optional_parameters():
    assert score("simple_python_0", "calculate_triangle_area(base=10, height=5)")[0]  # unit may be left out ("")
    ok, reason = score("simple_python_0", "calculate_triangle_area(base=10, height=5, unit='cm')")
    assert not ok and reason.startswith("value of 'unit' ('cm') is not one of")
    ok, reason = score("simple_python_86", "city_distance.find_shortest(start_city='New York', end_city='Los Angeles')")
    assert not ok and "'transportation' omitted" in reason  # optional in the schema, not in the ground truth
    assert not score("simple_python_260", "paint_requirement.calculate(area={'width': 20}, paint_coverage=350,"
                                          " exclusion={'type': 'window', 'area': 15})")[0]  # dict key left out


def test_int_passes_for_float_at_the_top_level_only():
    assert score("simple_python_14", "calculate_derivative(function='3x**2 + 2x - 1', x_value=0)")[0]
    assert score("simple_python_13", "calculate_area_under_curve(function='x**2', interval=[1.0, 3.0])")[0]
    ok, reason = score("simple_python_13", "calculate_area_under_curve(function='x**2', interval=[1, 3])")
    assert not ok and "wrong type for 'interval'" in reason  # BFCL checks array items strictly


def test_strings_are_standardised_as_bfcl_does():
    call = ("city_distance.find_shortest(start_city={!r}, end_city='los angeles', transportation='Train',"
            " allow_transfer=True)")
    for city in ("New York", "new york", "NewYork", "new-york", "NEW_YORK."):
        assert score("simple_python_86", call.format(city)) == (True, "ok"), city
    assert not score("simple_python_86", call.format("New Yorke"))[0]
    assert score("simple_python_14", "calculate_derivative(function='3x**2+2x-1')")[0]


def test_failures_and_their_reasons():
    assert score("simple_python_1", "math.gamma(number=5)") == (
        False, "wrong function name: got 'math.gamma', expected math.factorial")
    assert score("simple_python_0", "calculate_triangle_area(base=10)") == (
        False, "missing required parameter 'height'")
    assert score("simple_python_0", "calculate_triangle_area(base=10, height=5, z=1)") == (
        False, "unexpected parameter 'z'")
    ok, reason = score("simple_python_1", 'math.factorial(number="5")')
    assert not ok and reason.startswith("wrong type for 'number': expected integer, got str")
    assert not score("simple_python_1", "math.factorial(number=True)")[0]  # a bool is no integer
    assert score("simple_python_1", "math.factorial(number=6)") == (False, "value of 'number' (6) is not one of [5]")
    assert score("simple_python_1", "[math.factorial(number=5), math.factorial(number=5)]") == (
        False, "wrong number of calls: got 2, expected 1")
    assert score("simple_python_1", "[]")[0] is False
    assert score("simple_python_1", "not a call") == (False, "no call")


def test_hostile_completions_cost_nothing_and_run_nothing(tmp_path):
    marker = tmp_path / "ran"
    started = time.perf_counter()
    hostile = ["x" * 10**6, "[" * (MAX_CHARS - 10), "f(a=" + "[" * 3000 + "]" * 3000 + ")", "f(a=" + "-" * 7000 + "1)",
               "f(a=" + "9" * 7000 + ")", '{"name": "f", "arguments": ' + "[" * 7000, "[x " * 2600,
               f"math.factorial(number=__import__('os').system('touch {marker}'))",
               f"math.factorial(number=(lambda: __import__('os').system('touch {marker}'))())"]
    for text in hostile:
        assert parse_python_calls(text) is None
        assert parse_json_calls(text) is None
        assert score("simple_python_1", text)[0] is False
    assert time.perf_counter() - started < 2 and not marker.exists()
    deep = {"name": "math.factorial", "arguments": {"number": 5, "x": [[[[]]]]}}
    assert check_simple(deep, *ITEMS["simple_python_1"]) == (False, "unexpected parameter 'x'")


def test_positional_arguments_are_rejected():
    assert parse_python_calls("math.factorial(5)") is None
    assert score("simple_python_1", "math.factorial(5)") == (False, "no call")


# ---- the real data ----------------------------------------------------------------------------------------------
def test_every_simple_python_ground_truth_passes():
    """A call of each item's first allowed values, as a dict, as Python text and as JSON, passes: the checker
    agrees with BFCL's own ground truth on all 400 test items (`ptb-gym data prepare bfcl`, run by the setup)."""
    from ptb_gym.envs.bfcl import TASK, _a_right_call, _python_call

    items = TASK.records("test", 1000)
    assert len(items) == 400
    failures = []
    for item in items:
        call = _a_right_call(item)
        for written in (call, parse_python_calls(_python_call(call)), parse_json_calls(json.dumps(call))):
            ok, reason = check_simple(written, item["functions"], item["ground_truth"])
            if not ok:
                failures.append((item["id"], reason))
    assert failures == []
