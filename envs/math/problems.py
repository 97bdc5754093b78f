"""GSM8K-style word problems, generated from seeds.

Each problem is a short English story that ends with a question, the arithmetic that solves it written out one
operation per step (``"12+7=19"``, ``"19*3=57"``), and the integer answer. There are one-, two- and three-step
templates over + - * and exact division; every intermediate and final value is a non-negative integer, and
numbers stay mostly below 1000 so that the embedded tier's tiny model can learn them.

The train and dev splits are fixed: ``split("train")`` and ``split("dev")`` always give the same problems. The
test split is drawn from a seed (``split("test", seed=s)``; the env draws ``s`` in secret for each episode), and
no test question is also a train or dev question (exact text), nor a dev question a train question.

Pure Python, no torch: the env imports this at ``reset`` time. The vocabulary tuples (``NAMES``, ``OBJECTS``,
...) are public because ``baselines/pretrain_tiny.py`` builds the base model's pretraining corpus from the same
words.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ptb_gym.envs import splits

__all__ = ["SPLIT_SIZES", "Problem", "generate", "split"]

SPLIT_SIZES = {"train": 5000, "dev": 200, "test": 1000}
"""Default number of problems in each split."""

# Fixed seeds per split; changing them (or any template) changes the task, which means bumping PTB/math-vN.
_SPLIT_SEEDS = {"train": 20261127, "dev": 20261128, "test": 20261129}

# (name, subject pronoun, possessive pronoun)
NAMES: tuple[tuple[str, str, str], ...] = tuple(
    [(n, "he", "his") for n in (
        "Tom", "Ben", "Sam", "Leo", "Omar", "Jack", "Noah", "Liam", "Ravi", "Carlos", "Ethan", "Hiro", "Mateo",
        "Kofi", "Lucas", "Adam", "Felix", "Ivan", "Jamal", "Oscar", "Peter", "Yusuf", "Marco", "Daniel",
    )]
    + [(n, "she", "her") for n in (
        "Mia", "Emma", "Ava", "Lily", "Sofia", "Zoe", "Nina", "Aisha", "Grace", "Chloe", "Maya", "Priya", "Julia",
        "Hana", "Rosa", "Lena", "Amara", "Olivia", "Sara", "Elena", "Fatima", "Ruby", "Alice", "Mei",
    )]
)

# Plural nouns that can be counted, bought, found and given away.
OBJECTS: tuple[str, ...] = (
    "apples", "oranges", "marbles", "stickers", "pencils", "cookies", "books", "cards", "shells", "stamps",
    "coins", "eggs", "flowers", "toy cars", "balloons", "cupcakes", "crayons", "beads", "buttons", "blocks",
    "muffins", "candies", "rocks", "feathers", "ribbons", "pens", "lemons", "erasers", "peaches", "comics",
)
FOODS: frozenset[str] = frozenset(
    {"apples", "oranges", "cookies", "eggs", "cupcakes", "muffins", "candies", "lemons", "peaches"}
)

# (present, past) verb forms: getting more of something / parting with some of it.
GAIN_VERBS: tuple[tuple[str, str], ...] = (
    ("buys", "bought"), ("finds", "found"), ("gets", "got"), ("collects", "collected"),
    ("picks up", "picked up"), ("receives", "received"), ("wins", "won"),
)
LOSE_VERBS: tuple[tuple[str, str], ...] = (
    ("gives away", "gave away"), ("loses", "lost"), ("sells", "sold"), ("uses", "used"), ("trades", "traded"),
)

# (singular, plural) containers that hold a number of objects each.
CONTAINERS: tuple[tuple[str, str], ...] = (
    ("box", "boxes"), ("bag", "bags"), ("basket", "baskets"), ("jar", "jars"), ("pack", "packs"),
    ("crate", "crates"), ("tray", "trays"), ("bowl", "bowls"), ("tin", "tins"), ("bucket", "buckets"),
)

# (singular, plural) things with a price in dollars.
ITEMS: tuple[tuple[str, str], ...] = (
    ("notebook", "notebooks"), ("toy", "toys"), ("ticket", "tickets"), ("sandwich", "sandwiches"),
    ("shirt", "shirts"), ("pizza", "pizzas"), ("board game", "board games"), ("ball", "balls"),
    ("lamp", "lamps"), ("mug", "mugs"), ("hat", "hats"), ("backpack", "backpacks"), ("plant", "plants"),
    ("kite", "kites"), ("puzzle", "puzzles"),
)

# (singular, plural) units of time for rates.
TIME_UNITS: tuple[tuple[str, str], ...] = (("day", "days"), ("hour", "hours"), ("week", "weeks"))

# Groups that things are shared among.
PEOPLE: tuple[str, ...] = ("friends", "children", "students", "classmates", "cousins", "players", "neighbors")

# (verb, unit, thing) for "reads 12 pages a day of a book with 300 pages".
TASKS: tuple[tuple[str, str, str], ...] = (
    ("reads", "pages", "a book"), ("writes", "pages", "a report"), ("paints", "tiles", "a wall"),
    ("plants", "trees", "a field"), ("packs", "boxes", "an order"), ("knits", "rows", "a scarf"),
)


@dataclass(frozen=True)
class Problem:
    """One word problem.

    Attributes:
        question: the problem text, ending with a question sentence.
        steps: the arithmetic that solves it, one operation per step, e.g. ``("12+7=19", "19*3=57")``.
        answer: the final answer, a non-negative integer.
    """

    question: str
    steps: tuple[str, ...]
    answer: int

    def solution(self) -> str:
        """The steps joined by single spaces, e.g. ``"12+7=19 19*3=57"``."""
        return " ".join(self.steps)

    def record(self) -> dict[str, str]:
        """A JSON-ready record: question, solution and the answer as a decimal string (like GSM8K's ``####``)."""
        return {"question": self.question, "solution": self.solution(), "answer": str(self.answer)}


class _Steps:
    """Collects the written-out arithmetic while a template computes its answer."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    def __call__(self, a: int, op: str, b: int) -> int:
        if op == "+":
            c = a + b
        elif op == "-":
            c = a - b
        elif op == "*":
            c = a * b
        else:
            assert b != 0 and a % b == 0, (a, op, b)
            c = a // b
        assert c >= 0, (a, op, b)
        self.steps.append(f"{a}{op}{b}={c}")
        return c


# A template draws its numbers and words from rng, does its arithmetic through s, and returns the question.
# Its numbers are chosen so that every value is a non-negative integer by construction.
_Template = Callable[[random.Random, _Steps], str]


def _person(rng: random.Random) -> tuple[str, str, str]:
    name, he, his = rng.choice(NAMES)
    return name, he.capitalize(), his


def _two_people(rng: random.Random) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    a, b = rng.sample(NAMES, 2)
    return (a[0], a[1].capitalize(), a[2]), (b[0], b[1].capitalize(), b[2])


def _lose_verb(rng: random.Random, obj: str) -> str:
    if obj in FOODS and rng.random() < 0.4:
        return "eats"
    return rng.choice(LOSE_VERBS)[0]


# ---- one step ----------------------------------------------------------------------------------------------
def _add_more(rng: random.Random, s: _Steps) -> str:
    (n, he, _), obj = _person(rng), rng.choice(OBJECTS)
    a, b = rng.randint(3, 400), rng.randint(2, 300)
    s(a, "+", b)
    q = rng.choice([f"How many {obj} does {n} have now?", f"How many {obj} does {n} have in all?"])
    return f"{n} has {a} {obj}. {he} {rng.choice(GAIN_VERBS)[0]} {b} more {obj}. {q}"


def _take_away(rng: random.Random, s: _Steps) -> str:
    (n, he, _), obj = _person(rng), rng.choice(OBJECTS)
    a = rng.randint(10, 600)
    b = rng.randint(1, a - 1)
    s(a, "-", b)
    return f"{n} has {a} {obj}. {he} {_lose_verb(rng, obj)} {b} of them. How many {obj} does {n} have left?"


def _groups(rng: random.Random, s: _Steps) -> str:
    (n, _, _), obj, (box, boxes) = _person(rng), rng.choice(OBJECTS), rng.choice(CONTAINERS)
    k, m = rng.randint(2, 12), rng.randint(2, 60)
    s(k, "*", m)
    return f"{n} has {k} {boxes}. Each {box} holds {m} {obj}. How many {obj} does {n} have in total?"


def _share(rng: random.Random, s: _Steps) -> str:
    (n, _, _), obj, people = _person(rng), rng.choice(OBJECTS), rng.choice(PEOPLE)
    k, q = rng.randint(2, 12), rng.randint(2, 60)
    s(k * q, "/", k)
    return (f"{n} has {k * q} {obj} and shares them equally among {k} {people}. "
            f"How many {obj} does each of the {people} get?")


def _price(rng: random.Random, s: _Steps) -> str:
    (n, _, _), (item, items) = _person(rng), rng.choice(ITEMS)
    c, p = rng.randint(2, 12), rng.randint(2, 75)
    s(c, "*", p)
    return f"A {item} costs ${p}. {n} buys {c} {items}. How many dollars does {n} spend?"


def _more_than(rng: random.Random, s: _Steps) -> str:
    ((n1, _, _), (n2, _, _)), obj = _two_people(rng), rng.choice(OBJECTS)
    a, b = rng.randint(3, 400), rng.randint(2, 300)
    s(a, "+", b)
    return f"{n1} has {a} {obj}. {n2} has {b} more {obj} than {n1}. How many {obj} does {n2} have?"


def _fewer_than(rng: random.Random, s: _Steps) -> str:
    ((n1, _, _), (n2, _, _)), obj = _two_people(rng), rng.choice(OBJECTS)
    a = rng.randint(10, 600)
    b = rng.randint(1, a - 1)
    s(a, "-", b)
    return f"{n1} has {a} {obj}. {n2} has {b} fewer {obj} than {n1}. How many {obj} does {n2} have?"


def _times_as_many(rng: random.Random, s: _Steps) -> str:
    ((n1, _, _), (n2, _, _)), obj = _two_people(rng), rng.choice(OBJECTS)
    a, k = rng.randint(2, 80), rng.randint(2, 9)
    s(a, "*", k)
    return f"{n1} has {a} {obj}. {n2} has {k} times as many {obj} as {n1}. How many {obj} does {n2} have?"


# ---- two steps ---------------------------------------------------------------------------------------------
def _gain_then_lose(rng: random.Random, s: _Steps) -> str:
    (n, he, _), obj = _person(rng), rng.choice(OBJECTS)
    a, b = rng.randint(3, 300), rng.randint(2, 300)
    x = s(a, "+", b)
    c = rng.randint(1, x - 1)
    s(x, "-", c)
    return (f"{n} has {a} {obj}. {he} {rng.choice(GAIN_VERBS)[0]} {b} more {obj}. "
            f"Then {he.lower()} {_lose_verb(rng, obj)} {c} {obj}. How many {obj} does {n} have now?")


def _groups_plus_extra(rng: random.Random, s: _Steps) -> str:
    (n, _, _), obj, (box, boxes) = _person(rng), rng.choice(OBJECTS), rng.choice(CONTAINERS)
    k, m, e = rng.randint(2, 12), rng.randint(2, 50), rng.randint(1, 99)
    x = s(k, "*", m)
    s(x, "+", e)
    return (f"{n} has {k} {boxes} with {m} {obj} in each {box}, and {e} more {obj} on the table. "
            f"How many {obj} does {n} have altogether?")


def _earn_then_spend(rng: random.Random, s: _Steps) -> str:
    (n, he, _), (unit, units), (item, _) = _person(rng), rng.choice(TIME_UNITS), rng.choice(ITEMS)
    w, d = rng.randint(3, 80), rng.randint(2, 12)
    x = s(w, "*", d)
    c = rng.randint(1, x - 1)
    s(x, "-", c)
    return (f"{n} earns ${w} each {unit} for {d} {units}. Then {he.lower()} spends ${c} on a {item}. "
            f"How many dollars does {n} have left?")


def _together_more(rng: random.Random, s: _Steps) -> str:
    ((n1, _, _), (n2, _, _)), obj = _two_people(rng), rng.choice(OBJECTS)
    a, b = rng.randint(3, 250), rng.randint(2, 200)
    x = s(a, "+", b)
    s(a, "+", x)
    return (f"{n1} has {a} {obj}. {n2} has {b} more {obj} than {n1}. "
            f"How many {obj} do {n1} and {n2} have together?")


def _change(rng: random.Random, s: _Steps) -> str:
    (n, _, _), (_, items) = _person(rng), rng.choice(ITEMS)
    c, p = rng.randint(2, 9), rng.randint(2, 60)
    bill = next(b for b in (20, 50, 100, 200, 500, 1000) if b > c * p)
    x = s(c, "*", p)
    s(bill, "-", x)
    return (f"{n} buys {c} {items} that cost ${p} each and pays with a ${bill} bill. "
            f"How many dollars of change does {n} get back?")


def _work_left(rng: random.Random, s: _Steps) -> str:
    (n, _, _), (verb, unit, thing), (day, days) = _person(rng), rng.choice(TASKS), rng.choice(TIME_UNITS[:2])
    r, d = rng.randint(2, 40), rng.randint(2, 12)
    total = r * d + rng.randint(1, 300)
    x = s(r, "*", d)
    s(total, "-", x)
    return (f"{thing.capitalize()} has {total} {unit}. {n} {verb} {r} {unit} every {day} for {d} {days}. "
            f"How many {unit} are still left?")


def _pool_and_share(rng: random.Random, s: _Steps) -> str:
    ((n1, _, _), (n2, _, _)), obj, people = _two_people(rng), rng.choice(OBJECTS), rng.choice(PEOPLE)
    k, q = rng.randint(2, 10), rng.randint(2, 50)
    a = rng.randint(1, k * q - 1)
    x = s(a, "+", k * q - a)
    s(x, "/", k)
    return (f"{n1} has {a} {obj} and {n2} has {k * q - a} {obj}. They put them together and share them "
            f"equally among {k} {people}. How many {obj} does each of the {people} get?")


def _times_altogether(rng: random.Random, s: _Steps) -> str:
    ((n1, _, _), (n2, _, _)), obj = _two_people(rng), rng.choice(OBJECTS)
    a, k = rng.randint(2, 80), rng.randint(2, 9)
    x = s(a, "*", k)
    s(a, "+", x)
    return (f"{n1} has {a} {obj}. {n2} has {k} times as many {obj} as {n1}. "
            f"How many {obj} do they have altogether?")


def _split_then_give(rng: random.Random, s: _Steps) -> str:
    ((n1, he, _), (n2, _, _)), obj, (_, boxes) = _two_people(rng), rng.choice(OBJECTS), rng.choice(CONTAINERS)
    k, q = rng.randint(3, 12), rng.randint(2, 60)
    g = rng.randint(2, k - 1)
    x = s(k * q, "/", k)
    s(x, "*", g)
    return (f"{n1} puts {k * q} {obj} into {k} {boxes}, with the same number in each. "
            f"{he} gives {g} of the {boxes} to {n2}. How many {obj} does {n2} get?")


# ---- three steps -------------------------------------------------------------------------------------------
def _two_kinds_of_packs(rng: random.Random, s: _Steps) -> str:
    (n, _, _), obj, (_, boxes) = _person(rng), rng.choice(OBJECTS), rng.choice(CONTAINERS)
    a, b, c, d = rng.randint(2, 9), rng.randint(2, 30), rng.randint(2, 9), rng.randint(2, 30)
    x = s(a, "*", b)
    y = s(c, "*", d)
    s(x, "+", y)
    return (f"{n} buys {a} {boxes} of {obj} with {b} {obj} in each, and {c} {boxes} with {d} {obj} in each. "
            f"How many {obj} does {n} buy?")


def _have_buy_packs_give(rng: random.Random, s: _Steps) -> str:
    ((n1, he, _), (n2, _, _)), obj, (box, boxes) = _two_people(rng), rng.choice(OBJECTS), rng.choice(CONTAINERS)
    a, k, m = rng.randint(2, 200), rng.randint(2, 9), rng.randint(2, 30)
    x = s(k, "*", m)
    y = s(a, "+", x)
    g = rng.randint(1, y - 1)
    s(y, "-", g)
    return (f"{n1} has {a} {obj}. {he} buys {k} {boxes} of {obj} with {m} {obj} in each {box}. "
            f"Then {he.lower()} gives {g} {obj} to {n2}. How many {obj} does {n1} have now?")


def _two_shifts(rng: random.Random, s: _Steps) -> str:
    (n, _, _) = _person(rng)
    w, h1, h2 = rng.randint(5, 40), rng.randint(2, 12), rng.randint(2, 12)
    d1, d2 = rng.sample(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"], 2)
    x = s(w, "*", h1)
    y = s(w, "*", h2)
    s(x, "+", y)
    return (f"{n} earns ${w} an hour. {n} works {h1} hours on {d1} and {h2} hours on {d2}. "
            f"How many dollars does {n} earn on those two days?")


def _two_items_bill(rng: random.Random, s: _Steps) -> str:
    (n, _, _), ((_, i1s), (_, i2s)) = _person(rng), rng.sample(ITEMS, 2)
    c1, p1, c2, p2 = rng.randint(2, 6), rng.randint(2, 40), rng.randint(2, 6), rng.randint(2, 40)
    x = s(c1, "*", p1)
    y = s(c2, "*", p2)
    s(x, "+", y)
    return (f"{n} buys {c1} {i1s} for ${p1} each and {c2} {i2s} for ${p2} each. "
            f"How many dollars does {n} spend in total?")


def _share_leftover(rng: random.Random, s: _Steps) -> str:
    (n, he, _), obj, people = _person(rng), rng.choice(OBJECTS), rng.choice(PEOPLE)
    k, q = rng.randint(2, 10), rng.randint(2, 40)
    keep = rng.randint(1, 150)
    a = rng.randint(1, k * q + keep - 1)
    x = s(a, "+", k * q + keep - a)
    y = s(x, "-", keep)
    s(y, "/", k)
    return (f"{n} has {a} {obj} and {rng.choice(GAIN_VERBS)[0]} {k * q + keep - a} more. {he} keeps {keep} "
            f"{obj} and shares the rest equally among {k} {people}. How many {obj} does each of the {people} get?")


_TEMPLATES: tuple[_Template, ...] = (
    _add_more, _take_away, _groups, _share, _price, _more_than, _fewer_than, _times_as_many,
    _gain_then_lose, _groups_plus_extra, _earn_then_spend, _together_more, _change, _work_left,
    _pool_and_share, _times_altogether, _split_then_give,
    _two_kinds_of_packs, _have_buy_packs_give, _two_shifts, _two_items_bill, _share_leftover,
)


def _stream(seed: int) -> Iterator[Problem]:
    rng = random.Random(seed)
    while True:
        s = _Steps()
        question = rng.choice(_TEMPLATES)(rng, s)
        yield Problem(question, tuple(s.steps), int(s.steps[-1].rsplit("=", 1)[1]))


def generate(n: int, seed: int) -> list[Problem]:
    """The first ``n`` problems drawn from ``seed``: deterministic in ``(n, seed)``, and
    ``generate(n, seed)`` is a prefix of ``generate(m, seed)`` for ``m > n``. May contain repeats."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    it = _stream(seed)
    return [next(it) for _ in range(n)]


@functools.cache
def _questions(name: str) -> frozenset[str]:
    return frozenset(p.question for p in split(name))


def split(name: str, n: int | None = None, seed: int | None = None) -> list[Problem]:
    """A split of the task: train and dev are fixed, the test split is drawn from `seed`.

    Args:
        name: ``"train"``, ``"dev"`` or ``"test"``.
        n: how many problems; defaults to ``SPLIT_SIZES[name]`` (5000, 200, 1000). A smaller ``n`` gives a
            prefix of the default split.
        seed: for the test split only, the seed to draw it from (the episode's secret); None gives the split's
            fixed seed (the one the first calibration used).

    Returns:
        ``n`` problems with distinct questions. A test question never equals a question of the default-size
        train or dev split, and a dev question never equals one of the default train split (such items are
        dropped and the next ones drawn).
    """
    return splits.draw(name, n, seed, sizes=SPLIT_SIZES, seeds=_SPLIT_SEEDS, stream=_stream,
                       key=lambda p: p.question, keys=_questions)
