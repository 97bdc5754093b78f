"""Score one function call against a BFCL v4 "simple" ground truth, the way BFCL's AST checker does.

Follows `bfcl_eval/eval_checker/ast_eval/ast_checker.py` (`simple_function_checker`, `type_checker`,
`standardize_string`, `string_/list_/dict_/list_dict_checker`) for Python-language items, and decodes
completions like `default_decode_ast_prompting` / `ast_parse` (Python syntax) and `parse_json_function_call`.
Its quirks are kept on purpose so that scores stay comparable: a bare name as a value is a "variable" (its
text), an int passes for a float only at the top level, a value whose type matches the ground truth's rather
than the schema's skips the string standardisation. What is simplified or stricter:

* the function name matches as written or with "." replaced by "_" (BFCL does the latter only for models
  configured so, e.g. OpenAI function calling);
* the decoder never evaluates anything: arithmetic, lambdas, calls and subscripts as values, positional
  arguments and `**kwargs` make the completion unparseable (BFCL evals BinOps, keeps calls as text and
  silently drops positional arguments); completions over `MAX_CHARS` are not parsed;
* a ```python / ```json fence and a <TOOLCALL> tag are stripped; a schema type BFCL does not know, or a
  malformed call, fails with a reason instead of raising.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

MAX_CHARS = 8000
"""Longer completions are not parsed: a hostile completion must cost the scorer nothing."""

# BFCL's PYTHON_TYPE_MAPPING ("any" is a string there too).
_TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
          "dict": dict, "any": str}
_FENCE = re.compile(r"^```[A-Za-z]*\s*|\s*```$")
_TOOLCALL = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.DOTALL)


class _Reject(Exception):
    """A value the decoder refuses (it would need evaluating)."""


# ---- decoding ----------------------------------------------------------------------------------------------------
def _clean(text: str) -> str:
    m = _TOOLCALL.search(text)
    return _FENCE.sub("", (m.group(1) if m else text).strip())


def _value(node: ast.AST) -> Any:
    """A literal, as BFCL's `resolve_ast_by_type` reads it; anything needing evaluation is refused."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, ast.List):
        return [_value(v) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(v) for v in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:  # `**x` inside a dict has key None
        return {_value(k): _value(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name):  # BFCL: a variable, scored as its name
        return node.id
    raise _Reject(type(node).__name__)


def _call(node: ast.AST) -> dict:
    if not isinstance(node, ast.Call) or node.args or any(k.arg is None for k in node.keywords):
        raise _Reject("not a call with keyword arguments only")
    parts, f = [], node.func
    while isinstance(f, ast.Attribute):  # dotted names: math.factorial
        parts.append(f.attr)
        f = f.value
    if not isinstance(f, ast.Name):
        raise _Reject("function is not a (dotted) name")
    parts.append(f.id)
    return {"name": ".".join(reversed(parts)), "arguments": {k.arg: _value(k.value) for k in node.keywords}}


def parse_python_calls(text: str) -> list[dict] | None:
    """`[f(a=1), m.g(b="x")]` (brackets optional) -> `[{"name", "arguments"}, ...]`; None if it does not parse."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
    s = _clean(text).strip("`\n ").strip("'")
    if not s.startswith("["):
        s = "[" + s
    if not s.endswith("]"):
        s = s + "]"
    try:
        body = ast.parse(s, mode="eval").body
        elts = [body] if isinstance(body, ast.Call) else body.elts if isinstance(body, (ast.List, ast.Tuple)) else None
        return None if elts is None else [_call(e) for e in elts]
    except (_Reject, SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None  # TypeError: an unhashable dict key; ValueError: e.g. an int over 4300 digits


def _json_call(obj: Any) -> dict | None:
    if not isinstance(obj, dict):
        return None
    for name_key, args_key in (("name", "arguments"), ("function", "parameters")):  # ours, BFCL's JSON prompt
        if isinstance(obj.get(name_key), str):
            args = obj.get(args_key, {})
            if isinstance(args, str):  # OpenAI style: arguments as a JSON string
                try:
                    args = json.loads(args)
                except (ValueError, RecursionError):
                    return None
            return {"name": obj[name_key], "arguments": args} if isinstance(args, dict) else None
    if len(obj) == 1 and isinstance(next(iter(obj.values())), dict):  # BFCL's own {name: {args}}
        (name, args), = obj.items()
        return {"name": name, "arguments": args}
    return None


def parse_json_calls(text: str) -> list[dict] | None:
    """The first JSON object or list in the text, as calls `[{"name", "arguments"}, ...]`; None otherwise."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
    decoder, tries = json.JSONDecoder(), 0
    for m in re.finditer(r"[\[{]", text):
        tries += 1
        if tries > 16:  # bounded work on text full of brackets
            return None
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except (ValueError, RecursionError):
            continue
        calls = [_json_call(o) for o in (obj if isinstance(obj, list) else [obj])]
        return None if None in calls else calls
    return None


# ---- checking ----------------------------------------------------------------------------------------------------
def _std(s: str) -> str:
    """BFCL's `standardize_string`: "April 1, 2024" == "april 1 2024"."""
    return re.sub(r"[ ,./\-_*^]", "", s).lower().replace("'", '"')


def _std_all(values: list) -> list:
    return [_std(v) if type(v) is str else v for v in values]


def _type_ok(value: Any, allowed: list, expected: type, nested: type | None) -> tuple[bool, bool]:
    """BFCL's `type_checker` -> (valid, is_variable). A value of the ground truth's type, when that is not the
    schema's, is a "variable"; arrays check their items one level deep against some allowed list."""
    gt_type = next((type(a) for a in allowed if a != ""), None)
    is_var = gt_type is not None and gt_type is not expected
    if type(value) is expected:
        if nested is None:
            return True, is_var
        for a in allowed:
            if type(a) is not list or all(_type_ok(v, a, nested, None)[0] for v in value):
                return True, is_var
        return False, False
    return (True, True) if gt_type is not None and type(value) is gt_type else (False, False)


def _dict_ok(value: Any, allowed: list) -> bool:
    """BFCL's `dict_checker`: some allowed dict has every given key with an allowed (standardised) value, and
    every key left out is optional ("")."""
    if not isinstance(value, dict):
        return False
    return any(isinstance(a, dict)
               and all(k in a and (_std(v) if type(v) is str else v) in _std_all(a[k]) for k, v in value.items())
               and all(k in value or "" in vs for k, vs in a.items())
               for a in allowed)


def _value_ok(value: Any, allowed: list, expected: type, nested: type | None) -> bool:
    if expected is dict:
        return _dict_ok(value, allowed)
    if expected is list and nested is dict:  # BFCL's `list_dict_checker`: same length, dicts in order
        return any(isinstance(a, list) and len(a) == len(value) and all(_dict_ok(v, [d]) for v, d in zip(value, a))
                   for a in allowed)
    if expected is str:
        return _std(value) in [_std(a) for a in allowed if type(a) is str]
    if expected is list:  # elements standardised one level deep; "" stands for [] as in BFCL
        return _std_all(value) in [_std_all(a) if isinstance(a, list) else [] for a in allowed
                                   if a == "" or isinstance(a, list)]
    return value in allowed


def _short(x: Any, limit: int = 80) -> str:
    r = repr(x)
    return r if len(r) <= limit else r[:limit - 3] + "..."


def _one(x: Any, what: str) -> Any:
    if isinstance(x, list):
        if len(x) != 1:
            raise ValueError(f"wrong number of {what}: got {len(x)}, expected 1")
        return x[0]
    return x


def check_simple(call: dict | list | None, function: dict, ground_truth: dict) -> tuple[bool, str]:
    """BFCL's `simple_function_checker`. `call` is `{"name", "arguments"}` (or a list holding exactly one, as the
    parsers return); `function` the schema; `ground_truth` `{func_name: {param: [allowed values]}}` ("" allowed:
    the parameter may be left out). Returns (ok, reason)."""
    try:
        return _check(_one(call, "calls"), _one(function, "functions"), _one(ground_truth, "answers"))
    except ValueError as e:
        return False, str(e)
    except RecursionError:  # a value nested deeper than comparing or printing it allows
        return False, "value nested too deeply"


def _check(call: Any, function: dict, ground_truth: dict) -> tuple[bool, str]:
    if not (isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("arguments"), dict)):
        return False, "no call"
    name, args = call["name"], call["arguments"]
    expected_name = function["name"]
    if name not in (expected_name, expected_name.replace(".", "_")):
        return False, f"wrong function name: got {_short(name)}, expected {expected_name}"
    props = function["parameters"].get("properties", {})
    answer = next(iter(ground_truth.values()))
    for p in function["parameters"].get("required", []):
        if p not in args:
            return False, f"missing required parameter {p!r}"
    for p, value in args.items():
        if p not in props or p not in answer:
            return False, f"unexpected parameter {_short(p)}"
        allowed, schema = answer[p], props[p]
        kind, item_kind = schema.get("type"), (schema.get("items") or {}).get("type")
        if kind not in _TYPES or (kind in ("array", "tuple") and item_kind is not None and item_kind not in _TYPES):
            return False, f"unsupported schema type for {p!r}: {kind}"
        expected = _TYPES[kind]
        nested = _TYPES.get(item_kind) if kind in ("array", "tuple") else None
        if kind == "tuple" and type(value) is tuple:  # ground truths went through JSON: tuples are lists there
            value = list(value)
        if kind == "float" and type(value) is int:  # Python's own int -> float promotion
            value = float(value)
        valid, is_var = _type_ok(value, allowed, expected, nested)
        if not valid:
            of = f" of {item_kind}" if nested else ""
            return False, f"wrong type for {p!r}: expected {kind}{of}, got {type(value).__name__} {_short(value)}"
        if not (value in allowed if is_var else _value_ok(value, allowed, expected, nested)):
            return False, f"value of {p!r} ({_short(value)}) is not one of {_short(allowed, 120)}"
    for p, allowed in answer.items():
        if p not in args and "" not in allowed:
            return False, f"parameter {p!r} omitted but required by the ground truth"
    return True, "ok"
