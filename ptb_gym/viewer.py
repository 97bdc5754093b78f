"""The episode viewer: recordings as one self-contained HTML page, or served live while an episode runs.

`ptb-gym view RECORDING... [-o report.html]` writes a page that opens from disk with no network: the task, every
step (tool, arguments, observation, duration, budget used), each training job's loss curve, the dev scores of
every `evaluate` over the budget, a budget timeline, the final scores per harness with their intervals, the
flags and the failure. Given several recordings (two agents on one seed, say) it opens on a comparison of them.
`ptb-gym view --serve RECORDING` serves the same page on 127.0.0.1 and the page follows the file as it grows.

Recordings hold text the agent wrote (observations, file contents), so the page treats all of it as data: it
travels as JSON in a `<script type="application/json">` block with `<`, `>` and `&` escaped, and the script
puts it in the page with `textContent` only, never as markup. Observations are built into the page when a step
is opened, so a recording of thousands of steps renders at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ptb_gym.errors import RecordingError
from ptb_gym.recording import EpisodeLog, read_episode

__all__ = ["episode_data", "make_server", "render_html", "serve", "write_html"]

_TEMPLATE = Path(__file__).with_name("viewer.html")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}  # recordings are files people may edit


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def episode_data(log: EpisodeLog) -> dict[str, Any]:
    """What the page shows of one recording, as plain JSON (the page computes nothing but layout)."""
    header, footer = log.header, _mapping(log.footer)
    config, task = _mapping(header.get("config")), _mapping(header.get("task"))
    steps, losses, evaluations = [], {}, []
    for record in log.steps:
        info = _mapping(record.get("info"))
        budget = _mapping(info.get("budget"))
        used = _number(budget.get("used_s"))
        arguments = record.get("arguments", _mapping(record.get("action")).get("arguments"))
        steps.append({
            "index": record.get("index"), "tool": str(record.get("tool") or "?"),
            "arguments": json.dumps(arguments, ensure_ascii=False) if arguments is not None else "",
            "observation": str(record.get("observation") or ""),
            "duration_s": _number(record.get("duration_s")), "budget_used_s": used,
            "error": str(info["error"]) if isinstance(info.get("error"), (str, Mapping)) else None,
        })
        job = _mapping(info.get("job"))
        if isinstance(info.get("loss_curve"), list) and job.get("id"):
            curve = losses.setdefault(str(job["id"]), {})
            for point in info["loss_curve"]:  # each wait reports the curve so far: merge by training step
                step, loss = _number(_mapping(point).get("step")), _number(_mapping(point).get("loss"))
                if step is not None and loss is not None:
                    curve[step] = loss
        if isinstance(info.get("dev_scores"), Mapping):
            evaluations.append({
                "step": record.get("index"), "budget_used_s": used, "checkpoint": str(info.get("checkpoint", "")),
                "scores": {str(h): _number(_mapping(s).get("score")) for h, s in info["dev_scores"].items()},
            })
    scores = {}
    for harness, entry in _mapping(footer.get("scores")).items():
        entry = _mapping(entry)
        scores[str(harness)] = {key: entry.get(key) for key in
                                ("score", "interval", "n", "base", "reference", "uplift", "uplift_interval",
                                 "uplift_note")}
    failure = _mapping(footer.get("failure"))
    return {
        "name": log.path.name, "env_id": str(header.get("env_id", "?")), "seed": header.get("seed"),
        "created_at": str(header.get("created_at", "")), "task": str(task.get("description") or task.get("name") or ""),
        "briefing": str(header.get("observation") or ""),
        "forked_from": _forked_from(header),
        "budget_limit_s": _number(config.get("budget_s")), "budget_mode": str(config.get("budget_mode", "")),
        "complete": log.complete, "steps": steps,
        "losses": {job: sorted(curve.items()) for job, curve in losses.items()},
        "evaluations": evaluations,
        "final": None if log.footer is None else {
            "reward": _number(footer.get("reward")), "uplift": _number(footer.get("uplift")),
            "uplift_interval": footer.get("uplift_interval"), "reward_kind": footer.get("reward_kind"),
            "primary_harness": footer.get("primary_harness"), "checkpoint": footer.get("checkpoint"),
            "submitted": footer.get("submitted"), "truncated_by": footer.get("truncated_by"),
            "valid": footer.get("valid"), "flags": footer.get("flags") or [], "scores": scores,
            "failure": {"kind": failure.get("kind"), "message": failure.get("message")} if failure else None,
            "budget_used_s": _number(_mapping(footer.get("budget")).get("used_s")),
        },
    }


def _load(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    return [episode_data(read_episode(path)) for path in paths]


def _script_json(value: Any) -> str:
    """JSON that cannot end the `<script>` block it sits in, whatever strings it holds."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(episodes: Sequence[Mapping[str, Any]], *, live: bool = False) -> str:
    """The page for these episodes (from `episode_data`); `live`: it polls `data.json` for new steps."""
    page = _TEMPLATE.read_text(encoding="utf-8")
    return page.replace("__DATA__", _script_json({"episodes": list(episodes), "live": live}))


def write_html(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Write the page of the recordings at `paths` to `out`; returns its path."""
    out = Path(out)
    out.write_text(render_html(_load(paths)), encoding="utf-8")
    return out


def make_server(paths: Sequence[str | os.PathLike[str]], port: int = 8765):
    """An HTTP server (not yet serving) of the page on 127.0.0.1:`port` (0: any free port). It rereads the
    recordings on every request, so the page follows an episode that is still being written."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API names it
            try:
                episodes = _load(paths)
            except (RecordingError, OSError) as error:  # being replaced, or not there yet: say so, keep serving
                body, kind, status = str(error).encode(), "text/plain; charset=utf-8", 503
            else:
                if self.path.split("?")[0] == "/data.json":
                    body, kind = _script_json({"episodes": episodes, "live": True}).encode(), "application/json"
                else:
                    body, kind = render_html(episodes, live=True).encode(), "text/html; charset=utf-8"
                status = 200
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # the page polls every 2 s: keep the terminal quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def serve(paths: Sequence[str | os.PathLike[str]], *, port: int = 8765) -> None:
    """Serve the live page until interrupted (`ptb-gym view --serve`)."""
    with make_server(paths, port) as server:
        print(f"ptb-gym view: serving http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass


def _forked_from(header: dict[str, Any]) -> str | None:
    """"step K of <recording>" for a fork (`ptb-gym fork`), else None."""
    parent = _mapping(_mapping(header.get("info")).get("forked_from"))
    if not parent:
        return None
    return f"step {parent.get('step')} of {Path(str(parent.get('recording') or 'a snapshot')).name}"
