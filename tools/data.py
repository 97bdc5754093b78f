"""The write_data tool: training data as validated JSONL records."""

from __future__ import annotations

import json

from ptb_gym.episode import Episode
from ptb_gym.errors import ToolError
from ptb_gym.protocol import ToolResult, tool
from ptb_gym.records import RecordError, check_records
from ptb_gym.tools.files import write_file


@tool
def write_data(episode: Episode, path: str, records: list[dict], append: bool = False) -> ToolResult:
    """Write training records to a JSONL file, checking that each one has a format the train tool reads.

    Args:
        path: JSONL file path relative to the workspace root, e.g. "data/sft.jsonl".
        records: The records, all of one kind: {"prompt": ..., "completion": ...}, {"text": ...} or {"messages": [...]}.
        append: Append to the file instead of replacing it.
    """
    try:
        kind, count = check_records(records)
    except RecordError as error:
        raise ToolError(str(error)) from None
    content = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    write_file.function(episode, path, content, append)
    sample = json.dumps(records[0], ensure_ascii=False)
    return ToolResult(
        f"Wrote {count} {kind} records to {path}. First record: {sample[:300]}",
        {"data": {"path": path, "records": count, "kind": kind}},
    )
