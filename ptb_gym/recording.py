"""Episode recordings: one self-describing, versioned JSONL file per episode.

A recording has a header line (format name and version, ptb-gym version, env id, seed, spec, config, the
reset observation and info), one line per step (action, observation, reward, info, timings) and a footer
line (scores per harness, uplift, failure, flags). Each line is flushed and fsync'ed as it is written, so a
crash loses nothing that was done; an episode without footer was interrupted.

Readers refuse formats and versions they don't know (`read_episode`), as Inspect AI's `read_eval_log` does.
This module imports nothing heavy: numpy objects are converted only if numpy is already loaded.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import math
import os
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ptb_gym.errors import RecordingError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "EpisodeLog",
    "EpisodeRecorder",
    "read_episode",
    "to_jsonable",
]

FORMAT = "ptb-gym-episode"
"""Value of the header's "format" key; anything else is not a ptb-gym episode."""

FORMAT_VERSION = 1
"""Bump when a reader of the previous version would misread new files."""

_HEADER_RESERVED = frozenset({"type", "format", "version"})
_STEP_RESERVED = frozenset({"type", "index"})
_FOOTER_RESERVED = frozenset({"type"})


@functools.cache
def _ptb_gym_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ptb-gym")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def to_jsonable(obj: Any) -> Any:
    """Convert `obj` into something `json.dumps(allow_nan=False)` accepts, losing as little as possible.

    numpy scalars and arrays become Python numbers and lists, paths strings, dataclasses dicts, tuples and
    sets lists, bytes a "<N bytes>" placeholder, nan and infinities None (JSON has no such numbers), dict
    keys strings; anything else its `repr()`, so recording never fails on an odd value.
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [to_jsonable(v) for v in obj]
        try:  # a stable order keeps recordings of the same episode identical
            return sorted(items)
        except TypeError:
            return items
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    # A numpy object can only exist if numpy was imported, so don't import it here.
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, (np.generic, np.ndarray)):
        return to_jsonable(obj.tolist())
    return repr(obj)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "episode"


def _check_reserved(record: Mapping[str, Any], reserved: frozenset[str], what: str) -> None:
    clash = sorted(reserved & record.keys())
    if clash:
        raise ValueError(f"{what} record may not contain the reserved key(s) {clash}; rename them")


class EpisodeRecorder:
    """Writes one episode as JSONL: header, one line per step, footer.

    Every line is flushed and fsync'ed as it is written so a crash loses nothing. Usable as a context
    manager; `close()` without a footer leaves an episode that readers see as interrupted.
    """

    path: Path
    """The file being written."""

    def __init__(self, directory: str | os.PathLike[str], header: Mapping[str, Any], *, first_index: int = 0) -> None:
        """`first_index`: the index of the first step line (a forked episode numbers its steps on from its parent's)."""
        _check_reserved(header, _HEADER_RESERVED, "header")
        now = _dt.datetime.now(_dt.timezone.utc)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        name = (
            f"{_slug(str(header.get('env_id', 'episode')))}-{now:%Y%m%dT%H%M%S}"
            f"-seed{header.get('seed')}-{uuid.uuid4().hex[:8]}.jsonl"
        )
        self.path = directory / name
        # "x": never clobber another episode's file, however unlikely a name clash is.
        self._file: IO[str] | None = open(self.path, "x", encoding="utf-8", newline="\n")
        self._steps = 0
        self._first_index = first_index
        self._footer_written = False
        self._write(
            {
                "type": "header",
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "ptb_gym_version": _ptb_gym_version(),
                "created_at": now.isoformat(timespec="seconds"),
                **header,
            }
        )

    @property
    def num_steps(self) -> int:
        """How many step lines were written."""
        return self._steps

    @property
    def closed(self) -> bool:
        return self._file is None

    def step(self, record: Mapping[str, Any]) -> None:
        """Append one step line `{"type": "step", "index": n, **record}`; n counts from `first_index`."""
        _check_reserved(record, _STEP_RESERVED, "step")
        self._write({"type": "step", "index": self._first_index + self._steps, **record})
        self._steps += 1

    def footer(self, record: Mapping[str, Any]) -> None:
        """Write the footer line `{"type": "footer", **record}` and close the file; only once."""
        if self._footer_written:
            raise RecordingError(f"the footer of {self.path} was already written; an episode has one footer")
        _check_reserved(record, _FOOTER_RESERVED, "footer")
        self._write({"type": "footer", **record})
        self._footer_written = True
        self.close()

    # As an observer of an `Episode`: a line per step as it happens, the footer at the end.
    def on_step(self, episode: Any, step: Any) -> None:
        self.step(step.to_record())

    def on_finish(self, episode: Any, outcome: Any) -> None:
        self.footer(outcome.footer)

    def close(self) -> None:
        """Close the file (idempotent). Without a footer the episode reads back as interrupted."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> EpisodeRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EpisodeRecorder({str(self.path)!r}, steps={self._steps}, closed={self.closed})"

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            raise RecordingError(f"the recorder of {self.path} is closed; nothing more can be written")
        # Serialise fully before writing: a record that fails to encode must not leave half a line.
        line = json.dumps(to_jsonable(record), ensure_ascii=False, allow_nan=False) + "\n"
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from the agent: escaped, never a lost line
            line = json.dumps(to_jsonable(record), ensure_ascii=True, allow_nan=False) + "\n"
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())


@dataclass
class EpisodeLog:
    """An episode read back from its recording."""

    path: Path
    """The recording's file."""
    header: dict[str, Any]
    """The header line: format, version, ptb_gym_version, created_at, env_id, seed, spec, config, ..."""
    steps: list[dict[str, Any]]
    """One dict per step, in order (empty when read with `header_only=True`)."""
    footer: dict[str, Any] | None
    """The footer line; None if the episode was interrupted (or is still running)."""

    @property
    def complete(self) -> bool:
        """Whether the episode ended normally (it has a footer)."""
        return self.footer is not None


def read_episode(path: str | os.PathLike[str], *, header_only: bool = False) -> EpisodeLog:
    """Read an episode recording.

    Args:
        path: A JSONL file written by `EpisodeRecorder`.
        header_only: Read only the header and the footer (the file's last line), not the steps: cheap for
            listing the scores of many episodes.

    Raises:
        RecordingError: The file is not a ptb-gym episode, was written by a newer format version, or has a
            malformed line. An unterminated last line (a crash mid-write) is not an error: it is skipped.
    """
    path = Path(path)
    with open(path, "rb") as f:
        first = f.readline()
        header = _parse_line(first, 1, path, is_last=not first.endswith(b"\n"))
        if header is None or header.get("type") != "header":
            raise RecordingError(f"{path} is not a ptb-gym episode recording: its first line is not a header")
        _check_header(header, path)
        if header_only:
            footer = _parse_line(_last_line(f), 0, path, is_last=True, strict=False)
            if footer is not None and footer.get("type") != "footer":
                footer = None
            return EpisodeLog(path=path, header=header, steps=[], footer=footer)
        steps: list[dict[str, Any]] = []
        footer = None
        for lineno, raw in enumerate(f, start=2):
            record = _parse_line(raw, lineno, path, is_last=not raw.endswith(b"\n"))
            if record is None:
                continue
            kind = record.get("type")
            if footer is not None:
                raise RecordingError(f"{path}, line {lineno}: a {kind!r} line follows the footer")
            if kind == "step":
                steps.append(record)
            elif kind == "footer":
                footer = record
            else:
                raise RecordingError(
                    f"{path}, line {lineno}: unexpected line type {kind!r}; expected 'step' or 'footer'"
                )
    return EpisodeLog(path=path, header=header, steps=steps, footer=footer)


def _check_header(header: dict[str, Any], path: Path) -> None:
    found_format = header.get("format")
    if found_format != FORMAT:
        raise RecordingError(
            f"{path} is not a ptb-gym episode recording: format {found_format!r}, expected {FORMAT!r}"
        )
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordingError(f"{path}: invalid format version {version!r}; expected an integer >= 1")
    if version > FORMAT_VERSION:
        raise RecordingError(
            f"{path} uses episode format version {version} (written by ptb-gym "
            f"{header.get('ptb_gym_version', '?')}), but this ptb-gym ({_ptb_gym_version()}) reads versions "
            f"up to {FORMAT_VERSION}: upgrade ptb-gym to read it"
        )


def _parse_line(
    raw: bytes, lineno: int, path: Path, *, is_last: bool, strict: bool = True
) -> dict[str, Any] | None:
    """Parse one line; None for blank lines and for a truncated last line."""
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        # The newline is written last, in the same write as the line: only an unterminated last line can
        # be a crash mid-write. A malformed line that ends in a newline is corruption.
        if is_last or not strict:
            return None
        raise RecordingError(f"{path}, line {lineno}: malformed JSON ({e}); the recording is corrupt") from e
    if not isinstance(record, dict):
        if not strict:
            return None
        raise RecordingError(f"{path}, line {lineno}: expected a JSON object, found {type(record).__name__}")
    return record


def _last_line(f: IO[bytes], chunk: int = 1 << 16) -> bytes:
    """The file's last line (without reading the rest), or b"" if it has a single line."""
    end = f.seek(0, os.SEEK_END)
    pos, buf = end, b""
    while pos > 0:
        size = min(chunk, pos)
        pos -= size
        f.seek(pos)
        buf = f.read(size) + buf
        # Ignore the last line's own terminating newline when looking for the one before it.
        cut = buf.rfind(b"\n", 0, len(buf) - 1)
        if cut >= 0:
            return buf[cut + 1 :]
    return b""
