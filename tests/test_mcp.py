"""The MCP server (`ptb-gym serve --mcp`), driven by the `mcp` SDK's own client over stdio and streamable HTTP."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import gymnasium as gym
import pytest

import ptb_gym

pytest.importorskip("mcp")

from mcp.client import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

gym.register_envs(ptb_gym)

ENV_ID = "PTB/math-v0"
SMALL = {"train_size": 50, "dev_size": 8, "test_size": 8, "device": "cpu"}
REPO = Path(__file__).resolve().parents[1]


def serve_args(tmp_path: Path, *extra: str) -> list[str]:
    options = [item for key, value in {**SMALL, "workdir": str(tmp_path / "episodes")}.items()
               for item in ("-o", f"{key}={value}")]
    return ["-m", "ptb_gym.cli", "serve", "--mcp", ENV_ID, *options, "--results-dir", str(tmp_path / "results"),
            "--record-dir", str(tmp_path / "records"), *extra]


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def open_session(stack, read, write) -> ClientSession:
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


def test_stdio_tools_calls_and_submit(tmp_path):
    env = gym.make(ENV_ID, **SMALL, workdir=str(tmp_path / "reference"))
    try:
        _, info = env.reset(seed=0)
        expected = {tool["function"]["name"]: tool["function"] for tool in info["tools"]}
    finally:
        env.close()
    params = StdioServerParameters(command=sys.executable, args=serve_args(tmp_path), cwd=str(REPO),
                                   env={**os.environ, "PYTHONPATH": str(REPO)})

    async def main():
        async with Client(params) as session:  # "auto": the 2026-07-28 protocol over stdio
            listed = (await session.list_tools()).tools
            assert [tool.name for tool in listed] == list(expected)
            for tool in listed:
                assert tool.input_schema == expected[tool.name]["parameters"]
                assert tool.description == expected[tool.name]["description"]

            files = await session.call_tool("list_files", {})
            assert not files.is_error and "TASK.md" in text_of(files) and "base_model" in text_of(files)
            workspace = Path(files.meta["ptb-gym/episode"]["workspace"])
            assert workspace.is_dir() and (workspace / "TASK.md").is_file()
            task = await session.call_tool("read_file", {"path": "TASK.md"})
            assert "submit" in text_of(task)
            wrote = await session.call_tool("write_file", {"path": "notes.txt", "content": "hello from MCP\n"})
            assert not wrote.is_error
            assert "hello from MCP" in text_of(await session.call_tool("read_file", {"path": "notes.txt"}))
            # an agent's mistake is the call's error, and the episode goes on
            bad = await session.call_tool("read_file", {"path": "../etc/passwd"})
            assert bad.is_error and "Error" in text_of(bad)
            unknown = await session.call_tool("no_such_tool", {})
            assert unknown.is_error and "Unknown tool" in text_of(unknown)
            copied = await session.call_tool("run", {"command": "cp -r base_model final_model && ls final_model"})
            assert not copied.is_error and "config.json" in text_of(copied), text_of(copied)

            final = await session.call_tool("submit", {"checkpoint": "final_model"})
            assert not final.is_error, text_of(final)
            assert "Episode over." in text_of(final)
            scores = final.structured_content
            assert scores["terminated"] and scores["submitted"] and scores["failure"] is None, scores
            assert set(scores["scores"]) >= {"zero_shot_strict"} and isinstance(scores["reward"], float)
            after = await session.call_tool("list_files", {})
            assert after.is_error and "over" in text_of(after)
            return scores, workspace

    scores, workspace = anyio.run(main)
    results = list((tmp_path / "results").glob("*.result.json"))
    assert len(results) == 1
    saved = json.loads(results[0].read_text())
    assert saved["reward"] == scores["reward"] and saved["uplift"] == scores["uplift"]
    assert saved["scores"] == scores["scores"] and saved["env_id"] == ENV_ID
    assert Path(scores["results_file"]) == results[0]
    recording = ptb_gym.read_episode(saved["recording"])
    assert recording.complete and len(recording.steps) == 8 and recording.footer["reward"] == scores["reward"]
    assert results[0].name == Path(saved["recording"]).stem + ".result.json"
    assert not workspace.exists()  # the client went away: the server closed the episode and exited


def _listening_address(port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, local_port = local.split(":")
        if int(local_port, 16) == port and state == "0A":
            return ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
    return "not listening"


def test_http_sessions_get_their_own_episodes(tmp_path):
    server = subprocess.Popen([sys.executable, *serve_args(tmp_path, "--http", "--port", "0")], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    try:
        url, deadline, seen = None, time.monotonic() + 30, []
        while url is None and time.monotonic() < deadline and server.poll() is None:
            if select.select([server.stderr], [], [], 1)[0]:
                line = server.stderr.readline()
                seen.append(line)
                if " at http://" in line:
                    url = line.rsplit(" at ", 1)[1].strip()
        assert url, "".join(seen)
        drain = threading.Thread(target=lambda: seen.extend(server.stderr), daemon=True)  # never a full pipe
        drain.start()
        port = int(url.split(":")[2].split("/")[0])
        assert url.startswith("http://127.0.0.1:") and _listening_address(port) == "127.0.0.1"

        async def main():
            from contextlib import AsyncExitStack

            async with AsyncExitStack() as stack:
                a = await open_session(stack, *await stack.enter_async_context(streamable_http_client(url)))
                b = await stack.enter_async_context(Client(url))  # "auto": probes, falls back to the handshake
                assert b.protocol_version != "2026-07-28"
                assert [t.name for t in (await a.list_tools()).tools] == [t.name for t in (await b.list_tools()).tools]
                first_a, first_b = await a.call_tool("list_files", {}), await b.call_tool("list_files", {})
                wa = Path(first_a.meta["ptb-gym/episode"]["workspace"])
                wb = Path(first_b.meta["ptb-gym/episode"]["workspace"])
                assert wa != wb and wa.is_dir() and wb.is_dir()
                async with anyio.create_task_group() as group:  # concurrent calls, one per session
                    group.start_soon(a.call_tool, "write_file", {"path": "only_a.txt", "content": "a"})
                    group.start_soon(b.call_tool, "write_file", {"path": "only_b.txt", "content": "b"})
                listed_a = text_of(await a.call_tool("list_files", {}))
                listed_b = text_of(await b.call_tool("list_files", {}))
                assert "only_a.txt" in listed_a and "only_b.txt" not in listed_a
                assert "only_b.txt" in listed_b and "only_a.txt" not in listed_b
            async with Client(url, mode="2026-07-28") as stateless:  # no session, so no episode: refused
                with pytest.raises(MCPError, match="one episode per MCP session"):
                    await stateless.call_tool("list_files", {})
            deadline = time.monotonic() + 15  # the sessions ended (the client's DELETE): their episodes are closed
            while (wa.exists() or wb.exists()) and time.monotonic() < deadline:
                await anyio.sleep(0.2)
            assert not wa.exists() and not wb.exists()

            # the server stops while a session is open: its episode is closed too
            stack = AsyncExitStack()
            c = await open_session(stack, *await stack.enter_async_context(streamable_http_client(url)))
            wc = Path((await c.call_tool("list_files", {})).meta["ptb-gym/episode"]["workspace"])
            assert wc.is_dir()
            server.send_signal(signal.SIGINT)
            await anyio.to_thread.run_sync(server.wait, 30)
            assert not wc.exists()
            with anyio.move_on_after(10):
                try:
                    await stack.aclose()
                except BaseException:  # noqa: BLE001 - the server is gone: the client's goodbye fails
                    pass

        anyio.run(main)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0, "".join(seen)


def test_missing_sdk_names_the_extra():
    hide_mcp = "import sys; sys.modules['mcp'] = None; from ptb_gym.cli import main; sys.exit(main(['serve', '--mcp']))"
    done = subprocess.run([sys.executable, "-c", hide_mcp], check=False, cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode != 0 and "pip install 'ptb-gym[mcp]'" in done.stderr
