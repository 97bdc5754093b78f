"""GSM8K's scripted recipes (`ptb_gym.baselines.ScriptedAgent` plays them through the env's tools).

- `naive`: the train problems as plain `Question:`/`Answer:` text, their arithmetic then `#### N`, with the `train`
  tool's defaults (tuned for the embedded model, far too hot a learning rate for a real one).
- `reference`: the same problems as chat turns in the primary harness's format (the instruction, then worked steps
  and `ANSWER: N`), fine-tuned gently, as a real model needs.
"""

from __future__ import annotations

import json

from ptb_gym.envs.task import Recipe

REAL_MODEL_SCHEDULE = {"learning_rate": 2e-5, "max_steps": 300, "batch_size": 16, "max_length": 512}
"""A full fine-tune of a 0.3-4B model: a low learning rate, a few epochs' worth of steps over a few thousand items."""

PLAIN = '''\
import json
rows = [json.loads(line) for line in open("data/train.jsonl")]
with open("data/sft.jsonl", "w") as out:
    for r in rows:
        out.write(json.dumps({"prompt": f"Question: {r['question']}\\nAnswer:",
                              "completion": f" {r['solution']} #### {r['answer']}"}) + "\\n")
print(len(rows), "records")
'''

CHAT = '''\
import json
INSTRUCTION = %s
def steps(solution):
    return "\\n".join(f"{s.split('=')[0]} = {s.split('=')[1]}." for s in solution.split())
rows = [json.loads(line) for line in open("data/train.jsonl")]
with open("data/sft.jsonl", "w") as out:
    for r in rows:
        out.write(json.dumps({"messages": [
            {"role": "user", "content": INSTRUCTION.format(question=r["question"])},
            {"role": "assistant", "content": f"{steps(r['solution'])}\\nANSWER: {r['answer']}"}]}) + "\\n")
print(len(rows), "records")
'''


def recipes(instruction: str) -> dict[str, Recipe]:
    return {"naive": Recipe("naive", PLAIN, "data/sft.jsonl", {}),
            "reference": Recipe("reference", CHAT % json.dumps(instruction), "data/sft.jsonl", REAL_MODEL_SCHEDULE)}
