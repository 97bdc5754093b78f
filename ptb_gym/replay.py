"""Replay recorded episodes in the terminal.

`render_episode` returns plain text (no ANSI codes): `env.render()` and the tests use it. `replay` prints the
same content with rich (panels, a score table, errors in red); rich is imported only when it is called.
Both shorten long observations and arguments head+tail ("... [N chars omitted] ...") unless `full=True`, and
both show a single step in full when given `step`.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ptb_gym.recording import EpisodeLog, read_episode
from ptb_gym.text import shorten

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = ["render_episode", "replay"]

OBSERVATION_LIMIT = 2000
"""Characters of a step's observation shown unless full: enough for a log's head and tail."""
OBSERVATION_LINES = 40
"""Lines of a step's observation shown unless full."""
ARGUMENT_LIMIT = 80
"""Characters of one argument value in the one-line call summary."""
PROMPT_LIMIT = 600
"""Characters of the reset observation (the task prompt) shown unless full."""
PROMPT_LINES = 20
"""Lines of the reset observation shown unless full."""

INTERRUPTED = "episode was interrupted (no footer)"
_SCORE_COLUMNS = ("harness", "score", "base", "reference", "uplift", "interval")


# ---- formatting shared by the plain and the rich view -------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    # Records are read from files people may edit: tolerate a missing or odd field rather than crash.
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "?"
    s = float(value)
    if s < 60:
        return f"{s:.2f}s" if s < 10 else f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _compact(value: Any, limit: int | None) -> str:
    """One-line JSON form of a value (strings quoted, newlines escaped), shortened to about `limit`."""
    if isinstance(value, str):  # shorten before escaping, so the omitted count is in real characters
        return json.dumps(value if limit is None else shorten(value, limit), ensure_ascii=False)
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if limit is None else shorten(text, limit)


def _value(value: Any, limit: int | None) -> str:
    """A value in a key=value list: short one-line strings bare, numbers to 4 significant digits."""
    if isinstance(value, str) and len(value) <= 40 and "\n" not in value:
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None or isinstance(value, (bool, int)):
        return str(value)
    return _compact(value, limit)


def _key_values(mapping: Mapping[str, Any], limit: int | None = ARGUMENT_LIMIT) -> str:
    return ", ".join(f"{k}={_value(v, limit)}" for k, v in mapping.items())


def _budget(budget: Any) -> str | None:
    if not isinstance(budget, Mapping) or not budget:
        return None
    text = f"{_seconds(budget.get('used_s'))} used of {_seconds(budget.get('limit_s'))}"
    if budget.get("remaining_s") is not None:
        text += f", {_seconds(budget.get('remaining_s'))} left"
    if budget.get("mode"):
        text += f" ({budget['mode']})"
    return text


def _call(record: Mapping[str, Any], full: bool) -> tuple[str, list[tuple[str, str]]]:
    """The one-line call summary and, when full, the arguments it had to shorten, shown whole."""
    tool, arguments = record.get("tool"), record.get("arguments")
    if not tool:
        return f"unparsed action: {_compact(record.get('action'), None if full else 200)}", []
    if not isinstance(arguments, Mapping):
        return f"{tool}()", []
    parts, whole = [], []
    for name, value in arguments.items():
        short = _compact(value, ARGUMENT_LIMIT)
        parts.append(f"{name}={short}")
        if full and short != _compact(value, None):
            whole.append((name, value if isinstance(value, str) else json.dumps(value, indent=2, default=repr)))
    return f"{tool}({', '.join(parts)})", whole


