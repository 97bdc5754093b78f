"""The math tasks' scripted recipes, played through the env's own tools by `ptb_gym.baselines.ScriptedAgent`.

`reference` defines what an uplift of 1 means (its calibrated score is the reward's reference). The others make
the ladder a reward must tell apart, from the obvious to the strong:

- `naive`: the train split as it comes, in the evaluation format, with the `train` tool's defaults.
- `tuned`: the same data with a better schedule (more steps, a higher learning rate).
- `synth` (v1): working written for every problem by a solver, since v1's data has answers only: the question's
  numbers searched for the arithmetic that gives the answer (each number used once, or one of them twice), as
  GSM8K's `12+7=19` steps; then the `train` tool's defaults.
- `reference`: v0 trains on its given working, v1 on the solver's; both with the tuned schedule.
"""

from __future__ import annotations

from ptb_gym.envs.task import TUNED_SCHEDULE as TUNED
from ptb_gym.envs.task import Recipe

# Turns data/train.jsonl into prompt/completion records in the evaluation format (run in the sandbox). `work`
# is the expression that gives a record's working ("" for answers only).
MAKE_DATA = '''\
import itertools, json, re

def solve(question, answer):
    numbers = [int(n) for n in re.findall(r"\\d+", question)]
    for extra in [[]] + [[n] for n in dict.fromkeys(numbers)]:
        steps = search(numbers + extra, answer, [])
        if steps is not None:
            return " ".join(steps)
    return None

def apply(a, op, b):
    if op == "+": return a + b
    if op == "-": return a - b if a >= b else None
    if op == "*": return a * b
    return a // b if b and a % b == 0 else None

def search(values, answer, steps):
    if len(values) == 1:
        return steps if values[0] == answer else None
    for i, j in itertools.permutations(range(len(values)), 2):
        rest = [v for k, v in enumerate(values) if k not in (i, j)]
        for op in "+-*/":
            c = apply(values[i], op, values[j])
            if c is None or (not rest and c != answer):
                continue
            found = search(rest + [c], answer, steps + [f"{{values[i]}}{{op}}{{values[j]}}={{c}}"])
            if found is not None:
                return found
    return None

records = []
for line in open("data/train.jsonl"):
    item = json.loads(line)
    work = {work}
    if work is None:
        continue
    records.append({{"prompt": f"Question: {{item['question']}}\\nAnswer:",
                    "completion": f" {{work + ' ' if work else ''}}#### {{item['answer']}}"}})
with open("data/sft.jsonl", "w") as out:
    out.writelines(json.dumps(r) + "\\n" for r in records)
print(len(records), "records; first:", records[0])
'''
ANSWERS_ONLY = MAKE_DATA.format(work='""')
GIVEN_WORK = MAKE_DATA.format(work='item["solution"]')
SOLVED_WORK = MAKE_DATA.format(work='solve(item["question"], int(item["answer"]))')

RECIPES = {
    "math-v0": {
        "reference": Recipe("reference", GIVEN_WORK, "data/sft.jsonl", TUNED),
        "naive": Recipe("naive", ANSWERS_ONLY, "data/sft.jsonl", {}),
    },
    "math-v1": {
        "naive": Recipe("naive", ANSWERS_ONLY, "data/sft.jsonl", {}),
        "tuned": Recipe("tuned", ANSWERS_ONLY, "data/sft.jsonl", TUNED),
        "synth": Recipe("synth", SOLVED_WORK, "data/sft.jsonl", {}),
        "reference": Recipe("reference", SOLVED_WORK, "data/sft.jsonl", TUNED),
    },
}
RECIPES["math-v2"] = RECIPES["math-v1"]  # the same task on another base model
