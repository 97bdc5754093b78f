"""BFCL's scripted recipes: `naive`, the train questions as plain `Request:`/`Call:` text with the `train` tool's
defaults; `reference`, the same as chat turns in the primary harness's format (BFCL's system prompt with the
function, the request, then the call as `[name(arg=value)]`), fine-tuned gently."""

from __future__ import annotations

import json

from ptb_gym.envs.gsm8k.recipes import REAL_MODEL_SCHEDULE
from ptb_gym.envs.task import Recipe

_CALL = '''\
def request(r):  # the user's turns (a few questions come with a system message of their own: it is not asked)
    return "\\n".join(m["content"] for m in r["messages"] if m["role"] == "user")


def written(call):
    return "[" + call["name"] + "(" + ", ".join(f"{k}={v!r}" for k, v in call["arguments"].items()) + ")]"
'''

PLAIN = '''\
import json
''' + _CALL + '''
rows = [json.loads(line) for line in open("data/train.jsonl")]
with open("data/sft.jsonl", "w") as out:
    for r in rows:
        out.write(json.dumps({"prompt": f"Functions: {json.dumps(r['functions'])}\\nRequest: {request(r)}\\nCall:",
                              "completion": " " + written(r["call"])}) + "\\n")
print(len(rows), "records")
'''

CHAT = '''\
import json
SYSTEM = %s
''' + _CALL + '''
rows = [json.loads(line) for line in open("data/train.jsonl")]
with open("data/sft.jsonl", "w") as out:
    for r in rows:
        system = SYSTEM.replace("<functions>", json.dumps(r["functions"]))
        out.write(json.dumps({"messages": [{"role": "system", "content": system},
                                           {"role": "user", "content": request(r)},
                                           {"role": "assistant", "content": written(r["call"])}]}) + "\\n")
print(len(rows), "records")
'''


def recipes(system: str) -> dict[str, Recipe]:
    """`system`: the primary harness's system prompt, with `<functions>` where the function's schema goes."""
    return {"naive": Recipe("naive", PLAIN, "data/sft.jsonl", {}),
            "reference": Recipe("reference", CHAT % json.dumps(system), "data/sft.jsonl", REAL_MODEL_SCHEDULE)}
