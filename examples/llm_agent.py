"""Wiring an LLM agent to the env through the OpenAI chat-completions format, with any OpenAI-compatible server.

    python examples/llm_agent.py                                    # offline: a stand-in "model" that emits tool calls
    python examples/llm_agent.py --base-url http://127.0.0.1:8000/v1 --model NAME   # a local vLLM or llama.cpp server
    OPENAI_API_KEY=... python examples/llm_agent.py --model NAME    # OpenAI's API (the default --base-url)

`info["tools"]` is already in OpenAI's function format, and `env.step` takes an entry of a response's
`tool_calls` as it is, so the loop is the usual one: the observation goes back as the tool message. Small open
models often write the call in the reply's text instead (a server started without a tool-call parser, or a model
that ignores it): `ptb_gym.parse_tool_call` reads it (a Hermes `<tool_call>` tag, JSON in a code fence or in
prose, a Python-style call), and when it cannot, its error, which says what was wrong and how to write a call, goes
back to the model as the next user message. A server that refuses the `tools` field (vLLM without
`--enable-auto-tool-choice`) gets the tools described in the system prompt instead. Plain `urllib`: no client
package needed.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import gymnasium as gym

import ptb_gym
from ptb_gym import ToolError, parse_tool_call

gym.register_envs(ptb_gym)

Message = dict[str, Any]
Model = Callable[[list[Message], list[dict]], Message]

SYSTEM = "You are an expert ML engineer."


def stand_in_model(messages: list[Message], tools: list[dict]) -> Message:
    """An offline stand-in for an LLM: looks around, then gives up by checking the budget and submitting."""
    turn = sum(1 for m in messages if m["role"] == "assistant")
    plan = [("list_files", {}), ("read_file", {"path": "data/dev.jsonl", "max_lines": 2}), ("budget", {}),
            ("submit", {"checkpoint": "base_model"})]
    name, arguments = plan[min(turn, len(plan) - 1)]
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call_{turn}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def chat_model(base_url: str, model: str, api_key: str | None = None, timeout_s: float = 600.0) -> Model:
    """A model behind an OpenAI-compatible `/chat/completions` endpoint (vLLM, llama.cpp server, OpenAI)."""
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    send_tools = True

    def post(body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.load(response)

    def complete(messages: list[Message], tools: list[dict]) -> Message:
        nonlocal send_tools
        reply = None
        if send_tools:
            try:
                reply = post({"model": model, "messages": messages, "tools": tools})
            except urllib.error.HTTPError as error:
                if error.code != 400:
                    raise
                # A server without a tool-call parser refuses `tools`: describe them in the prompt, read the text.
                print(f"(the server refused the tools field: {error.read()[:200].decode(errors='replace')}; "
                      "describing the tools in the system prompt instead)")
                send_tools = False
        if reply is None:
            reply = post({"model": model, "messages": tools_in_prompt(messages, tools)})
        message = reply["choices"][0]["message"]
        return {"role": "assistant", "content": message.get("content"),
                **({"tool_calls": message["tool_calls"]} if message.get("tool_calls") else {})}

    return complete


def tools_in_prompt(messages: list[Message], tools: list[dict]) -> list[Message]:
    """The messages with the tools described in the system message, as Hermes-style chat templates do."""
    described = (f"\n\nYou can call these tools:\n<tools>\n{json.dumps(tools)}\n</tools>\nTo call one, reply with "
                 '<tool_call>{"name": <tool name>, "arguments": <arguments object>}</tool_call>, one call per reply.')
    return [{**messages[0], "content": messages[0]["content"] + described}, *messages[1:]]


def main(complete: Model = stand_in_model, max_turns: int = 50, env_id: str = "PTB/math-v0",
         **options: Any) -> dict[str, Any]:
    env = gym.make(env_id, **options)
    observation, info = env.reset(seed=0)
    tools = info["tools"]
    messages: list[Message] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": observation}]
    for _ in range(max_turns):
        reply = complete(messages, tools)
        messages.append(reply)
        calls = reply.get("tool_calls") or []
        if calls:  # structured tool calls: the first runs, each gets its tool message
            action, note = calls[0], ""
            name = calls[0]["function"]["name"]
        else:  # the call is in the text, or the reply is unreadable: then the parser's error is the answer
            try:
                parsed = parse_tool_call(reply.get("content"), tools)
            except ToolError as error:
                messages.append({"role": "user", "content": str(error)})
                print(f"(no tool call read: {str(error).split('. Send')[0]})")
                continue
            action, name = parsed.action, parsed.action["tool"]
            note = f"\n\n(Only the first of your {parsed.ignored + 1} calls ran: one per reply.)" * bool(parsed.ignored)
        observation, reward, terminated, truncated, info = env.step(action)
        if calls:
            messages.append({"role": "tool", "tool_call_id": calls[0].get("id", "call_0"), "content": observation})
            messages += [{"role": "tool", "tool_call_id": c.get("id", f"call_{i}"), "content": "Not run: one tool "
                          "call per step."} for i, c in enumerate(calls[1:], 1)]
        else:
            messages.append({"role": "user", "content": observation + note})
        print(f"{name}: {observation.splitlines()[0] if observation else ''}")
        if terminated or truncated:
            print(f"reward {reward:+.3f}")
            break
    env.close()
    return info


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the model's name on the server (default: the offline stand-in)")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
                        help="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (default: "
                             "$OPENAI_BASE_URL, else OpenAI's)")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                        help="sent as a bearer token (default: $OPENAI_API_KEY; local servers need none)")
    parser.add_argument("--max-turns", type=int, default=50)
    args = parser.parse_args()
    main(chat_model(args.base_url, args.model, args.api_key) if args.model else stand_in_model, args.max_turns)
