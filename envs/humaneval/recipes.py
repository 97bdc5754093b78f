"""HumanEval's scripted recipes: `naive`, the train problems that come with a solution as plain prompt-then-body
text with the `train` tool's defaults; `reference`, the same as chat turns in the primary harness's format (the
instruction, then the whole function in a ```python block), fine-tuned gently."""

from __future__ import annotations

import json

from ptb_gym.envs.gsm8k.recipes import REAL_MODEL_SCHEDULE
from ptb_gym.envs.task import Recipe

PLAIN = '''\
import json
rows = [json.loads(line) for line in open("data/train.jsonl")]
rows = [r for r in rows if "canonical_solution" in r]
with open("data/sft.jsonl", "w") as out:
    out.writelines(json.dumps({"prompt": r["prompt"], "completion": r["canonical_solution"]}) + "\\n" for r in rows)
print(len(rows), "records")
'''

CHAT = '''\
import json
INSTRUCTION = %s
rows = [json.loads(line) for line in open("data/train.jsonl")]
rows = [r for r in rows if "canonical_solution" in r]
with open("data/sft.jsonl", "w") as out:
    for r in rows:
        code = r["prompt"] + r["canonical_solution"]
        out.write(json.dumps({"messages": [
            {"role": "user", "content": INSTRUCTION.format(prompt=r["prompt"])},
            {"role": "assistant", "content": f"```python\\n{code}```"}]}) + "\\n")
print(len(rows), "records")
'''


def recipes(instruction: str) -> dict[str, Recipe]:
    return {"naive": Recipe("naive", PLAIN, "data/sft.jsonl", {}),
            "reference": Recipe("reference", CHAT % json.dumps(instruction), "data/sft.jsonl", REAL_MODEL_SCHEDULE)}
