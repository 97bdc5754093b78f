"""Pretraining documents for the shared base model: small Python programs and what they print.

Each document is one to four snippets: a small function (a one-line docstring or a comment, or with
``long_docstrings`` a multi-line docstring closed on a line of its own; a body written as a loop, a comprehension
or a builtin) followed by calls with their results as comments (``print(f(x))  # 6``) or asserts; a short
script of loops, ifs and prints with the printed lines as comments; or string and list operations with their
values. The results are computed here, never by running the code.

What the documents are not: a problem of PTB/code-v0 or its prompt format. The corpus's functions take their
constants as arguments (``count_above(values, limit)``) where a problem bakes them into its docstring (but for
``related`` versions of a function, which may say a constant's value in a sentence of their own), no docstring
carries a ``>>>`` example, and the words "Question", "Answer" and ``####`` never occur (they are
the math task's format). Pure Python and fast: 150,000 documents take a few seconds.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ptb_gym.envs.corpus import compose

__all__ = ["documents"]

MAX_CHARS = 1500

WORDS = (
    "apple", "river", "stone", "cloud", "green", "table", "level", "radar", "noon", "tiger", "lemon", "paper",
    "house", "light", "music", "ocean", "pizza", "robot", "smile", "train", "water", "zebra", "kayak", "civic",
    "bread", "chair", "dance", "eagle", "flame", "grape", "honey", "igloo", "juice", "kite", "mango", "night",
    "olive", "plant", "queen", "salad", "sugar", "tulip", "uncle", "voice", "wheel", "yacht", "cat", "dog", "sun",
    "moon", "tree", "book", "bird", "fish", "red", "blue", "hello", "world", "python", "code", "data", "list",
    "refer", "madam", "wow", "pop", "sky", "road", "snow", "rain", "star", "gold", "milk", "rose", "leaf", "box",
)
LIST_NAMES = ("values", "nums", "numbers", "items", "data", "xs", "scores", "arr", "seq", "lst")
TEXT_NAMES = ("text", "s", "word", "line", "phrase", "name", "string", "sentence")
INT_NAMES = ("n", "x", "num", "value", "k", "count")
LIMIT_NAMES = ("limit", "threshold", "bound", "cutoff", "target", "k", "m")
_ROLE_WORDS = {"L": "a list of numbers", "T": "a string", "N": "a number", "K": "a number", "C": "a character",
               "W": "a word"}


def _ints(rng: random.Random, lo: int = -5, hi: int = 30, longest: int = 7) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(0, longest))]


def _text(rng: random.Random, most: int = 4) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, most)))


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def _fact(n: int) -> int:
    out = 1
    for i in range(2, n + 1):
        out *= i
    return out


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


@dataclass(frozen=True)
class _Op:
    """A function the corpus writes: names, parameter roles, docstrings, bodies and how to compute it."""

    names: tuple[str, ...]
    roles: tuple[str, ...]  # "L" list of ints, "T" text, "N" int, "K" a limit-like int, "C" a character
    docs: tuple[str, ...]
    bodies: tuple[str, ...]  # lines joined by "\n", parameters as {0}, {1}, ...; indented by the writer
    impl: Callable[..., Any]
    args: Callable[[random.Random], tuple]


_OPS: tuple[_Op, ...] = (
    _Op(("total", "add_all", "list_sum"), ("L",), ("Add up the numbers.", "The total of all the values."),
        ("result = 0\nfor v in {0}:\n    result += v\nreturn result", "return sum({0})"),
        sum, lambda r: (_ints(r),)),
    _Op(("count_above", "how_many_over", "num_bigger"), ("L", "K"),
        ("Count the values bigger than the limit.", "How many items exceed the given bound."),
        ("count = 0\nfor v in {0}:\n    if v > {1}:\n        count += 1\nreturn count",
         "return len([v for v in {0} if v > {1}])", "return sum(1 for v in {0} if v > {1})"),
        lambda xs, k: sum(1 for v in xs if v > k), lambda r: (_ints(r), r.randint(0, 20))),
    _Op(("sum_below", "small_total", "add_under"), ("L", "K"),
        ("Sum of the items under the cutoff.", "Add the numbers that are less than the bound."),
        ("out = 0\nfor v in {0}:\n    if v < {1}:\n        out += v\nreturn out",
         "return sum(v for v in {0} if v < {1})"),
        lambda xs, k: sum(v for v in xs if v < k), lambda r: (_ints(r), r.randint(0, 20))),
    _Op(("largest", "biggest", "top_value"), ("L",), ("The biggest number, or None for no numbers.",),
        ("if not {0}:\n    return None\nbest = {0}[0]\nfor v in {0}:\n    if v > best:\n        best = v\nreturn best",
         "if not {0}:\n    return None\nreturn max({0})"),
        lambda xs: max(xs) if xs else None, lambda r: (_ints(r),)),
    _Op(("smallest", "lowest", "min_value"), ("L",), ("The lowest number, or None for no numbers.",),
        ("if not {0}:\n    return None\nlow = {0}[0]\nfor v in {0}[1:]:\n    if v < low:\n        low = v\nreturn low",
         "return min({0}) if {0} else None"),
        lambda xs: min(xs) if xs else None, lambda r: (_ints(r),)),
    _Op(("reverse_text", "backwards", "flip"), ("T",), ("The text read from the end.", "Reverse the characters."),
        ("return {0}[::-1]", "out = ''\nfor ch in {0}:\n    out = ch + out\nreturn out"),
        lambda s: s[::-1], lambda r: (_text(r, 2),)),
    _Op(("count_letter", "letter_count", "occurrences"), ("T", "C"),
        ("How often the letter appears in the text.", "Count one character."),
        ("return {0}.count({1})", "n = 0\nfor ch in {0}:\n    if ch == {1}:\n        n += 1\nreturn n"),
        lambda s, c: s.count(c), lambda r: ((t := _text(r, 3)), r.choice(t.replace(" ", "") + "aeiou"))),
    _Op(("is_mirror", "same_backwards", "symmetric"), ("T",),
        ("True when the text is the same reversed.", "Check whether the word reads the same both ways."),
        ("return {0} == {0}[::-1]", ("i, j = 0, len({0}) - 1\nwhile i < j:\n    if {0}[i] != {0}[j]:\n"
                                     "        return False\n    i += 1\n    j -= 1\nreturn True")),
        lambda s: s == s[::-1], lambda r: (r.choice(WORDS),)),
    _Op(("word_lengths", "lengths", "sizes_of_words"), ("T",), ("The length of each word.",),
        ("return [len(w) for w in {0}.split()]", "out = []\nfor w in {0}.split():\n    out.append(len(w))\nreturn out"),
        lambda s: [len(w) for w in s.split()], lambda r: (_text(r),)),
    _Op(("shout", "loud", "yell"), ("T",), ("Upper case with an exclamation mark.",),
        ("return {0}.upper() + '!'",), lambda s: s.upper() + "!", lambda r: (_text(r, 2),)),
    _Op(("only_odd", "odd_items", "keep_odd"), ("L",), ("The odd numbers, in order.", "Drop the even values."),
        ("return [v for v in {0} if v % 2 == 1]",
         "out = []\nfor v in {0}:\n    if v % 2 != 0:\n        out.append(v)\nreturn out"),
        lambda xs: [v for v in xs if v % 2], lambda r: (_ints(r),)),
    _Op(("scale", "times_all", "multiply_each"), ("L", "K"), ("Multiply every value by the factor.",),
        ("return [v * {1} for v in {0}]", "out = []\nfor v in {0}:\n    out.append(v * {1})\nreturn out"),
        lambda xs, k: [v * k for v in xs], lambda r: (_ints(r, -3, 12, 5), r.randint(2, 9))),
    _Op(("prefix_sums", "cumulative", "accumulate"), ("L",), ("Each position holds the sum so far.",),
        ("out = []\nacc = 0\nfor v in {0}:\n    acc += v\n    out.append(acc)\nreturn out",),
        lambda xs: [sum(xs[: i + 1]) for i in range(len(xs))], lambda r: (_ints(r, -3, 15, 6),)),
    _Op(("factorial", "fact", "product_up_to"), ("N",), ("Multiply the numbers from 1 to n.",),
        ("result = 1\nfor i in range(2, {0} + 1):\n    result *= i\nreturn result",
         "if {0} <= 1:\n    return 1\nreturn {0} * {name}({0} - 1)"),
        _fact, lambda r: (r.randint(0, 9),)),
    _Op(("square_sum", "sum_of_squares"), ("N",), ("Add the squares of 1 to n.",),
        ("return sum(i * i for i in range(1, {0} + 1))",
         "t = 0\nfor i in range(1, {0} + 1):\n    t += i * i\nreturn t"),
        lambda n: sum(i * i for i in range(1, n + 1)), lambda r: (r.randint(0, 12),)),
    _Op(("num_digits", "digit_count", "width"), ("N",), ("How many digits the number has.",),
        ("return len(str(abs({0})))",), lambda n: len(str(abs(n))), lambda r: (r.randint(-5000, 99999),)),
    _Op(("is_prime", "prime", "check_prime"), ("N",), ("True if the number is prime.",),
        (("if {0} < 2:\n    return False\nfor d in range(2, int({0} ** 0.5) + 1):\n    if {0} % d == 0:\n"
          "        return False\nreturn True"),), _is_prime, lambda r: (r.randint(0, 60),)),
    _Op(("gcd", "common_divisor"), ("N", "K"), ("The greatest common divisor of two numbers.",),
        ("while {1}:\n    {0}, {1} = {1}, {0} % {1}\nreturn {0}",), _gcd,
        lambda r: (r.randint(1, 90), r.randint(1, 90))),
    _Op(("between", "in_range", "within"), ("N", "K", "K"), ("Whether x lies from low to high, inclusive.",),
        ("return {1} <= {0} <= {2}", "if {0} < {1}:\n    return False\nif {0} > {2}:\n    return False\nreturn True"),
        lambda x, lo, hi: lo <= x <= hi, lambda r: (r.randint(-5, 25), r.randint(-5, 5), r.randint(6, 20))),
    _Op(("bounded", "limit_to", "squeeze"), ("N", "K", "K"), ("Keep x inside low and high.",),
        ("return max({1}, min({0}, {2}))", "if {0} < {1}:\n    return {1}\nif {0} > {2}:\n    return {2}\nreturn {0}"),
        lambda x, lo, hi: max(lo, min(x, hi)), lambda r: (r.randint(-20, 40), r.randint(-5, 5), r.randint(6, 20))),
    _Op(("unique", "distinct", "no_repeats"), ("L",), ("Remove repeated values, first ones first.",),
        (("seen = set()\nout = []\nfor v in {0}:\n    if v not in seen:\n        seen.add(v)\n        out.append(v)"
          "\nreturn out"), "return list(dict.fromkeys({0}))"),
        lambda xs: list(dict.fromkeys(xs)), lambda r: (_ints(r, 0, 6, 8),)),
    _Op(("remove_char", "strip_letter", "without"), ("T", "C"), ("Delete every copy of the character.",),
        ("return {0}.replace({1}, '')", "return ''.join(ch for ch in {0} if ch != {1})"),
        lambda s, c: s.replace(c, ""), lambda r: ((t := _text(r, 2)), r.choice(t.replace(" ", "")))),
    _Op(("title_words", "headline", "cap_each"), ("T",), ("Make the first letter of each word upper case.",),
        ("return ' '.join(w[0].upper() + w[1:] for w in {0}.split())", "return {0}.title()"),
        lambda s: " ".join(w[0].upper() + w[1:] for w in s.split()), lambda r: (_text(r),)),
    _Op(("word_count", "count_words"), ("T",), ("The number of words.",), ("return len({0}.split())",),
        lambda s: len(s.split()), lambda r: (_text(r, 6),)),
    _Op(("index_of", "find", "position"), ("L", "K"), ("Where the target first appears, or -1.",),
        ("for i, v in enumerate({0}):\n    if v == {1}:\n        return i\nreturn -1",
         "if {1} in {0}:\n    return {0}.index({1})\nreturn -1"),
        lambda xs, k: xs.index(k) if k in xs else -1, lambda r: (_ints(r, 0, 9), r.randint(0, 9))),
    _Op(("letter_counts", "histogram", "tally"), ("T",), ("A dict from each letter to how often it occurs.",),
        (("counts = {{}}\nfor ch in {0}:\n    if ch != ' ':\n        counts[ch] = counts.get(ch, 0) + 1\n"
          "return counts"),),
        lambda s: {c: s.count(c) for c in dict.fromkeys(s) if c != " "}, lambda r: (r.choice(WORDS),)),
    _Op(("digits_total", "add_digits"), ("N",), ("Add the digits of a number.",),
        ("return sum(int(d) for d in str({0}))", "t = 0\nwhile {0} > 0:\n    t += {0} % 10\n    {0} //= 10\nreturn t"),
        lambda n: sum(int(d) for d in str(n)), lambda r: (r.randint(0, 99999),)),
    _Op(("parity", "even_or_odd"), ("N",), ("The word even or odd.",),
        ("if {0} % 2 == 0:\n    return 'even'\nreturn 'odd'", "return 'even' if {0} % 2 == 0 else 'odd'"),
        lambda n: "even" if n % 2 == 0 else "odd", lambda r: (r.randint(-20, 50),)),
    _Op(("vowel_total", "count_aeiou"), ("T",), ("How many of the letters are a, e, i, o or u.",),
        ("return sum(1 for ch in {0} if ch in 'aeiou')",
         "n = 0\nfor ch in {0}.lower():\n    if ch in 'aeiou':\n        n += 1\nreturn n"),
        lambda s: sum(1 for c in s.lower() if c in "aeiou"), lambda r: (_text(r, 3),)),
    _Op(("join_with", "glue"), ("W", "S"), ("Join the words with the separator.",),
        ("return {1}.join({0})",), lambda ws, sep: sep.join(ws),
        lambda r: ([r.choice(WORDS) for _ in range(r.randint(1, 4))], r.choice([", ", "-", " ", "+", "/"]))),
    _Op(("last_or", "final_item"), ("L", "K"), ("The last value, or the default when there is none.",),
        ("if {0}:\n    return {0}[-1]\nreturn {1}", "return {0}[-1] if {0} else {1}"),
        lambda xs, d: xs[-1] if xs else d, lambda r: (_ints(r, 0, 20, 4), r.randint(-1, 9))),
    _Op(("evens_up_to", "even_numbers"), ("N",), ("The even numbers from 0 up to n.",),
        ("return list(range(0, {0} + 1, 2))", "return [i for i in range({0} + 1) if i % 2 == 0]"),
        lambda n: list(range(0, n + 1, 2)), lambda r: (r.randint(0, 14),)),
)

_ROLE_NAMES = {"L": LIST_NAMES, "T": TEXT_NAMES, "N": INT_NAMES, "K": LIMIT_NAMES,
               "C": ("c", "letter", "char", "symbol"), "W": ("words", "parts", "pieces"),
               "S": ("sep", "separator", "glue")}
_LO_HI = (("low", "high"), ("lo", "hi"), ("smallest", "largest"), ("a", "b"))


def _param_names(rng: random.Random, roles: tuple[str, ...]) -> list[str]:
    if roles[1:] == ("K", "K"):
        return [rng.choice(INT_NAMES[:3]), *rng.choice(_LO_HI)]
    names: list[str] = []
    for role in roles:
        options = [n for n in _ROLE_NAMES[role] if n not in names]
        names.append(rng.choice(options))
    return names


def _indent(lines: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in lines.split("\n"))


def _described(params: list[str], roles: tuple[str, ...]) -> str:
    """`xs (a list of numbers), k (a number)`: a long docstring's line of arguments."""
    return ", ".join(f"{param} ({_ROLE_WORDS.get(role, 'a value')})" for param, role in zip(params, roles))


