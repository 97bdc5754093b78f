"""The write_data tool: training data as validated JSONL records."""

from __future__ import annotations

import json
from typing import Any

from ptb_gym.episode import Episode
from ptb_gym.errors import ToolError
from ptb_gym.protocol import ToolResult, tool
from ptb_gym.tools.files import write_file

RECORD_FORMATS = "{'prompt': str, 'completion': str} (loss on the completion only) or {'text': str}"


@tool
def write_data(episode: Episode, path: str, records: list[dict], append: bool = False) -> ToolResult:
    """Write training records to a JSONL file, checking that each one has a format the train tool reads.

    Args:
        path: JSONL file path relative to the workspace root, e.g. "data/sft.jsonl".
        records: The records: each {"prompt": ..., "completion": ...} or {"text": ...}, all of one kind.
        append: Append to the file instead of replacing it.
    """
    if not records:
        raise ToolError("records is empty: give at least one record.")
    kind = _kind(records[0], 0)
    for index, record in enumerate(records[1:], 1):
        if _kind(record, index) != kind:
            raise ToolError(f"Record {index} is a {_kind(record, index)} record, but record 0 is a {kind} record: "
                            "use one kind per file.")
    content = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    write_file.function(episode, path, content, append)
    sample = json.dumps(records[0], ensure_ascii=False)
    return ToolResult(
        f"Wrote {len(records)} {kind} records to {path}. First record: {sample[:300]}",
        {"data": {"path": path, "records": len(records), "kind": kind}},
    )


def _kind(record: Any, index: int) -> str:
    if not isinstance(record, dict):
        raise ToolError(f"Record {index} is a {type(record).__name__}; each record must be an object: {RECORD_FORMATS}.")
    if "prompt" in record or "completion" in record:
        for key in ("prompt", "completion"):
            if not isinstance(record.get(key), str):
                raise ToolError(f"Record {index} needs a string {key!r}; records are {RECORD_FORMATS}.")
        return "prompt-completion"
    if isinstance(record.get("text"), str):
        return "text"
    raise ToolError(f"Record {index} has keys {sorted(record)}; records are {RECORD_FORMATS}.")
