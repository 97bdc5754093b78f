"""The tools task's scripted recipes, played through the env's own tools by `ptb_gym.baselines.ScriptedAgent`.

`reference` defines what an uplift of 1 means. The ladder, from the obvious to the strong:

- `naive`: the train split as it comes (its prompt, then the call as JSON), with the `train` tool's defaults.
- `tuned`: the same data with a better schedule (more steps, a higher learning rate).
- `synth`: the train split asks for a third of the functions only, so the script makes items for every function
  of data/functions.json: the requests of train and dev records become templates (their argument values
  replaced by slots), filled with other values of the same parameter, and offered beside two functions drawn
  from the whole file, in the prompt's format; with the train split, and the `train` tool's defaults.
- `reference`: the synthesised data with the tuned schedule.

tools-v1 plays the same ladder with a longer tuned schedule (1,200 steps of 16 at 1e-3).
"""

from __future__ import annotations

from ptb_gym.envs.task import TUNED_SCHEDULE as TUNED
from ptb_gym.envs.task import Recipe

# Writes prompt/completion records in the evaluation format (run in the sandbox); SYNTHESISE per function.
MAKE_DATA = '''\
import collections, json, random, re

SYNTHESISE = {synthesise}
rng = random.Random(0)
train = [json.loads(line) for line in open("data/train.jsonl")]
dev = [json.loads(line) for line in open("data/dev.jsonl")]
records = [{{"prompt": r["prompt"], "completion": " " + json.dumps(r["call"])}} for r in train]

def signature(f):
    params = []
    for name, p in f["parameters"]["properties"].items():
        kind = " | ".join(f'"{{v}}"' for v in p["enum"]) if "enum" in p else p["type"]
        params.append(name + ("" if name in f["parameters"]["required"] else "?") + ": " + kind)
    return f["name"] + "(" + ", ".join(params) + ")"

schemas = {{f["name"]: f for f in json.load(open("data/functions.json"))}}
lines = {{name: "- " + signature(f) + ": " + f["description"] for name, f in schemas.items()}}
assert all(line in train[0]["prompt"] for line in map(lines.get, train[0]["functions"])), "prompt format changed"

values = collections.defaultdict(set)  # parameter name: values seen in any call
templates = collections.defaultdict(set)  # function: requests with slots for their arguments
for r in train + dev:
    arguments = r["call"]["arguments"]
    request = r["request"]
    for name, value in sorted(arguments.items(), key=lambda kv: -len(str(kv[1]))):
        values[name].add(value)
        spots = re.findall(r"(?<![\\w-])" + re.escape(str(value)) + r"(?![\\w-])", request)
        if len(spots) != 1:
            break
        request = re.sub(r"(?<![\\w-])" + re.escape(str(value)) + r"(?![\\w-])", "{{" + name + "}}", request)
    else:
        templates[r["call"]["name"]].add((request, tuple(sorted(arguments))))

for _ in range(SYNTHESISE):
    for name, f in schemas.items():
        if not templates[name]:
            continue
        request, given = rng.choice(sorted(templates[name]))
        arguments = {{}}
        for param in given:
            spec = f["parameters"]["properties"][param]
            pool = spec.get("enum") or sorted(values[param], key=str)
            if spec["type"] == "integer":
                seen = [v for v in values[param] if isinstance(v, int)]
                arguments[param] = rng.randint(min(seen), max(seen))
            else:
                arguments[param] = rng.choice(pool)
        text = request
        for param, value in arguments.items():
            text = text.replace("{{" + param + "}}", str(value))
        names = [name, *rng.sample([n for n in schemas if n != name], 2)]
        rng.shuffle(names)
        prompt = "Functions:\\n" + "\\n".join(lines[n] for n in names) + "\\nRequest: " + text + "\\nCall:"
        ordered = {{p: arguments[p] for p in f["parameters"]["properties"] if p in arguments}}
        records.append({{"prompt": prompt, "completion": " " + json.dumps({{"name": name, "arguments": ordered}})}})

rng.shuffle(records)
with open("data/sft.jsonl", "w") as out:
    out.writelines(json.dumps(r) + "\\n" for r in records)
print(len(records), "records,", sum(map(len, templates.values())), "templates; first:", records[0])
'''
GIVEN = MAKE_DATA.format(synthesise=0)
SYNTHESISED = MAKE_DATA.format(synthesise=120)


def ladder(tuned: dict) -> dict[str, Recipe]:
    return {
        "naive": Recipe("naive", GIVEN, "data/sft.jsonl", {}),
        "tuned": Recipe("tuned", GIVEN, "data/sft.jsonl", tuned),
        "synth": Recipe("synth", SYNTHESISED, "data/sft.jsonl", {}),
        "reference": Recipe("reference", SYNTHESISED, "data/sft.jsonl", tuned),
    }


RECIPES = {"tools-v0": ladder(TUNED), "tools-v1": ladder({**TUNED, "max_steps": 1200})}
