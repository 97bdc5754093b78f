"""`ptb-gym serve --mcp TASK`: the env's episodes as an MCP server, for CLI agents (Claude Code, Codex CLI, ...).

    ptb-gym serve --mcp PTB/math-v0                       # over stdio: the client spawns it, one episode
    ptb-gym serve --mcp PTB/math-v0 --http --port 8765    # streamable HTTP on 127.0.0.1:8765/mcp

One episode per MCP session: over stdio the process is the session; over streamable HTTP every session (its
`Mcp-Session-Id`) gets its own episode, closed when the session ends (the client's DELETE, the idle timeout) or
the server stops. The episode is built exactly as `gym.make(TASK, **options).reset()` builds it (the same
options, tools and recording); the MCP tools are the episode's tools, with the names, descriptions and JSON
schemas of `info["tools"]`, and every call goes through `Episode.call`, the one dispatch path. `submit`, or the
budget or step limit running out, ends the episode: that call returns the outcome summary as text and the
reward, uplift, scores and failure as structured content, and the same lands in a results JSON file.

`mcp` is an optional dependency (`pip install ptb-gym[mcp]`); it is imported only when serving.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger("ptb_gym.mcp")

MCP_PATH = "/mcp"
RESULT_KEYS = ("reward", "uplift", "uplift_interval", "reward_kind", "scores", "failure", "valid", "submitted",
               "truncated_by", "checkpoint", "steps")
"""What the last call's structured content carries (the results file has the whole footer)."""
META_KEY = "ptb-gym/episode"
"""The `_meta` entry of every tool result: the episode's step, budget, workspace and seed."""
INSTRUCTIONS = ("A ptb-gym post-training episode: a base language model, a task, training data and a compute "
                "budget in a workspace. Read TASK.md (read_file) first; act only through these tools; call submit "
                "with your best checkpoint before the budget runs out. The reward is the normalized uplift of the "
                "submitted model on a hidden test split.")


