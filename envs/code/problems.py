"""HumanEval-style Python function problems, generated from seeds.

A problem is a function signature with a docstring that says what to return and shows one example (the
``prompt``), a reference body (``canonical_solution``), hidden asserts (``tests``) and two visible ones
(``visible_tests``). There are 16 kinds (``KINDS``), each randomised in its function and argument names, its
constants ("greater than 7", "divisible by 3", the words a fizzbuzz returns) and its examples; every docstring
starts with "Return" and says everything the body needs.

The train and dev splits are fixed; the test split is drawn from a seed (the env's secret for the episode) and
no test prompt is also a train or dev prompt (exact text), nor a dev prompt a train one. What the public
records carry (`Problem.record`): train records have the prompt, the entry point and the visible tests, and the
reference body only for the kinds of ``SOLVED_KINDS`` (a quarter of them); dev records have no body; neither
has the hidden tests or the kind. Test records keep everything.

Pure Python, no torch: the env imports this at ``reset`` time.
"""

from __future__ import annotations

import functools
import random
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ptb_gym.envs import splits

__all__ = ["KINDS", "SOLVED_KINDS", "SPLIT_SIZES", "Problem", "generate", "split"]

SPLIT_SIZES = {"train": 5000, "dev": 200, "test": 1000}
# Fixed seeds per split; changing them (or any kind) changes the task, which means bumping PTB/code-vN.
_SPLIT_SEEDS = {"train": 20261201, "dev": 20261202, "test": 20261203}
HIDDEN_TESTS = 5
VISIBLE_TESTS = 2

LIST_ARGS = ("xs", "nums", "numbers", "values", "items", "arr", "data", "lst")
TEXT_ARGS = ("s", "text", "sentence", "line", "phrase")
INT_ARGS = ("n", "x", "num", "value")
WORDS = (
    "apple", "river", "stone", "cloud", "green", "table", "tiger", "lemon", "paper", "house", "light", "music",
    "ocean", "robot", "smile", "train", "water", "zebra", "bread", "chair", "dance", "eagle", "flame", "grape",
    "honey", "juice", "kite", "mango", "night", "olive", "plant", "queen", "salad", "sugar", "tulip", "voice",
    "wheel", "cat", "dog", "sun", "moon", "tree", "book", "bird", "fish", "sky", "road", "snow", "rain", "star",
)
PALINDROMES = ("level", "radar", "noon", "kayak", "civic", "refer", "madam", "wow", "pop", "racecar", "stats",
               "rotor", "deed", "peep", "a", "abba", "tenet")
LABELS = ("Fizz", "Buzz", "Foo", "Bar", "Ping", "Pong", "Tick", "Tock", "Zip", "Zap", "Hop", "Bop")
SEPARATORS = (" ", "-", "_", ", ", "+", "/", " | ")


@dataclass(frozen=True)
class Problem:
    """One function problem.

    Attributes:
        kind: which of `KINDS` it is.
        entry_point: the function's name.
        prompt: ``def name(args):`` and its docstring, ending with a newline: the text a completion continues.
        canonical_solution: a body (indented lines) that passes every test.
        tests: the hidden asserts, one statement each (``assert name(...) == ...``).
        visible_tests: two more asserts on other inputs, given to the agent.
    """

    kind: str
    entry_point: str
    prompt: str
    canonical_solution: str
    tests: tuple[str, ...]
    visible_tests: tuple[str, ...]

    def record(self, split: str = "test") -> dict[str, Any]:
        """A JSON-ready record of what `split` shows: everything for test, the public fields otherwise."""
        if split == "test":
            return {"prompt": self.prompt, "entry_point": self.entry_point, "kind": self.kind,
                    "canonical_solution": self.canonical_solution, "tests": list(self.tests),
                    "visible_tests": list(self.visible_tests)}
        record: dict[str, Any] = {"prompt": self.prompt, "entry_point": self.entry_point,
                                  "visible_tests": list(self.visible_tests)}
        if split == "train" and self.kind in SOLVED_KINDS:
            record["canonical_solution"] = self.canonical_solution
        return record


