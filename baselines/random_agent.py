"""A random agent: random *valid* tool calls, the floor every learning agent must beat.

It draws a tool uniformly from the env's schemas and fills each argument with a random value of the right
type from a small pool of plausible values (paths that exist, short commands), so its episodes exercise the
tools rather than the action parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PATHS = ["TASK.md", "data/train.jsonl", "data/dev.jsonl", "base_model", "final_model", ".", "notes.txt", "logs"]
COMMANDS = ["ls", "head -2 data/train.jsonl", "wc -l data/*.jsonl", "python -c 'print(1+1)'", "cat TASK.md"]
JOBS = ["job-1", "job-2"]


@dataclass
class RandomAgent:
    seed: int = 0
    max_int: int = 20
    """Largest integer drawn (keeps random training runs and waits short)."""
    rng: np.random.Generator = field(init=False)

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.tools = info["tools"]

    def act(self, observation: str, info: dict[str, Any]) -> dict[str, Any]:
        schema = self.tools[self.rng.integers(len(self.tools))]["function"]
        arguments = {}
        for name, spec in schema["parameters"]["properties"].items():
            if name in schema["parameters"]["required"] or self.rng.random() < 0.5:
                arguments[name] = self._value(name, spec)
        return {"tool": schema["name"], "arguments": arguments}

    def _value(self, name: str, spec: dict[str, Any]) -> Any:
        pick = lambda options: options[self.rng.integers(len(options))]  # noqa: E731
        if "enum" in spec:
            return pick(spec["enum"])
        kind = spec.get("type")
        if kind == "integer":
            return int(self.rng.integers(1, self.max_int + 1))
        if kind == "number":
            return float(10 ** self.rng.uniform(-5, -2))
        if kind == "boolean":
            return bool(self.rng.random() < 0.5)
        if kind == "array":
            return [{"text": "random text"}]
        if name == "command":
            return pick(COMMANDS)
        if name == "job_id":
            return pick(JOBS)
        if name == "content":
            return "random content\n"
        return pick(PATHS)