def require_mcp():
    """Import the `mcp` SDK, or exit with the extra to install."""
    try:
        import mcp  # noqa: F401
        from mcp.server import Server  # noqa: F401
    except ImportError as error:
        raise SystemExit(f"ptb-gym serve needs the MCP SDK, which is not installed ({error}): "
                         "pip install 'ptb-gym[mcp]'") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` subcommand's arguments (the same env options as `ptb-gym run`)."""
    parser.add_argument("env_id", nargs="?", default="PTB/math-v0")
    parser.add_argument("--mcp", action="store_true", help="serve the Model Context Protocol (the only protocol)")
    parser.add_argument("--http", action="store_true", help="streamable HTTP on 127.0.0.1 instead of stdio")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (0: any free port; printed on stderr)")
    parser.add_argument("--session-idle-timeout", type=float, default=1800.0,
                        help="HTTP: close a session (and its episode) after this many idle seconds (0: never)")
    parser.add_argument("--seed", type=int, help="episode seed (the n-th HTTP session gets seed+n); random if unset")
    parser.add_argument("--results-dir", default="runs", help="where each episode's results JSON goes")
    from ptb_gym.cli import add_env_options

    add_env_options(parser)


def main(args: argparse.Namespace) -> int:
    """Run the server until the client disconnects (stdio) or the process is interrupted (HTTP)."""
    from ptb_gym.cli import _options

    require_mcp()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="ptb-gym serve: %(message)s")
    for noisy in ("mcp", "httpx", "httpx2", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    env_id = args.env_id if "/" in args.env_id else f"PTB/{args.env_id}"
    service = EpisodeService(env_id, _options(args), results_dir=args.results_dir, seed=args.seed)
    try:
        service.check()
    except Exception as error:  # noqa: BLE001 - a bad option or task id: say it, before any client connects
        print(f"ptb-gym serve: error: {error}", file=sys.stderr)
        return 2
    import anyio

    try:
        if args.http:
            run_http(service, args.port, idle_timeout=args.session_idle_timeout or None)
        else:
            anyio.run(run_stdio, service)
    except KeyboardInterrupt:
        pass
    finally:
        service.close_all()
    return 0


# --------------------------------------------------------------------------------------------- episodes

class EpisodeSession:
    """One MCP session's episode: a Gymnasium env made and reset as `gym.make` users do, driven via `Episode.call`."""

    def __init__(self, service: EpisodeService, label: str, seed: int | None) -> None:
        self.service, self.label, self.seed = service, label, seed
        self.env: Any = None
        self.info: dict[str, Any] = {}
        self.error: str | None = None
        self.result_file: Path | None = None
        self.lock = threading.Lock()  # one call at a time: an episode acts sequentially
        self.closed = False

    @property
    def episode(self):
        return self.env.unwrapped.episode if self.env is not None else None

    def start(self) -> None:
        """Make and reset the env (once); a failure is kept and reported on every call."""
        if self.env is not None or self.error is not None:
            return
        import gymnasium as gym

        import ptb_gym  # noqa: F401 - registers the ids

        env = None
        try:
            env = gym.make(self.service.env_id, **self.service.options)
            _, self.info = env.reset(seed=self.seed)
        except Exception as error:  # noqa: BLE001 - shown to the client as the call's error
            logger.exception("episode start failed")
            self.error = f"the episode could not be started: {type(error).__name__}: {error}"
            if env is not None:
                env.close()
            return
        self.env = env
        env.unwrapped.episode.observers.append(_ResultsWriter(self))
        logger.info("%s: episode started, seed %s, workspace %s, recording %s", self.label, self.info.get("seed"),
                    self.info.get("workspace"), self.info.get("recording", "none"))

    def call(self, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """One tool call through `Episode.call`; returns the parts of the MCP result."""
        with self.lock:
            if self.closed:
                return {"text": "Error: the session's episode was closed.", "error": True}
            self.start()
            if self.error is not None:
                return {"text": f"Error: {self.error}", "error": True}
            step = self.episode.call({"tool": name, "arguments": arguments if arguments is not None else {}})
            info = step.info
            meta = {"step": info.get("step"), "budget": info.get("budget"), "workspace": self.info.get("workspace"),
                    "seed": self.info.get("seed"), "session": self.label,
                    "terminated": step.terminated, "truncated": step.truncated}
            part: dict[str, Any] = {"text": step.observation, "error": "error" in info, "meta": meta}
            if step.terminated or step.truncated:
                part["structured"] = {**{key: info.get(key) for key in RESULT_KEYS if key in info},
                                      "reward": float(step.reward), "terminated": step.terminated,
                                      "truncated": step.truncated, "results_file": str(self.result_file),
                                      "recording": self.info.get("recording")}
            return part

    def close(self) -> None:
        """Kill the episode's processes and delete its workspace (as `env.close()`); idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.env is not None:
                self.env.close()
                logger.info("%s: episode closed", self.label)
        self.service.forget(self)


class _ResultsWriter:
    """An episode observer: at the end, the final scores to `<results-dir>/<recording name>.result.json`."""

    def __init__(self, session: EpisodeSession) -> None:
        self.session = session
        info = session.info
        stem = Path(info["recording"]).stem if info.get("recording") else (
            f"{session.service.env_id.replace('/', '-')}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S}"
            f"-seed{info.get('seed')}-{uuid.uuid4().hex[:8]}")
        session.result_file = Path(session.service.results_dir) / f"{stem}.result.json"

    def on_step(self, episode: Any, step: Any) -> None:
        pass

    def on_finish(self, episode: Any, outcome: Any) -> None:
        from ptb_gym.recording import to_jsonable

        session = self.session
        record = {"env_id": session.service.env_id, "seed": session.info.get("seed"), "session": session.label,
                  "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "recording": session.info.get("recording"), "workspace": session.info.get("workspace"),
                  **outcome.footer}
        path = session.result_file
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(to_jsonable(record), indent=1, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(temporary, path)
        logger.info("%s: episode over, reward %+.3f, results in %s", session.label, outcome.reward, path)


class EpisodeService:
    """The task, its env options, and the live sessions; what the MCP handlers act on."""

    def __init__(self, env_id: str, options: dict[str, Any], *, results_dir: str, seed: int | None) -> None:
        self.env_id, self.options, self.results_dir, self.seed = env_id, options, results_dir, seed
        self.tools: list[dict[str, Any]] = []
        self.sessions: set[EpisodeSession] = set()
        self._count = 0
        self._lock = threading.Lock()

    def check(self) -> None:
        """Make (not reset) one env: the id and options are validated, and the tool schemas read off it."""
        import gymnasium as gym

        import ptb_gym  # noqa: F401

        env = gym.make(self.env_id, **self.options)
        try:
            self.tools = [schema["function"] for schema in env.unwrapped.tool_schemas]
        finally:
            env.close()

    def open(self, label: str | None = None) -> EpisodeSession:
        with self._lock:
            seed = None if self.seed is None else self.seed + self._count
            self._count += 1
            session = EpisodeSession(self, label or f"session {self._count}", seed)
            self.sessions.add(session)
        return session

    def forget(self, session: EpisodeSession) -> None:
        with self._lock:
            self.sessions.discard(session)

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self.sessions)
        for session in sessions:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - close the others
                logger.exception("closing %s failed", session.label)


# ------------------------------------------------------------------------------------------- MCP server

def build_server(service: EpisodeService, *, per_connection: bool):
    """The low-level MCP server: `tools/list` from the env's schemas, `tools/call` into the session's episode.

    per_connection: every MCP connection (an HTTP session) gets its own episode, closed when the connection
    ends; otherwise (stdio) the process has one episode.
    """
    import anyio
    import mcp_types as types
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

    single: list[EpisodeSession] = []

    def session_for(ctx) -> EpisodeSession:
        if not per_connection:
            if not single:
                single.append(service.open("stdio"))
            return single[0]
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            raise MCPError(types.INVALID_REQUEST, "ptb-gym keeps one episode per MCP session: connect with the "
                           f"session-based protocol (the initialize handshake, {HANDSHAKE_PROTOCOL_VERSIONS[-1]}), "
                           "not a stateless 2026-07-28 request")
        connection = getattr(ctx.session, "_connection", None)
        if connection is None or not hasattr(connection, "state"):
            raise MCPError(types.INTERNAL_ERROR, "ptb-gym cannot tell MCP sessions apart with this version of the mcp "
                           "SDK; install a supported one: pip install 'ptb-gym[mcp]'")
        session = connection.state.get("ptb_gym")
        if session is None:
            session = connection.state["ptb_gym"] = service.open(f"session {connection.session_id or '?'}"[:40])

            async def close() -> None:
                await anyio.to_thread.run_sync(session.close)

            connection.exit_stack.push_async_callback(close)
        return session

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=tool["name"], description=tool["description"], input_schema=tool["parameters"])
            for tool in service.tools])

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        session = session_for(ctx)
        part = await anyio.to_thread.run_sync(session.call, params.name, params.arguments)
        return types.CallToolResult(content=[types.TextContent(type="text", text=part["text"])],
                                    structured_content=part.get("structured"), is_error=part["error"],
                                    _meta={META_KEY: part["meta"]} if part.get("meta") else None)

    async def discover(ctx, params) -> types.DiscoverResult:
        # Sessions are what episodes hang on: advertise the handshake versions only, so that clients negotiating
        # ("auto") fall back to the initialize handshake, the session-based protocol.
        return types.DiscoverResult(supported_versions=list(HANDSHAKE_PROTOCOL_VERSIONS),
                                    capabilities=server.get_capabilities(), instructions=INSTRUCTIONS)

    @asynccontextmanager
    async def lifespan(_server) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {}
        finally:  # the server stops: every episode still open is closed
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(service.close_all)

    from ptb_gym.recording import _ptb_gym_version

    server = Server("ptb-gym", version=_ptb_gym_version(), title=f"ptb-gym {service.env_id}",
                    instructions=INSTRUCTIONS, lifespan=lifespan, on_list_tools=list_tools, on_call_tool=call_tool)
    if per_connection:  # over stdio the process is the session: either era serves it (and a probe fixes the era)
        server.add_request_handler("server/discover", types.RequestParams, discover)
    return server


async def run_stdio(service: EpisodeService) -> None:
    from mcp.server.stdio import stdio_server

    server = build_server(service, per_connection=False)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def run_http(service: EpisodeService, port: int, *, idle_timeout: float | None) -> None:
    """Streamable HTTP on 127.0.0.1 only (DNS-rebinding protection on), until interrupted."""
    import uvicorn

    server = build_server(service, per_connection=True)
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, host="127.0.0.1",
                                     session_idle_timeout=idle_timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.set_inheritable(True)
    host, bound = sock.getsockname()
    print(f"ptb-gym serve: {service.env_id} over MCP streamable HTTP at http://{host}:{bound}{MCP_PATH}",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