@dataclass
class _Spec:
    """What a kind draws: the function, its docstring and body, and how to make and answer its inputs."""

    names: tuple[str, ...]
    params: tuple[str, ...]
    doc: str
    body: str
    answer: Callable[..., Any]
    inputs: Callable[[random.Random], tuple]
    edge_cases: list[tuple] = field(default_factory=list)


def _ints(rng: random.Random, lo: int = -5, hi: int = 25, shortest: int = 1, longest: int = 8) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(shortest, longest))]


def _words(rng: random.Random, most: int = 4) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, most)))


# ---- the kinds: each draws its names and constants from rng --------------------------------------------------
def _sum_greater(rng: random.Random) -> _Spec:
    xs, k, strict = rng.choice(LIST_ARGS), rng.randint(0, 20), rng.random() < 0.5
    op, words = (">", "greater than") if strict else (">=", "at least")
    return _Spec(("sum_above", "sum_greater", "total_over", "big_sum", "sum_large"), (xs,),
                 f"Return the sum of the elements of {xs} that are {words} {k}.",
                 f"return sum(v for v in {xs} if v {op} {k})",
                 lambda a: sum(v for v in a if (v > k if strict else v >= k)),
                 lambda r: (_ints(r, -5, 30),), [([],), ([k],)])


def _count_char(rng: random.Random) -> _Spec:
    s, c = rng.choice(TEXT_ARGS), rng.choice("abcdeilmnorst")
    return _Spec(("count_char", "char_count", "count_letter", "occurrences", "how_many"), (s,),
                 f"Return the number of times the character '{c}' occurs in {s}.",
                 f"return {s}.count('{c}')", lambda a: a.count(c), lambda r: (_words(r),), [("",), (c * 3,)])


def _reverse_words(rng: random.Random) -> _Spec:
    s, sep = rng.choice(TEXT_ARGS), rng.choice(SEPARATORS)
    return _Spec(("reverse_words", "flip_words", "backwards_words", "words_reversed"), (s,),
                 f"Return the words of {s} (separated by spaces) in reverse order, joined by '{sep}'.",
                 f"return '{sep}'.join(reversed({s}.split()))",
                 lambda a: sep.join(reversed(a.split())), lambda r: (_words(r, 5),), [("one",)])


def _extreme(rng: random.Random) -> _Spec:
    xs, default, largest = rng.choice(LIST_ARGS), rng.randint(-10, 10), rng.random() < 0.5
    fn, words = ("max", "largest") if largest else ("min", "smallest")
    return _Spec((f"{fn}_or_default", f"{words}_element", f"{words}_or", f"find_{fn}"), (xs,),
                 f"Return the {words} element of {xs}, or {default} if {xs} is empty.",
                 f"if not {xs}:\n    return {default}\nreturn {fn}({xs})",
                 lambda a: (max if largest else min)(a) if a else default,
                 lambda r: (_ints(r, -20, 40),), [([],), ([default + 3],)])


def _palindrome(rng: random.Random) -> _Spec:
    s, fold = rng.choice(TEXT_ARGS), rng.random() < 0.5
    if fold:
        doc = f"Return True if {s} reads the same forwards and backwards when case is ignored, else False."
        body = f"t = {s}.lower()\nreturn t == t[::-1]"
    else:
        doc = f"Return True if {s} reads the same forwards and backwards (case matters), else False."
        body = f"return {s} == {s}[::-1]"

    def word(r: random.Random) -> tuple:
        w = r.choice(PALINDROMES) if r.random() < 0.5 else r.choice(WORDS)
        return (w.capitalize() if r.random() < 0.4 else w,)

    return _Spec(("is_palindrome", "palindrome", "same_backwards", "reads_same", "is_mirror"), (s,), doc, body,
                 lambda a: (a.lower() == a.lower()[::-1]) if fold else a == a[::-1], word, [("",), ("Noon",)])