def _step_facts(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Label/text lines under a step's observation: budget, metrics, job, loss curve, how it ended."""
    info = _mapping(record.get("info"))
    facts: list[tuple[str, str]] = []
    if budget := _budget(info.get("budget")):
        facts.append(("budget", budget))
    if isinstance(metrics := info.get("metrics"), Mapping) and metrics:
        facts.append(("metrics", _key_values(metrics)))
    if isinstance(job := info.get("job"), Mapping) and job:
        facts.append(("job", _key_values(job)))
    curve = info.get("loss_curve")
    if isinstance(curve, Sequence) and curve and all(isinstance(p, Mapping) for p in curve):
        first, last = curve[0], curve[-1]
        facts.append(
            (
                "loss curve",
                f"{len(curve)} points, loss {_num(first.get('loss'))} -> {_num(last.get('loss'))} "
                f"(step {first.get('step')} -> {last.get('step')})",
            )
        )
    reward = record.get("reward")
    ended = [name for name in ("terminated", "truncated") if record.get(name)]
    if ended or (isinstance(reward, (int, float)) and reward != 0):
        facts.append(("reward", _num(reward) + (f" ({', '.join(ended)})" if ended else "")))
    return facts


def _step_title(record: Mapping[str, Any], position: int) -> str:
    title = f"step {record.get('index', position)} · {record.get('tool') or 'unparsed action'}"
    if record.get("duration_s") is not None:
        title += f" · {_seconds(record['duration_s'])}"
    return title


def _tool_name(schema: Any) -> str:
    # OpenAI tool schemas nest the name: {"type": "function", "function": {"name": ...}}.
    if isinstance(schema, Mapping):
        inner = schema.get("function")
        return str((inner if isinstance(inner, Mapping) else schema).get("name", "?"))
    return str(schema)


def _header_facts(log: EpisodeLog) -> list[tuple[str, str]]:
    h = log.header
    info = _mapping(h.get("info"))
    facts: list[tuple[str, str]] = []
    task = h.get("task")
    if isinstance(task, Mapping):
        facts.append(("task", f"{task.get('name', '?')}: {task.get('description', '')}".rstrip(": ")))
    if isinstance(h.get("config"), Mapping) and h["config"]:
        facts.append(("config", _key_values(h["config"])))
    if budget := _budget(info.get("budget")):
        facts.append(("budget", budget))
    tools = info.get("tools")
    if isinstance(tools, Sequence) and tools:
        names = [_tool_name(t) for t in tools]
        facts.append(("tools", ", ".join(names)))
    facts.append(
        (
            "recorded",
            f"{h.get('created_at', '?')} by ptb-gym {h.get('ptb_gym_version', '?')} "
            f"(format v{h.get('version')}), {len(log.steps)} steps",
        )
    )
    facts.append(("file", str(log.path)))
    return facts


def _header_title(log: EpisodeLog) -> str:
    return f"{log.header.get('env_id', '?')} · seed {log.header.get('seed')}"


def _score_rows(footer: Mapping[str, Any]) -> list[tuple[bool, list[str]]]:
    """(is_primary, cells) per harness."""
    scores = footer.get("scores")
    if not isinstance(scores, Mapping):
        return []
    rows = []
    for harness, s in scores.items():
        s = s if isinstance(s, Mapping) else {"score": s}
        interval = s.get("interval")
        lo_hi = (
            f"[{_num(interval[0])}, {_num(interval[1])}]"
            if isinstance(interval, Sequence) and not isinstance(interval, str) and len(interval) == 2
            else "-"
        )
        primary = harness == footer.get("primary_harness")
        cells = [f"{harness}{' *' if primary else ''}"]
        cells += [_num(s.get(k)) for k in ("score", "base", "reference", "uplift")] + [lo_hi]
        rows.append((primary, cells))
    return rows


def _footer_facts(footer: Mapping[str, Any]) -> list[tuple[str, str]]:
    facts = [("uplift", f"{_num(footer.get('uplift'))} (primary harness: {footer.get('primary_harness')})")]
    facts.append(("reward", _num(footer.get("reward"))))
    failure = footer.get("failure")
    if isinstance(failure, Mapping):
        facts.append(("failure", f"{failure.get('kind', '?')}: {failure.get('message', '')}"))
    else:
        facts.append(("failure", "none"))
    flags = footer.get("flags")
    facts.append(("flags", ", ".join(map(str, flags)) if flags else "none"))
    facts.append(
        (
            "episode",
            f"{footer.get('steps', '?')} steps, {'submitted' if footer.get('submitted') else 'not submitted'}, "
            f"{_seconds(footer.get('duration_s'))}",
        )
    )
    if budget := _budget(footer.get("budget")):
        facts.append(("budget", budget))
    return facts


def _select(log: EpisodeLog, step: int | None) -> list[tuple[int, dict[str, Any]]]:
    if step is None:
        return list(enumerate(log.steps))
    n = len(log.steps)
    if not -n <= step < n:
        raise IndexError(f"step {step} is out of range: {log.path} has {n} steps (0 to {n - 1})")
    position = step % n
    return [(position, log.steps[position])]


def _error(record: Mapping[str, Any]) -> str | None:
    info = record.get("info")
    return str(info["error"]) if isinstance(info, Mapping) and info.get("error") else None


# ---- plain text ---------------------------------------------------------------------------------------


def _rule(title: str, width: int, char: str) -> str:
    head = f"{char * 2} {title} "
    return head + char * max(width - len(head), 2)


def _fact_lines(facts: list[tuple[str, str]], width: int) -> list[str]:
    pad = max((len(label) for label, _ in facts), default=0) + 2
    return [
        textwrap.fill(
            text, width, initial_indent=f"{label}:".ljust(pad), subsequent_indent=" " * pad
        )
        or f"{label}:"
        for label, text in facts
    ]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_episode(log: EpisodeLog, *, step: int | None = None, full: bool = False, width: int = 120) -> str:
    """Render an episode as plain text (no ANSI codes).

    Args:
        log: The episode, from `read_episode`.
        step: Show only this step (negative counts from the end), in full.
        full: Show observations and arguments whole instead of head+tail.
        width: Line width for rules and wrapped fields; observations keep their own lines.
    """
    lines: list[str] = []
    if step is None:
        lines.append(_rule(_header_title(log), width, "="))
        lines += _fact_lines(_header_facts(log), width)
        if log.header.get("observation"):
            prompt = str(log.header["observation"])
            lines += ["", prompt if full else shorten(prompt, PROMPT_LIMIT, PROMPT_LINES)]
    for position, record in _select(log, step):
        show_all = full or step is not None
        call, whole = _call(record, show_all)
        lines += ["", _rule(_step_title(record, position), width, "-"), call]
        for name, value in whole:
            lines += [f"[{name}]", value]
        observation = str(record.get("observation", ""))
        if observation:
            lines += ["", observation if show_all else shorten(observation, OBSERVATION_LIMIT, OBSERVATION_LINES), ""]
        if error := _error(record):
            lines.append(f"ERROR: {error}")
        lines += _fact_lines(_step_facts(record), width)
    if step is None:
        lines += ["", _rule("result", width, "=")]
        if log.footer is None:
            lines.append(INTERRUPTED)
        else:
            rows = _score_rows(log.footer)
            if rows:
                lines += _table([list(_SCORE_COLUMNS)] + [cells for _, cells in rows])
                lines.append("(* primary harness)")
            lines += _fact_lines(_footer_facts(log.footer), width)
    return "\n".join(lines).strip("\n") + "\n"


# ---- rich ---------------------------------------------------------------------------------------------


def replay(
    path: str | os.PathLike[str],
    *,
    step: int | None = None,
    full: bool = False,
    console: Console | None = None,
) -> None:
    """Print a recorded episode to the terminal with rich.

    Args:
        path: The episode's JSONL recording.
        step: Show only this step (negative counts from the end), in full.
        full: Show observations and arguments whole instead of head+tail.
        console: Where to print; a new `rich.console.Console()` (stdout) by default.
    """
    from rich.console import Console, Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    log = read_episode(path)
    console = console or Console()

    # Data goes in as Text, never as markup strings: a "[red]" in a log must print as itself.
    def facts_grid(facts: list[tuple[str, str]], styles: Mapping[str, str] | None = None) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for label, text in facts:
            grid.add_row(Text(f"{label}:"), Text(text, style=(styles or {}).get(label, "")))
        return grid

    if step is None:
        parts: list[RenderableType] = [facts_grid(_header_facts(log))]
        if log.header.get("observation"):
            prompt = str(log.header["observation"])
            parts += [Text(""), Text(prompt if full else shorten(prompt, PROMPT_LIMIT, PROMPT_LINES), style="dim")]
        console.print(Panel(Group(*parts), title=Text(_header_title(log), style="bold"), border_style="cyan"))

    for position, record in _select(log, step):
        show_all = full or step is not None
        call, whole = _call(record, show_all)
        parts = [Text(call, style="bold cyan")]
        for name, value in whole:
            parts += [Text(f"[{name}]", style="bold"), Text(value)]
        observation = str(record.get("observation", ""))
        if observation:
            parts.append(Text(observation if show_all else shorten(observation, OBSERVATION_LIMIT, OBSERVATION_LINES)))
        error = _error(record)
        if error:
            parts.append(Text(f"error: {error}", style="bold red"))
        if facts := _step_facts(record):
            parts.append(facts_grid(facts))
        console.print(
            Panel(
                Group(*parts),
                title=Text(_step_title(record, position)),
                title_align="left",
                border_style="red" if error else "blue",
            )
        )

    if step is not None:
        return
    if log.footer is None:
        console.print(Text(INTERRUPTED, style="bold yellow"))
        return
    rows = _score_rows(log.footer)
    if rows:
        table = Table(title="scores per harness (* primary)", title_justify="left")
        for column in _SCORE_COLUMNS:
            table.add_column(column, justify="left" if column == "harness" else "right")
        for primary, cells in rows:
            table.add_row(*(Text(c) for c in cells), style="bold green" if primary else None)
        console.print(table)
    failed = isinstance(log.footer.get("failure"), Mapping)
    console.print(facts_grid(_footer_facts(log.footer), {"failure": "bold red" if failed else "green"}))
