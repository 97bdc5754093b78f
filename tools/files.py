"""File tools: read, write and list files of the workspace (nothing outside it can be reached)."""

from __future__ import annotations

from ptb_gym.episode import Episode
from ptb_gym.errors import ToolError
from ptb_gym.protocol import tool

MAX_WRITE_BYTES = 50 * 1024**2
READ_ONLY_DIRS = ("base_model",)


@tool
def read_file(episode: Episode, path: str, start_line: int = 1, max_lines: int = 400) -> str:
    """Read a text file of the workspace.

    Args:
        path: File path relative to the workspace root, e.g. "TASK.md" or "logs/job-1.log".
        start_line: First line to show (1-based).
        max_lines: How many lines to show at most.
    """
    target = episode.workspace.resolve(path, expect="file")
    data = target.read_bytes()
    if b"\x00" in data[:8192]:
        raise ToolError(f"{path!r} is a binary file ({len(data)} bytes) and cannot be shown as text.")
    lines = data.decode(errors="replace").splitlines()
    start = max(1, start_line)
    shown = lines[start - 1 : start - 1 + max(1, max_lines)]
    text = "\n".join(shown)
    end = start + len(shown) - 1
    if start > 1 or end < len(lines):
        text += f"\n[lines {start}-{end} of {len(lines)}; use start_line to read more]"
    return text


@tool
def write_file(episode: Episode, path: str, content: str, append: bool = False) -> str:
    """Write a text file in the workspace (a script, a config, data), creating directories as needed.

    Args:
        path: File path relative to the workspace root, e.g. "train.py".
        content: The text to write.
        append: Append to the file instead of replacing it.
    """
    target = episode.workspace.resolve(path)
    relative = episode.workspace.relative(target)
    if relative.split("/")[0] in READ_ONLY_DIRS:
        raise ToolError(f"{relative.split('/')[0]}/ is read-only: write your outputs elsewhere, e.g. checkpoints/.")
    if target.is_dir():
        raise ToolError(f"{path!r} is a directory; give a file path.")
    encoded = content.encode()
    if len(encoded) > MAX_WRITE_BYTES:
        raise ToolError(f"The content is {len(encoded)} bytes; files written at once are limited to {MAX_WRITE_BYTES}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "ab" if append else "wb") as out:
        out.write(encoded)
    return f"{'Appended' if append else 'Wrote'} {len(encoded)} bytes to {relative}."


@tool
def list_files(episode: Episode, path: str = ".", depth: int = 2) -> str:
    """List the files of a workspace directory with their sizes.

    Args:
        path: Directory relative to the workspace root.
        depth: How many directory levels to show.
    """
    root = episode.workspace.resolve(path, expect="dir")
    lines: list[str] = []

    def walk(directory, level: int) -> None:
        entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
        for entry in entries[:200]:
            indent = "  " * level
            if entry.is_dir() and not entry.is_symlink():
                lines.append(f"{indent}{entry.name}/")
                if level + 1 < depth:
                    walk(entry, level + 1)
            else:
                lines.append(f"{indent}{entry.name}  ({_size(entry.lstat().st_size)})")
        if len(entries) > 200:
            lines.append(f"{'  ' * level}... {len(entries) - 200} more")

    walk(root, 0)
    return "\n".join(lines) or "(empty directory)"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