def _fizzbuzz(rng: random.Random) -> _Spec:
    n = rng.choice(INT_ARGS)
    a, b = rng.sample(range(2, 8), 2)
    w1, w2 = rng.sample(LABELS, 2)
    return _Spec(("fizzbuzz", "label_number", "say", "word_for", "game_word"), (n,),
                 f"Return '{w1}{w2}' if {n} is divisible by both {a} and {b}, '{w1}' if it is divisible by {a}, "
                 f"'{w2}' if it is divisible by {b}, and str({n}) otherwise.",
                 f"if {n} % {a} == 0 and {n} % {b} == 0:\n    return '{w1}{w2}'\nif {n} % {a} == 0:\n"
                 f"    return '{w1}'\nif {n} % {b} == 0:\n    return '{w2}'\nreturn str({n})",
                 lambda x: (w1 + w2 if x % a == 0 and x % b == 0 else w1 if x % a == 0 else w2 if x % b == 0
                            else str(x)),
                 lambda r: (r.randint(1, 100),), [(a * b,), (a,), (b,)])


def _running_total(rng: random.Random) -> _Spec:
    xs, start = rng.choice(LIST_ARGS), rng.randint(0, 10)
    if start:
        doc = f"Return the running totals of {xs}, starting from {start}: element i is {start} plus the sum of " \
              f"the first i + 1 elements of {xs}."
    else:
        doc = f"Return the running totals of {xs}: element i is the sum of the first i + 1 elements of {xs}."
    return _Spec(("running_total", "cumulative_sum", "prefix_sums", "running_sum", "totals"), (xs,), doc,
                 f"out = []\ntotal = {start}\nfor v in {xs}:\n    total += v\n    out.append(total)\nreturn out",
                 lambda a: [start + sum(a[: i + 1]) for i in range(len(a))],
                 lambda r: (_ints(r, -5, 20, 1, 6),), [([],)])


def _filter_multiples(rng: random.Random) -> _Spec:
    xs, k, keep = rng.choice(LIST_ARGS), rng.randint(2, 9), rng.random() < 0.6
    words, op = ("divisible", "==") if keep else ("not divisible", "!=")
    return _Spec(("filter_multiples", "keep_multiples", "select", "pick", "multiples_only"), (xs,),
                 f"Return the elements of {xs} that are {words} by {k}, in their original order.",
                 f"return [v for v in {xs} if v % {k} {op} 0]",
                 lambda a: [v for v in a if (v % k == 0) == keep],
                 lambda r: ([r.randint(0, 40) if r.random() < 0.6 else k * r.randint(0, 6)
                             for _ in range(r.randint(1, 8))],), [([],), ([k, k + 1],)])


def _clamp(rng: random.Random) -> _Spec:
    x, lo = rng.choice(INT_ARGS), rng.randint(-10, 10)
    hi = lo + rng.randint(1, 30)
    return _Spec(("clamp", "bound", "limit", "clip", "squeeze"), (x,),
                 f"Return {x} clamped to the range from {lo} to {hi} (inclusive).",
                 f"return max({lo}, min({x}, {hi}))", lambda v: max(lo, min(v, hi)),
                 lambda r: (r.randint(lo - 20, hi + 20),), [(lo,), (hi,), (lo - 1,), (hi + 1,)])


def _fibonacci(rng: random.Random) -> _Spec:
    n, a, b = rng.choice(("n", "k", "i", "index")), rng.randint(0, 5), rng.randint(1, 5)

    def term(i: int) -> int:
        x, y = a, b
        for _ in range(i):
            x, y = y, x + y
        return x

    return _Spec(("fib", "fibonacci", "nth_term", "sequence", "fib_like"), (n,),
                 f"Return term {n} (counting from 0) of the sequence that starts {a}, {b} and in which every "
                 "later term is the sum of the two before it.",
                 f"a, b = {a}, {b}\nfor _ in range({n}):\n    a, b = b, a + b\nreturn a",
                 term, lambda r: (r.randint(2, 20),), [(0,), (1,)])


