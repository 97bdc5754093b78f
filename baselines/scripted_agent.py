"""Scripted agents that play a post-training recipe through tool calls only.

`ScriptedAgent` plays the reference recipe of the embedded tier: supervised fine-tuning on the train split
with the arithmetic written out (chain of thought), then a dev evaluation and `submit`. `NaiveAgent` plays the
naive recipe: SFT on the final answers only, with the train tool's defaults. Run one with

    ptb-gym run PTB/math-v0 --agent scripted
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Turns data/train.jsonl into prompt/completion records in the evaluation format (run in the sandbox).
MAKE_DATA = '''\
import json
with_steps = {with_steps}
records = []
for line in open("data/train.jsonl"):
    item = json.loads(line)
    work = item["solution"] + " " if with_steps else ""
    records.append({{"prompt": f"Question: {{item['question']}}\\nAnswer:",
                    "completion": f" {{work}}#### {{item['answer']}}"}})
with open("data/sft.jsonl", "w") as out:
    out.writelines(json.dumps(r) + "\\n" for r in records)
print(len(records), "records; first:", records[0])
'''


@dataclass
class ScriptedAgent:
    """The reference recipe: chain-of-thought SFT, full fine-tuning."""

    with_steps: bool = True
    max_steps: int = 800
    learning_rate: float = 1e-3
    batch_size: int = 16
    wait_chunk_s: int = 20
    """Seconds per `wait` call, so that progress shows while training runs."""
    evaluate_on_dev: bool = True

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        self._plan = self._actions()
        self._last: dict[str, Any] = info

    def act(self, observation: str, info: dict[str, Any]) -> dict[str, Any]:
        self._last = info
        return next(self._plan)

    def _actions(self) -> Iterator[dict[str, Any]]:
        yield call("list_files")
        yield call("write_file", path="make_data.py", content=MAKE_DATA.format(with_steps=self.with_steps))
        yield call("run", command="python make_data.py")
        yield call("train", data="data/sft.jsonl", output_dir="final_model", max_steps=self.max_steps,
                   learning_rate=self.learning_rate, batch_size=self.batch_size)
        job_id = self._last["job"]["id"]
        while True:
            yield call("wait", job_id=job_id, timeout_s=self.wait_chunk_s)
            if self._last.get("job", {}).get("state") != "running":
                break
        if self.evaluate_on_dev:
            yield call("evaluate", checkpoint="final_model", limit=200)
        while True:  # submit until the env ends the episode (a failed submit says why and goes on)
            yield call("submit", checkpoint="final_model")


@dataclass
class NaiveAgent(ScriptedAgent):
    """The naive recipe: SFT on the final answers only, with the train tool's default hyperparameters."""

    with_steps: bool = False
    max_steps: int = 300


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}
