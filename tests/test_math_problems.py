"""The math task's problem generator: deterministic, disjoint splits, arithmetic that checks out."""

from __future__ import annotations

import re
import time

import pytest

from ptb_gym.envs.math.problems import SPLIT_SIZES, Problem, generate, split

STEP = re.compile(r"^(\d+)([-+*/])(\d+)=(\d+)$")


def evaluate_step(step: str) -> tuple[int, int]:
    """Returns (claimed result, true result) of one "a op b=c" step."""
    m = STEP.match(step)
    assert m, f"step {step!r} is not of the form a op b=c"
    a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
    if op == "/":
        assert b != 0 and a % b == 0, f"inexact division in {step!r}"
    true = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else -1}[op]
    return c, true


def test_generate_is_deterministic_and_uses_no_global_rng():
    import random

    random.seed(1)
    a = generate(300, seed=7)
    random.seed(2)
    b = generate(300, seed=7)
    assert a == b
    assert generate(50, seed=7) == a[:50]
    assert generate(50, seed=8) != a[:50]


def test_splits_are_fixed_and_sized():
    for name, size in SPLIT_SIZES.items():
        problems = split(name)
        assert len(problems) == size
        assert problems == split(name)
        assert split(name, 10) == problems[:10]
        assert len({p.question for p in problems}) == size
    assert SPLIT_SIZES == {"train": 5000, "dev": 200, "test": 1000}


def test_test_split_is_disjoint_from_train_and_dev():
    train = {p.question for p in split("train")}
    dev = {p.question for p in split("dev")}
    test = {p.question for p in split("test")}
    assert not test & train
    assert not test & dev
    assert not dev & train


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        split("validation")


def test_steps_evaluate_to_the_answer():
    problems = split("train") + split("dev") + split("test")
    for p in problems:
        assert 1 <= len(p.steps) <= 3
        for step in p.steps:
            claimed, true = evaluate_step(step)
            assert claimed == true, f"{step!r} is wrong in {p}"
            assert true >= 0
        assert evaluate_step(p.steps[-1])[0] == p.answer
    # every template family is present: one-, two- and three-step problems, all four operations
    assert {len(p.steps) for p in problems} == {1, 2, 3}
    assert {STEP.match(s)[2] for p in problems for s in p.steps} == {"+", "-", "*", "/"}
    # numbers stay mostly below 1000
    numbers = [int(n) for p in problems for s in p.steps for n in re.findall(r"\d+", s)]
    assert sum(n >= 1000 for n in numbers) / len(numbers) < 0.01


def test_questions_read_like_word_problems():
    problems = split("dev")
    for p in problems:
        assert p.question.endswith("?")
        assert p.question.count("?") == 1
        assert p.question[0].isupper()
        assert "  " not in p.question
    assert len({p.question.split()[0] for p in split("train")}) > 30  # many names and openings


def test_solution_and_record_format():
    p = Problem("Tom has 12 apples. He buys 7 more apples. How many apples does Tom have now?",
                ("12+7=19", "19*3=57"), 57)
    assert p.solution() == "12+7=19 19*3=57"
    assert p.record() == {"question": p.question, "solution": "12+7=19 19*3=57", "answer": "57"}
    for q in split("dev", 20):
        record = q.record()
        assert set(record) == {"question", "solution", "answer"}
        assert all(isinstance(v, str) for v in record.values())
        assert int(record["answer"]) == q.answer


def test_problem_is_frozen():
    p = generate(1, seed=0)[0]
    with pytest.raises(AttributeError):
        p.answer = 3  # type: ignore[misc]


def test_train_split_is_fast():
    start = time.perf_counter()
    generate(SPLIT_SIZES["train"], seed=123)
    assert time.perf_counter() - start < 0.5