def _function(rng: random.Random, long_docstrings: bool = False) -> str:
    op = rng.choice(_OPS)
    name, params = rng.choice(op.names), _param_names(rng, op.roles)
    body = rng.choice(op.bodies).format(*params, name=name)
    head = f"def {name}({', '.join(params)}):\n"
    style = rng.random()
    doc = rng.choice(op.docs)
    if long_docstrings and 0.3 <= style < 0.55:  # closed on a line of its own, as a HumanEval prompt ends
        text = head + f'    """{doc}\n\n    Arguments: {_described(params, op.roles)}.\n    """\n' + _indent(body)
    elif style < 0.55:
        text = head + f'    """{doc}"""\n' + _indent(body)
    elif style < 0.8:
        text = f"# {doc}\n" + head + _indent(body)
    else:
        text = head + _indent(body)
    calls = []
    for _ in range(rng.randint(1, 3)):
        args = op.args(rng)
        result = op.impl(*[list(a) if isinstance(a, list) else a for a in args])
        call = f"{name}({', '.join(map(repr, args))})"
        how = rng.random()
        if how < 0.6:
            calls.append(f"print({call})  # {result}")
        elif how < 0.8:
            calls.append(f"assert {call} == {result!r}")
        else:
            calls.append(f"result = {call}\nprint(result)  # {result}")
    return text + "\n\n" + "\n".join(calls)


