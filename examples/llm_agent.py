"""Wiring an LLM agent with tool calling to the env, in the OpenAI chat-completions format.

    python examples/llm_agent.py                      # offline: a stand-in "model" that emits tool calls
    OPENAI_BASE_URL=... python examples/llm_agent.py --model NAME   # a real OpenAI-compatible endpoint

`info["tools"]` is already in OpenAI's function format, and `env.step` takes an entry of a response's
`tool_calls` as it is, so the loop is the usual one: the observation goes back as the tool message.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import gymnasium as gym

import ptb_gym

gym.register_envs(ptb_gym)

Message = dict[str, Any]


def stand_in_model(messages: list[Message], tools: list[dict]) -> Message:
    """An offline stand-in for an LLM: looks around, then gives up by checking the budget and submitting."""
    turn = sum(1 for m in messages if m["role"] == "assistant")
    plan = [("list_files", {}), ("read_file", {"path": "data/dev.jsonl", "max_lines": 2}), ("budget", {}),
            ("submit", {"checkpoint": "base_model"})]
    name, arguments = plan[min(turn, len(plan) - 1)]
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call_{turn}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def openai_model(model: str) -> Callable[[list[Message], list[dict]], Message]:
    from openai import OpenAI  # pip install openai

    client = OpenAI()

    def complete(messages: list[Message], tools: list[dict]) -> Message:
        message = client.chat.completions.create(model=model, messages=messages, tools=tools).choices[0].message
        return message.model_dump(exclude_none=True)

    return complete


def main(complete=stand_in_model, max_turns: int = 50, **options) -> dict[str, Any]:
    env = gym.make("PTB/math-v0", **options)
    observation, info = env.reset(seed=0)
    tools = info["tools"]
    messages: list[Message] = [{"role": "system", "content": "You are an expert ML engineer."},
                               {"role": "user", "content": observation}]
    for _ in range(max_turns):
        reply = complete(messages, tools)
        messages.append(reply)
        if not reply.get("tool_calls"):  # the model answered in prose: remind it to act
            messages.append({"role": "user", "content": "Act with one tool call."})
            continue
        call = reply["tool_calls"][0]  # one tool call per step
        observation, reward, terminated, truncated, info = env.step(call)
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": observation})
        print(f"{call['function']['name']}: {observation.splitlines()[0] if observation else ''}")
        if terminated or truncated:
            print(f"reward {reward:+.3f}")
            break
    env.close()
    return info


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model name on an OpenAI-compatible endpoint (default: offline stand-in)")
    args = parser.parse_args()
    main(openai_model(args.model) if args.model else stand_in_model)
