"""Pretraining documents for the shared base model: JSON, configuration, API references, calls in code, logs.

What a pretrained model knows of function calling before anyone post-trains it: JSON syntax (API responses,
configuration files, records that restate a sentence's facts), API references that describe functions and
their parameters, code that calls functions with keyword arguments, and logs of requests with their payloads.
The functions and values come from `functions.py`'s vocabulary and from made-up APIs of the same shape.

What the documents are not: an item of PTB/tools-v0. No document pairs a request with its call, none has a
`Functions:` list or a `Request:` or `Call:` line, and the words "Question", "Answer" and ``####`` never occur.
`call_example` pairs a request with its call, for the pattern documents of `baselines/pretrain_small.py`, which
write them in made-up formats and only with made-up functions.
"""

from __future__ import annotations

import json
import random
from typing import Any

from ptb_gym.envs.corpus import compose
from ptb_gym.envs.tools.functions import (
    CITIES,
    FUNCTIONS,
    ITEMS,
    PEOPLE,
    VALUES,
    Function,
    Parameter,
)

__all__ = ["call_example", "documents"]

MAX_CHARS = 1500
VERBS = ("get", "list", "create", "update", "delete", "fetch", "find", "check", "start", "stop", "reset", "count")
NOUNS = ("user", "invoice", "ticket", "device", "report", "session", "order", "profile", "task", "comment",
         "shipment", "account", "project", "license", "backup", "route", "sensor", "badge")
FIELDS = (("name", "person"), ("city", "city"), ("email", "email"), ("date", "date"), ("phone", "phone"),
          ("item", "item"), ("time", "time"), ("currency", "currency"), ("file", "file"), ("order_id", "order"))
COUNTS = ("count", "limit", "quantity", "age", "total", "size", "retries", "port", "level", "score")


def _made_up_function(rng: random.Random) -> Function:
    """A function of the same shape as the task's, under a name no item offers."""
    verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
    fields = rng.sample(FIELDS, rng.randint(1, 3))
    params = [Parameter(name, kind, f"The {noun}'s {name.replace('_', ' ')}.", rng.random() < 0.7)
              for name, kind in fields]
    if rng.random() < 0.6:
        params.append(Parameter(rng.choice(COUNTS), f"int:1:{rng.choice((10, 50, 100, 1000))}", "A number.",
                                rng.random() < 0.5))
    return Function(f"{verb}_{noun}", f"{verb.capitalize()} a {noun}.", tuple(params), ())


def _function(rng: random.Random) -> Function:
    return rng.choice(FUNCTIONS) if rng.random() < 0.5 else _made_up_function(rng)


def _arguments(rng: random.Random, function: Function) -> dict[str, Any]:
    return {p.name: p.draw(rng) for p in function.parameters if p.required or rng.random() < 0.5}


def call_example(rng: random.Random) -> tuple[list[Function], str, str, dict[str, Any]]:
    """Two to four made-up functions on offer, a request that asks for one of them, its name and its arguments:
    what a made-up function-calling format of a pattern document holds."""
    offered: list[Function] = []
    for _ in range(rng.randint(2, 4)):
        function = _made_up_function(rng)
        if all(f.name != function.name for f in offered):
            offered.append(function)
    target = rng.choice(offered)
    arguments = _arguments(rng, target)
    verb, noun = target.name.split("_", 1)
    phrases = [rng.choice(("with {} {}", "{} {}", "{} = {}")).format(key.replace("_", " "), value)
               for key, value in arguments.items()]
    request = f"{verb.capitalize()} the {noun}" + (" " + ", ".join(phrases) if phrases else "") + "."
    return offered, request, target.name, arguments


def _api_reference(rng: random.Random) -> str:
    f = _function(rng)
    lines = [f"{f.name}", f"    {f.description}", "", "    Parameters:"]
    for p in f.parameters:
        detail = f"one of {', '.join(p.enum)}" if p.enum else p.type
        lines.append(f"        {p.name} ({detail}, {'required' if p.required else 'optional'}): {p.description}")
    if rng.random() < 0.5:
        lines += ["", "    Example:", f"        {f.name}({', '.join(f'{k}={v!r}' for k, v in _arguments(rng, f).items())})"]
    return "\n".join(lines)


def _schema(rng: random.Random) -> str:
    from ptb_gym.envs.tools.functions import schema

    return json.dumps(schema(_function(rng)), indent=rng.choice((None, 2)))


def _code(rng: random.Random) -> str:
    lines = [rng.choice(("import api", "from service import client", "import requests"))]
    for _ in range(rng.randint(1, 4)):
        f = _function(rng)
        args = ", ".join(f"{k}={v!r}" for k, v in _arguments(rng, f).items())
        target = rng.choice(("result", "response", "data", "out", f.name.split("_")[-1]))
        owner = rng.choice(("api.", "client.", ""))
        lines.append(f"{target} = {owner}{f.name}({args})")
        if rng.random() < 0.4:
            lines.append(f"print({target})")
    return "\n".join(lines)


def _log(rng: random.Random) -> str:
    lines = []
    hour, minute = rng.randint(0, 23), rng.randint(0, 59)
    for _ in range(rng.randint(2, 6)):
        f = _function(rng)
        minute = (minute + rng.randint(0, 5)) % 60
        level = rng.choice(("INFO", "INFO", "DEBUG", "WARN"))
        payload = json.dumps(_arguments(rng, f))
        lines.append(f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {hour:02d}:{minute:02d} {level} "
                     f"{rng.choice(('POST', 'GET', 'invoke', 'rpc'))} /{f.name} {payload} -> "
                     f"{rng.choice(('200', '201', '400', '404', 'ok', 'error'))}")
    return "\n".join(lines)


def _record(rng: random.Random) -> str:
    """A sentence and the same facts as a JSON record: the copying of values from text into JSON."""
    person, city, item = rng.choice(PEOPLE), rng.choice(CITIES), rng.choice(ITEMS)
    facts: dict[str, Any] = {"name": person, "city": city}
    sentence = f"{person} lives in {city}"
    if rng.random() < 0.6:
        facts["age"] = rng.randint(18, 90)
        sentence += f", is {facts['age']} years old"
    if rng.random() < 0.6:
        facts["order"] = {"item": item, "quantity": rng.randint(1, 9)}
        sentence += f" and ordered {facts['order']['quantity']} of {item}"
    if rng.random() < 0.4:
        facts["email"] = VALUES["email"](rng)
        sentence += f" (email {facts['email']})"
    return f"{sentence}.\n{json.dumps(facts, indent=rng.choice((None, 2)))}"


def _config(rng: random.Random) -> str:
    config = {"service": rng.choice(NOUNS), "port": rng.randint(1000, 9999), "debug": rng.random() < 0.3,
              "region": rng.choice(CITIES).lower(), "retries": rng.randint(0, 5),
              "endpoints": [f"/{rng.choice(VERBS)}_{rng.choice(NOUNS)}" for _ in range(rng.randint(1, 3))]}
    return json.dumps(config, indent=rng.choice((None, 2, 4)))


_WRITERS = (
    (_api_reference, 0.2), (_schema, 0.15), (_code, 0.2), (_log, 0.15), (_record, 0.2), (_config, 0.1),
)


def documents(rng: random.Random, n: int) -> list[str]:
    """`n` documents of JSON, API references, code and logs, each under `MAX_CHARS` characters; deterministic in
    the state of `rng`."""
    return compose(rng, n, _WRITERS, MAX_CHARS)