def _loop_script(rng: random.Random) -> str:
    kind = rng.randrange(5)
    var = rng.choice(("i", "j", "n", "k"))
    if kind == 0:
        a, b, k = rng.randint(0, 4), rng.randint(5, 10), rng.randint(1, 5)
        out = [str(i * k) for i in range(a, b)]
        return f"for {var} in range({a}, {b}):\n    print({var} * {k})\n# prints:\n" + "\n".join(f"# {o}" for o in out)
    if kind == 1:
        n, k = rng.randint(2, 12), rng.randint(1, 9)
        acc = sum(i + k for i in range(n))
        return f"total = 0\nfor {var} in range({n}):\n    total += {var} + {k}\nprint(total)  # {acc}"
    if kind == 2:
        xs, lim = _ints(rng, 0, 20, 6), rng.randint(3, 15)
        lines = [f"{x} big" if x > lim else f"{x} small" for x in xs]
        return (f"for x in {xs!r}:\n    if x > {lim}:\n        print(x, 'big')\n    else:\n        print(x, 'small')\n"
                + "\n".join(f"# {line}" for line in lines)).rstrip()
    if kind == 3:
        n = rng.randint(1, 40)
        steps, x = [], n
        while x != 1 and len(steps) < 12:
            x = x // 2 if x % 2 == 0 else 3 * x + 1
            steps.append(x)
        script = (f"x = {n}\nsteps = 0\nwhile x != 1 and steps < 12:\n    if x % 2 == 0:\n        x = x // 2\n"
                  f"    else:\n        x = 3 * x + 1\n    steps += 1\nprint(x, steps)  # {x} {len(steps)}")
        return script
    word = rng.choice(WORDS)
    return f"for ch in {word!r}:\n    print(ch.upper())\n" + "\n".join(f"# {c.upper()}" for c in word)


