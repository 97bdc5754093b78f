"""The math task's scripted recipes, played through the env's own tools by `ptb_gym.baselines.ScriptedAgent`.

`reference` defines what an uplift of 1 means (its calibrated score is the reward's reference): supervised
fine-tuning of all weights on the train split written in the evaluation format with the arithmetic steps, 800
steps. `naive` is the obvious recipe: the same format with the final answers only, and the `train` tool's defaults.
"""

from __future__ import annotations

from ptb_gym.envs.task import Recipe

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

RECIPES = {
    "reference": Recipe("reference", MAKE_DATA.format(with_steps=True), "data/sft.jsonl",
                        {"max_steps": 800, "learning_rate": 1e-3, "batch_size": 16}),
    "naive": Recipe("naive", MAKE_DATA.format(with_steps=False), "data/sft.jsonl", {}),
}