def _count_vowels(rng: random.Random) -> _Spec:
    s, with_y = rng.choice(TEXT_ARGS), rng.random() < 0.4
    letters = "aeiouy" if with_y else "aeiou"
    listed = "a, e, i, o, u and y" if with_y else "a, e, i, o and u"
    return _Spec(("count_vowels", "vowels", "vowel_count", "num_vowels"), (s,),
                 f"Return the number of vowels ({listed}) in {s}, ignoring case.",
                 f"return sum(1 for ch in {s}.lower() if ch in '{letters}')",
                 lambda t: sum(1 for ch in t.lower() if ch in letters),
                 lambda r: (_words(r).title() if r.random() < 0.3 else _words(r),), [("",), ("Yy Ae",)])


def _capitalize_words(rng: random.Random) -> _Spec:
    s, sep = rng.choice(TEXT_ARGS), rng.choice(SEPARATORS)
    return _Spec(("capitalize_words", "title_case", "cap_words", "headline"), (s,),
                 f"Return the words of {s} (separated by spaces) with their first letter in upper case, "
                 f"joined by '{sep}'.",
                 f"return '{sep}'.join(w[0].upper() + w[1:] for w in {s}.split())",
                 lambda t: sep.join(w[0].upper() + w[1:] for w in t.split()), lambda r: (_words(r, 5),),
                 [("x",)])


def _dedupe(rng: random.Random) -> _Spec:
    xs, k = rng.choice(LIST_ARGS), rng.choice((1, 1, 2, 3))
    if k == 1:
        doc = f"Return the elements of {xs} without repeats, keeping the first occurrence of each, in order."
    else:
        doc = f"Return the elements of {xs} in order, keeping at most {k} occurrences of each value."

    def answer(a: list[int]) -> list[int]:
        out: list[int] = []
        for v in a:
            if out.count(v) < k:
                out.append(v)
        return out

    return _Spec(("dedupe", "unique", "remove_duplicates", "distinct", "no_repeats"), (xs,), doc,
                 f"out = []\nfor v in {xs}:\n    if out.count(v) < {k}:\n        out.append(v)\nreturn out",
                 answer, lambda r: (_ints(r, 0, 6, 1, 10),), [([],), ([2, 2, 2, 2],)])


def _digit_sum(rng: random.Random) -> _Spec:
    n, k = rng.choice(INT_ARGS), rng.choice((1, 1, 2, 3, 4, 5, 6, 7, 8, 9))
    if k == 1:
        doc, body = f"Return the sum of the decimal digits of the non-negative integer {n}.", \
            f"return sum(int(d) for d in str({n}))"
    else:
        doc, body = f"Return the sum of the decimal digits of the non-negative integer {n}, multiplied by {k}.", \
            f"return {k} * sum(int(d) for d in str({n}))"
    return _Spec(("digit_sum", "sum_digits", "digits_total", "add_digits"), (n,), doc, body,
                 lambda v: k * sum(int(d) for d in str(v)), lambda r: (r.randint(0, 99999),), [(0,), (7,)])


def _scale_shift(rng: random.Random) -> _Spec:
    xs, a, b = rng.choice(LIST_ARGS), rng.randint(2, 9), rng.randint(-5, 10)
    shift = f"then increased by {b}" if b >= 0 else f"then decreased by {-b}"
    return _Spec(("transform", "scale_shift", "map_values", "rescale", "adjust"), (xs,),
                 f"Return a new list with each element of {xs} multiplied by {a} and {shift}.",
                 f"return [v * {a} + {b} for v in {xs}]" if b >= 0 else f"return [v * {a} - {-b} for v in {xs}]",
                 lambda t: [v * a + b for v in t], lambda r: (_ints(r, -10, 20, 1, 6),), [([],)])


def _count_less(rng: random.Random) -> _Spec:
    xs, k, strict = rng.choice(LIST_ARGS), rng.randint(0, 20), rng.random() < 0.5
    op, words = ("<", "less than") if strict else ("<=", "at most")
    return _Spec(("count_less", "count_small", "how_many_below", "num_under", "count_below"), (xs,),
                 f"Return how many elements of {xs} are {words} {k}.",
                 f"return sum(1 for v in {xs} if v {op} {k})",
                 lambda a: sum(1 for v in a if (v < k if strict else v <= k)),
                 lambda r: (_ints(r, -5, 30),), [([],), ([k],)])