def _values_script(rng: random.Random) -> str:
    name = rng.choice(LIST_NAMES)
    xs = _ints(rng, -5, 30, 6) or [rng.randint(0, 9)]
    lines = [f"{name} = {xs!r}"]
    ops = [
        (f"print(len({name}))", len(xs)), (f"print(sum({name}))", sum(xs)), (f"print(max({name}))", max(xs)),
        (f"print(min({name}))", min(xs)), (f"print(sorted({name}))", sorted(xs)), (f"print({name}[0])", xs[0]),
        (f"print({name}[-1])", xs[-1]), (f"print({name}[1:3])", xs[1:3]), (f"print({name}[::-1])", xs[::-1]),
        (f"print([v * 2 for v in {name}])", [v * 2 for v in xs]),
        (f"print([v for v in {name} if v % 2 == 0])", [v for v in xs if v % 2 == 0]),
        (f"print(sorted({name}, reverse=True))", sorted(xs, reverse=True)),
    ]
    for code, value in rng.sample(ops, rng.randint(2, 5)):
        lines.append(f"{code}  # {value}")
    if rng.random() < 0.4:
        v = rng.randint(0, 9)
        lines += [f"{name}.append({v})", f"print({name})  # {xs + [v]}"]
    return "\n".join(lines)


def _text_script(rng: random.Random) -> str:
    name = rng.choice(TEXT_NAMES)
    s = _text(rng, 3)
    words = s.split()
    ops = [
        (f"print({name}.upper())", s.upper()), (f"print(len({name}))", len(s)), (f"print({name}[::-1])", s[::-1]),
        (f"print({name}.split())", words), (f"print({name}.title())", s.title()),
        (f"print({name}.replace(' ', '-'))", s.replace(" ", "-")), (f"print({name}[0])", s[0]),
        (f"print({name}.count('a'))", s.count("a")),
        (f"print(' '.join(reversed({name}.split())))", " ".join(words[::-1])),
        (f"print({name}.startswith({words[0][:2]!r}))", True), (f"print('o' in {name})", "o" in s),
        (f"print(len({name}.split()))", len(words)),
    ]
    lines = [f"{name} = {s!r}"] + [f"{code}  # {value}" for code, value in rng.sample(ops, rng.randint(2, 5))]
    return "\n".join(lines)


