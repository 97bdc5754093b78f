"""Function-calling items, generated from seeds: three functions, a request, and the call that serves it.

An item offers three functions of `functions.FUNCTIONS` (the one asked for and two others, in random order)
and a request written from one of the asked function's templates, with values drawn for its required
parameters and, half the time each, its optional ones. The expected call names the function and gives exactly
those arguments (integers as JSON numbers). Its ``prompt`` is the text the primary harness gives the model:

    Functions:
    - get_weather(city: string, unit?: "celsius" | "fahrenheit"): Get the current weather in a city.
    - ...
    Request: What's the weather like in Paris in celsius?
    Call:

The train split asks only for the functions of `functions.SEEN` (a third), with all but the last template of
each, and offers only those; dev and test ask for and offer any function with any template. Train and dev are
fixed; test is drawn from a seed (the episode's secret), and no test request is a train or dev request, nor a
dev request a train one. Pure Python: the env imports this at ``reset`` time.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator
from typing import Any

from ptb_gym.envs import splits
from ptb_gym.envs.tools.functions import BY_NAME, FUNCTIONS, SEEN, Function

__all__ = ["OFFERED", "SPLIT_SIZES", "generate", "signature", "split", "task_prompt"]

SPLIT_SIZES = {"train": 5000, "dev": 200, "test": 1000}
# Fixed seeds per split; changing them (or any function) changes the task, which means bumping PTB/tools-vN.
_SPLIT_SEEDS = {"train": 20261211, "dev": 20261212, "test": 20261213}
OFFERED = 3
"""Functions offered per item."""
_OPTIONAL = re.compile(r"\[([^\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")


def signature(function: Function) -> str:
    """`name(param: type, optional?: type)`, enums written as their quoted values."""
    params = []
    for p in function.parameters:
        kind = " | ".join(f'"{v}"' for v in p.enum) if p.enum else p.type
        params.append(f"{p.name}{'' if p.required else '?'}: {kind}")
    return f"{function.name}({', '.join(params)})"


def task_prompt(names: list[str], request: str) -> str:
    """The primary harness's prompt for a request with the functions `names` on offer."""
    lines = [f"- {signature(BY_NAME[name])}: {BY_NAME[name].description}" for name in names]
    return "Functions:\n" + "\n".join(lines) + f"\nRequest: {request}\nCall:"


def _item(rng: random.Random, pool: list[Function], templates: slice) -> dict[str, Any]:
    function = rng.choice(pool)
    template = rng.choice(function.requests[templates])
    given = {p.name for p in function.parameters if p.required or rng.random() < 0.5}

    def keep(optional: re.Match) -> str:  # a bracketed part is said when all its parameters are given
        return optional.group(1) if set(_SLOT.findall(optional.group(1))) <= given else ""

    template = _OPTIONAL.sub(keep, template)
    said = [name for name in _SLOT.findall(template)]
    arguments: dict[str, Any] = {}
    for name in said:  # distinct values for parameters of one kind (origin and destination)
        parameter = function.parameter(name)
        for _ in range(20):
            value = parameter.draw(rng)
            if value not in arguments.values():
                break
        arguments[name] = value
    request = _SLOT.sub(lambda slot: str(arguments[slot.group(1)]), template)
    others = rng.sample([f.name for f in pool if f.name != function.name], OFFERED - 1)
    names = [function.name, *others]
    rng.shuffle(names)
    call = {"name": function.name, "arguments": {p.name: arguments[p.name] for p in function.parameters
                                                 if p.name in arguments}}
    return {"prompt": task_prompt(names, request), "functions": names, "request": request, "call": call}


def _stream(seed: int, train: bool) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    pool = [f for f in FUNCTIONS if f.name in SEEN] if train else list(FUNCTIONS)
    templates = slice(0, -1) if train else slice(None)
    while True:
        yield _item(rng, pool, templates)


def generate(n: int, seed: int, *, train: bool = False) -> list[dict[str, Any]]:
    """The first `n` items drawn from `seed` (the train distribution when `train`): a prefix of any longer draw."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    it = _stream(seed, train)
    return [next(it) for _ in range(n)]


@functools.cache
def _requests(name: str) -> frozenset[str]:
    return frozenset(item["request"] for item in split(name))


def split(name: str, n: int | None = None, seed: int | None = None) -> list[dict[str, Any]]:
    """A split of the task: train and dev are fixed, the test split is drawn from `seed`.

    Args:
        name: ``"train"``, ``"dev"`` or ``"test"``.
        n: how many items; defaults to ``SPLIT_SIZES[name]`` (5000, 200, 1000); a smaller `n` gives a prefix.
        seed: for the test split only, the seed to draw it from (the episode's secret); None gives its fixed seed.

    Returns:
        `n` items with distinct requests, none of them a request of an earlier split at its default size.
    """
    return splits.draw(name, n, seed, sizes=SPLIT_SIZES, seeds=_SPLIT_SEEDS, stream=lambda s: _stream(s, name == "train"),
                       key=lambda item: item["request"], keys=_requests)