KINDS: dict[str, Callable[[random.Random], _Spec]] = {
    "sum_greater": _sum_greater, "count_char": _count_char, "reverse_words": _reverse_words,
    "extreme": _extreme, "palindrome": _palindrome, "fizzbuzz": _fizzbuzz, "running_total": _running_total,
    "filter_multiples": _filter_multiples, "clamp": _clamp, "fibonacci": _fibonacci,
    "count_vowels": _count_vowels, "capitalize_words": _capitalize_words, "dedupe": _dedupe,
    "digit_sum": _digit_sum, "scale_shift": _scale_shift, "count_less": _count_less,
}
SOLVED_KINDS = frozenset({"sum_greater", "reverse_words", "filter_multiples", "count_vowels"})
"""The kinds whose train records carry `canonical_solution` (a quarter): the rest have to be solved."""


def _problem(kind: str, rng: random.Random) -> Problem:
    spec = KINDS[kind](rng)
    name = rng.choice(spec.names)
    public, wanted = 1 + VISIBLE_TESTS, 1 + VISIBLE_TESTS + HIDDEN_TESTS
    cases: list[tuple] = []
    seen: set[str] = set()

    def add(args: tuple) -> None:  # distinct inputs: a hidden assert never repeats a public one
        if repr(args) not in seen:
            seen.add(repr(args))
            cases.append(args)

    for _ in range(100):
        if len(cases) >= public:
            break
        add(spec.inputs(rng))
    for args in spec.edge_cases[:HIDDEN_TESTS]:  # the edge cases are hidden tests
        add(args)
    for _ in range(100):
        if len(cases) >= wanted:
            break
        add(spec.inputs(rng))
    call = [f"{name}({', '.join(map(repr, args))})" for args in cases]
    asserts = [f"assert {c} == {spec.answer(*args)!r}" for c, args in zip(call, cases)]
    doc = textwrap.fill(spec.doc, width=100, subsequent_indent="    ")
    prompt = (f"def {name}({', '.join(spec.params)}):\n    \"\"\"{doc}\n\n    >>> {call[0]}\n"
              f"    {spec.answer(*cases[0])!r}\n    \"\"\"\n")
    return Problem(kind=kind, entry_point=name, prompt=prompt,
                   canonical_solution=textwrap.indent(spec.body, "    ") + "\n",
                   tests=tuple(asserts[1 + VISIBLE_TESTS:]), visible_tests=tuple(asserts[1:1 + VISIBLE_TESTS]))


def _stream(seed: int) -> Iterator[Problem]:
    rng = random.Random(seed)
    kinds = sorted(KINDS)
    while True:
        yield _problem(rng.choice(kinds), rng)


def generate(n: int, seed: int) -> list[Problem]:
    """The first `n` problems drawn from `seed`: deterministic, and a prefix of any longer draw. May repeat."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    it = _stream(seed)
    return [next(it) for _ in range(n)]


@functools.cache
def _prompts(name: str) -> frozenset[str]:
    return frozenset(p.prompt for p in split(name))


def split(name: str, n: int | None = None, seed: int | None = None) -> list[Problem]:
    """A split of the task: train and dev are fixed, the test split is drawn from `seed`.

    Args:
        name: ``"train"``, ``"dev"`` or ``"test"``.
        n: how many problems; defaults to ``SPLIT_SIZES[name]`` (5000, 200, 1000); a smaller `n` gives a prefix.
        seed: for the test split only, the seed to draw it from (the episode's secret); None gives its fixed seed.

    Returns:
        `n` problems with distinct prompts. A test prompt never equals a prompt of the default-size train or
        dev split, and a dev prompt never equals one of the default train split.
    """
    return splits.draw(name, n, seed, sizes=SPLIT_SIZES, seeds=_SPLIT_SEEDS, stream=_stream,
                       key=lambda p: p.prompt, keys=_prompts)
