"""examples/llm_agent.py against an OpenAI-compatible server that, like a small local model, writes calls as text."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import SMALL
from tests.test_examples import load

# What the "model" writes, turn by turn: the forms small open models use, one malformed reply, then the submit.
REPLIES = [
    'I will look around first.\n<tool_call>\n{"name": "list_files", "arguments": {"path": "."}}\n</tool_call>',
    'Some dev items:\n```json\n{"name": "read_file", "parameters": {"path": "data/dev.jsonl", "max_lines": 2}}\n```',
    '<tool_call>{"name": "budget", "arguments": {}</tool_call>',  # a brace missing
    '<tool_call>{"name": "budget", "arguments": {}}</tool_call>',
    'Nothing to gain in this budget, so: submit(checkpoint="base_model")',
]
# vLLM's answer to a request with `tools` when it was started without a tool-call parser.
NO_TOOL_PARSER = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'


class FakeServer(ThreadingHTTPServer):
    def __init__(self, replies: list[str]):
        super().__init__(("127.0.0.1", 0), ChatCompletions)
        self.replies, self.requests = list(replies), []


class ChatCompletions(BaseHTTPRequestHandler):
    server: FakeServer

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        if self.path != "/v1/chat/completions":
            return self.answer(404, {"error": {"message": f"no route {self.path}"}})
        if "tools" in body:
            return self.answer(400, {"error": {"message": NO_TOOL_PARSER, "type": "BadRequestError"}})
        content = self.server.replies.pop(0) if self.server.replies else "I am done."
        self.answer(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"], "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})

    def answer(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    server = FakeServer(REPLIES)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_local_model_writing_text_tool_calls_plays_an_episode_to_its_scores(server, tmp_path):
    agent = load("llm_agent")
    model = agent.chat_model(f"http://127.0.0.1:{server.server_port}/v1", "tiny-local-model")
    info = agent.main(model, max_turns=10, workdir=str(tmp_path), **{**SMALL, "test_size": 8})
    assert info["submitted"] and info["checkpoint"] == "base_model" and info["failure"] is None
    assert info["scores"] and "uplift" in info

    first, *chats = server.requests
    assert "tools" in first and all("tools" not in chat for chat in chats)  # refused once, then described
    assert all(chat["model"] == "tiny-local-model" for chat in chats)
    assert "<tools>" in chats[0]["messages"][0]["content"] and '"list_files"' in chats[0]["messages"][0]["content"]
    # Each parsed call ran: its observation came back as the next user message.
    assert "data/" in chats[1]["messages"][-1]["content"]  # list_files' listing
    assert "\"question\"" in chats[2]["messages"][-1]["content"]  # read_file's dev items
    # The malformed reply's error reached the model, saying what was wrong and how to write a call; its retry ran.
    error = chats[3]["messages"][-1]
    assert error["role"] == "user" and error["content"].startswith("No tool call could be read from your reply")
    assert "not valid JSON" in error["content"] and '<tool_call>{"name": "list_files"' in error["content"]
    assert "budget" in chats[4]["messages"][-1]["content"].lower()
    assert len(chats) == len(REPLIES) and not server.replies