def _if_script(rng: random.Random) -> str:
    x, a, b = rng.randint(-10, 40), rng.randint(0, 10), rng.randint(11, 30)
    words = rng.sample(("low", "mid", "high", "cold", "warm", "hot", "small", "big"), 3)
    out = words[0] if x < a else words[1] if x < b else words[2]
    return (f"x = {x}\nif x < {a}:\n    label = {words[0]!r}\nelif x < {b}:\n    label = {words[1]!r}\nelse:\n"
            f"    label = {words[2]!r}\nprint(label)  # {out}")


_ASSIGNMENT = re.compile(r"(?<![=!<>+*/-])=(?!=)|[+*/-]=")  # a constant cannot take the place of what a body assigns


def _related(rng: random.Random) -> str:
    """Two or three versions of one function under other names and parameter names, with the same body and a
    docstring each, as a module of related helpers holds: text in which copying the body of the function above,
    renamed, predicts the next one. A limit-like argument is baked in as a constant half the time (its docstring
    then says its value, as a PTB/code problem's does), so that the copy must also take a value from the
    docstring."""
    op = rng.choice(_OPS)
    template = rng.choice(op.bodies)
    assigned = "".join(_ASSIGNMENT.split(line)[0] for line in template.split("\n") if _ASSIGNMENT.search(line))
    long_form = rng.random() < 0.5
    parts = []
    for name in rng.sample(op.names, rng.randint(2, len(op.names))):
        params = _param_names(rng, op.roles)
        args = op.args(rng)
        baked = [i for i, role in enumerate(op.roles)
                 if role == "K" and f"{{{i}}}" not in assigned and rng.random() < 0.5]
        shown = [p for i, p in enumerate(params) if i not in baked]
        doc = rng.choice(op.docs) + "".join(f" Here {params[i]} is {args[i]!r}." for i in baked)
        body = template.format(*(repr(args[i]) if i in baked else p for i, p in enumerate(params)), name=name)
        if long_form:
            kept = [i for i in range(len(params)) if i not in baked]
            arguments = _described([params[i] for i in kept], tuple(op.roles[i] for i in kept))
            doc += f"\n\n    Arguments: {arguments}.\n    "
        drawn = op.args(rng)  # the call's arguments; baked ones keep their constant
        full = [args[i] if i in baked else drawn[i] for i in range(len(op.roles))]
        result = op.impl(*[list(a) if isinstance(a, list) else a for a in full])
        call = f"{name}({', '.join(repr(a) for i, a in enumerate(full) if i not in baked)})"
        parts.append(f'def {name}({", ".join(shown)}):\n    """{doc}"""\n{_indent(body)}\n\n'
                     f"print({call})  # {result}")
    return "\n\n\n".join(parts)


_SNIPPETS = ((_function, 0.55), (_loop_script, 0.15), (_values_script, 0.12), (_text_script, 0.1), (_if_script, 0.08))


def documents(rng: random.Random, n: int, *, long_docstrings: bool = False, related: bool = False) -> list[str]:
    """`n` documents of Python code with what it prints, each under `MAX_CHARS` characters; deterministic in
    the state of `rng`. `long_docstrings`: a quarter of the functions get a multi-line docstring whose triple
    quotes close on a line of their own (a base that never saw one writes no body after a HumanEval prompt).
    `related`: a third of the snippets are versions of one function (`_related`), from which a base learns to
    copy a body from its context, as a few-shot prompt of the same kind of problem asks."""
    function = functools.partial(_function, long_docstrings=long_docstrings)
    snippets = [(function if write is _function else write, weight) for write, weight in _SNIPPETS]
    if related:
        snippets.append((_related, 0.5))
    return compose(rng, n, snippets, MAX_CHARS)
