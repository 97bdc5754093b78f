"""Record formats shared by the env, its tools and the training job: training data records and metric lines.

One definition, used by `write_data` (the agent's records), the `train` tool (the data file it is given) and
`ptb_gym.training` (which runs inside the sandbox, so this module imports nothing but the standard library).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

# Lines a job prints as `PTB_METRICS {"step": 10, "loss": 1.2, ...}` are parsed into its metrics.
METRICS_PREFIX = "PTB_METRICS "

RECORD_FORMATS = ("{'prompt': str, 'completion': str} (loss on the completion only), {'text': str}, or "
                  "{'messages': [{'role': str, 'content': str}, ...]} (chat, rendered with the tokenizer's template; "
                  "loss on the final assistant turn)")
KINDS = ("prompt-completion", "text", "messages")


class RecordError(ValueError):
    """A training record that the train tool cannot read; the message says which one and how to fix it."""


def record_kind(record: Any, index: int = 0) -> str:
    """`prompt-completion`, `text` or `messages`, or RecordError saying what is wrong with record `index`."""
    if not isinstance(record, Mapping):
        raise RecordError(f"Record {index} is a {type(record).__name__}; each record must be an object: "
                          f"{RECORD_FORMATS}.")
    if "prompt" in record or "completion" in record:
        for key in ("prompt", "completion"):
            if not isinstance(record.get(key), str):
                raise RecordError(f"Record {index} needs a string {key!r}; records are {RECORD_FORMATS}.")
        return "prompt-completion"
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise RecordError(f"Record {index} has 'messages' that is not a non-empty list of "
                              "{'role': str, 'content': str} objects.")
        return "messages"
    if isinstance(record.get("text"), str):
        return "text"
    keys = sorted(str(key) for key in record)[:10]
    raise RecordError(f"Record {index} has keys {keys}; records are {RECORD_FORMATS}.")


def check_records(records: Iterable[Any]) -> tuple[str, int]:
    """(kind, count) of records that all have one kind; RecordError for the first that is wrong."""
    kind, count = None, 0
    for index, record in enumerate(records):
        this = record_kind(record, index)
        if kind is None:
            kind = this
        elif this != kind:
            raise RecordError(f"Record {index} is a {this} record, but record 0 is a {kind} record: use one kind "
                              "per file.")
        count += 1
    if kind is None:
        raise RecordError(f"There are no records; give at least one: {RECORD_FORMATS}.")
    return kind, count


def parse_jsonl(lines: Iterable[str], name: str) -> list[dict[str, Any]]:
    """The records of a JSONL text (blank lines skipped), or RecordError naming the first bad line."""
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError) as error:
                raise RecordError(f"{name} line {number} is not valid JSON "
                                  f"({getattr(error, 'msg', type(error).__name__)}).") from None
    check_records(records)
    return records
