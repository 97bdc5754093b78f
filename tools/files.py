"""File tools: read, write and list files of the workspace (nothing outside it can be reached).

All three go through the workspace's gate (`ptb_gym.workspace.Workspace`): no link is followed, special files
are refused without blocking, and every read is bounded (a 4 GB file or a tree of 100,000 files costs the env
a bounded amount of memory and time).
"""

from __future__ import annotations

from ptb_gym.episode import Episode
from ptb_gym.errors import ToolError
from ptb_gym.protocol import tool
from ptb_gym.text import human_bytes
from ptb_gym.workspace import Workspace

MAX_WRITE_BYTES = 50 * 1024**2
MAX_READ_LINES = 2000
SHOWN_PER_DIRECTORY = 200
MAX_LISTED_LINES = 1000
MAX_LISTED_ENTRIES = 20_000
"""list_files looks at no more entries than this (then it says the listing stopped)."""


@tool
def read_file(episode: Episode, path: str, start_line: int = 1, max_lines: int = 400) -> str:
    """Read a text file of the workspace.

    Args:
        path: File path relative to the workspace root, e.g. "TASK.md" or "logs/job-1.log".
        start_line: First line to show (1-based).
        max_lines: How many lines to show at most.
    """
    max_bytes = max(1000, episode.config.max_observation_chars - 300)
    window = episode.workspace.read_text_lines(path, start_line, min(max(1, max_lines), MAX_READ_LINES), max_bytes)
    total = "?" if window.total_lines is None else str(window.total_lines)
    if window.last_line < window.first_line:
        if window.total_lines == 0:
            return "(empty file)"
        return f"[{path} has {total} lines; start_line {window.first_line} is past its end]"
    text = window.text
    more = window.total_lines is None or window.last_line < window.total_lines
    if window.cut:
        text += (f"\n[line {window.last_line} is longer than {max_bytes} bytes and was cut; read the rest with run, "
                 f"e.g. `cut -c {max_bytes}- {path}`]")
    elif window.first_line > 1 or more:
        text += (f"\n[lines {window.first_line}-{window.last_line} of {total}; use start_line="
                 f"{window.last_line + 1} to read more]" if more else
                 f"\n[lines {window.first_line}-{window.last_line} of {total}]")
    return text


@tool
def write_file(episode: Episode, path: str, content: str, append: bool = False) -> str:
    """Write a text file in the workspace (a script, a config, data), creating directories as needed.

    Args:
        path: File path relative to the workspace root, e.g. "train.py".
        content: The text to write.
        append: Append to the file instead of replacing it.
    """
    try:
        encoded = content.encode()
    except UnicodeEncodeError as error:
        raise ToolError(f"The content is not valid Unicode text ({error.reason} at character {error.start}): "
                        "write binary data with a script run by run.") from None
    if len(encoded) > MAX_WRITE_BYTES:
        raise ToolError(f"The content is {len(encoded)} bytes; files written at once are limited to {MAX_WRITE_BYTES}: "
                        "write it in parts with append=True, or generate it with a script.")
    relative = episode.workspace.check(path)
    written = episode.workspace.write_bytes(relative, encoded, append=append)
    return f"{'Appended' if append else 'Wrote'} {written} bytes to {relative}."


@tool
def list_files(episode: Episode, path: str = ".", depth: int = 2) -> str:
    """List the files of a workspace directory with their sizes.

    Args:
        path: Directory relative to the workspace root.
        depth: How many directory levels to show.
    """
    return listing(episode.workspace, path, max(1, min(depth, 64)))


def listing(workspace: Workspace, path: str, depth: int) -> str:
    """The tree under `path`, `depth` levels deep, at most SHOWN_PER_DIRECTORY entries per directory and
    MAX_LISTED_LINES lines; hidden names (".x") are left out."""
    start = workspace.check(path)
    prefix = 0 if start == "." else len(start) + 1
    lines: list[str] = []
    shown: dict[str, int] = {}  # per directory: entries seen
    omitted_line: dict[str, int] = {}  # per directory: index of its "... N more" line
    skipped = "\0"  # the last directory not shown (over the per-directory limit): its contents are skipped too
    stopped = ""
    for entry in workspace.walk(start, max_depth=depth, max_entries=MAX_LISTED_ENTRIES, hidden=False):
        if entry.kind == "truncated":
            if "entries" in entry.detail or "changed" in entry.detail:
                stopped = entry.detail
            continue  # depth: a directory at the last level shown is not entered, as asked
        relative = entry.relative[prefix:]
        parent, _, name = relative.rpartition("/")
        if relative.startswith(skipped + "/"):
            continue
        shown[parent] = shown.get(parent, 0) + 1
        indent = "  " * relative.count("/")
        if shown[parent] > SHOWN_PER_DIRECTORY:
            if parent not in omitted_line:
                omitted_line[parent] = len(lines)
                lines.append(indent)
            if entry.kind == "dir":
                skipped = relative
            lines[omitted_line[parent]] = f"{indent}... {shown[parent] - SHOWN_PER_DIRECTORY} more"
            continue
        if len(lines) >= MAX_LISTED_LINES:
            stopped = stopped or f"more than {MAX_LISTED_LINES} lines"
            break
        if entry.kind == "dir":
            lines.append(f"{indent}{name}/")
        elif entry.kind == "file":
            lines.append(f"{indent}{name}  ({human_bytes(entry.size)})")
        else:
            lines.append(f"{indent}{name}  ({entry.kind})")
    if stopped:
        for index in omitted_line.values():  # counts of what was seen before the walk stopped
            lines[index] = lines[index].replace("... ", "... at least ", 1)
        lines.append(f"[listing stopped: {stopped}; list a subdirectory, or use a smaller depth]")
    return "\n".join(lines) or "(empty directory)"
