"""Text helpers shared by every view of an episode: the one way long text is shortened."""

from __future__ import annotations

__all__ = ["human_bytes", "shorten"]


def shorten(text: str, limit: int, max_lines: int | None = None, *, where: str = "") -> str:
    """`text` if it fits, else its head and tail around "... [N chars omitted] ...".

    Args:
        text: The text to shorten.
        limit: Most characters of the result, marker included (about half from the head, half from the tail).
        max_lines: Most lines kept, if given: logs of many short lines stay short too.
        where: Where the full text is (a log file), named in the marker.

    Cuts fall on line boundaries where that costs little, so log lines stay whole.
    """
    n_lines = text.count("\n") + 1
    if len(text) <= limit and (max_lines is None or n_lines <= max_lines):
        return text
    hint = f"; the full text is in {where}" if where else ""
    marker = len(f"... [{len(text)} chars omitted{hint}] ...\n")
    half = max((limit - marker) // 2, 1)  # room for the marker: the result never exceeds `limit`
    # The kept head is text[:h], the kept tail text[t:].
    h, t = (half, len(text) - half) if len(text) > limit else (len(text), 0)
    if max_lines is not None and n_lines > max_lines:
        keep = max(max_lines // 2, 1)
        pos = -1
        for _ in range(keep):
            pos = text.find("\n", pos + 1)
        h = min(h, pos + 1)
        pos = len(text) - 1 if text.endswith("\n") else len(text)
        for _ in range(keep):
            pos = text.rfind("\n", 0, pos)
        t = max(t, pos + 1)
    cut = text.rfind("\n", 0, h)
    if cut + 1 >= h // 2:
        h = cut + 1
    if text[t - 1] != "\n" and 0 <= (cut := text.find("\n", t)) < t + half // 2:
        t = cut + 1
    if h >= t:
        return text
    omitted = f"... [{t - h} chars omitted{hint}] ..."
    at_lines = h > 0 and text[h - 1] == "\n" and text[t - 1] == "\n"
    return f"{text[:h]}{omitted}\n{text[t:]}" if at_lines else f"{text[:h]}{omitted}{text[t:]}"


def human_bytes(n: float) -> str:
    """A size for people: 512 B, 3.7 KB, 8.3 MB, 2.0 GB."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
