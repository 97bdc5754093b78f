"""The code task's scripted recipes, played through the env's own tools by `ptb_gym.baselines.ScriptedAgent`.

`reference` defines what an uplift of 1 means. The ladder, from the obvious to the strong:

- `naive`: the train records that come with a `canonical_solution` (a quarter of the kinds), prompt then body,
  with the `train` tool's defaults.
- `tuned`: the same data with a better schedule (more steps, a higher learning rate).
- `synth`: a body written by the script for every train record, from its docstring alone: one template per
  kind of docstring, filled in with the names and constants a regular expression reads from it; then the
  `train` tool's defaults.
- `reference`: the synthesised data with the tuned schedule.

Beside the ladder, `chat` shows how much the harness decides: the synthesised bodies as chat turns in the
`instruct` harness's format (the request, then the function in a ```python block), with the tuned schedule.
It is the one recipe that scores under the chat harnesses, and it ranks low on the primary one.
"""

from __future__ import annotations

from ptb_gym.envs.code import INSTRUCTION
from ptb_gym.envs.task import TUNED_SCHEDULE as TUNED
from ptb_gym.envs.task import Recipe

# Turns data/train.jsonl into training records in an evaluation format (run in the sandbox). `body` is the
# expression that gives a record's body (None: the record is left out), `record` the record made of it.
MAKE_DATA = '''\
import json, re

INSTRUCTION = {instruction!r}

def as_chat(prompt, body):
    function = prompt.split("\\n")[0] + "\\n" + body
    return {{"messages": [{{"role": "user", "content": INSTRUCTION.format(prompt=prompt)}},
                          {{"role": "assistant", "content": "```python\\n" + function + "```"}}]}}

def docstring(prompt):
    text = prompt.split('"""')[1].split(">>>")[0]
    return " ".join(text.split())

def solve(prompt):
    d = docstring(prompt)
    for pattern, write in TEMPLATES:
        m = re.fullmatch(pattern, d)
        if m:
            return "".join("    " + line + "\\n" for line in write(*m.groups()).split("\\n"))
    return None

def fizz(w12, n, a, b, w1, w2):
    return (f"if {{n}} % {{a}} == 0 and {{n}} % {{b}} == 0:\\n    return '{{w12}}'\\nif {{n}} % {{a}} == 0:\\n"
            f"    return '{{w1}}'\\nif {{n}} % {{b}} == 0:\\n    return '{{w2}}'\\nreturn str({{n}})")

OPS = {{"greater than": ">", "at least": ">=", "less than": "<", "at most": "<=", "divisible": "==",
       "not divisible": "!="}}
TEMPLATES = [
    (r"Return the sum of the elements of (\\w+) that are (greater than|at least) (-?\\d+)\\.",
     lambda xs, op, k: f"return sum(v for v in {{xs}} if v {{OPS[op]}} {{k}})"),
    (r"Return the number of times the character '(.)' occurs in (\\w+)\\.",
     lambda c, s: f"return {{s}}.count('{{c}}')"),
    (r"Return the words of (\\w+) \\(separated by spaces\\) in reverse order, joined by '(.*)'\\.",
     lambda s, sep: f"return '{{sep}}'.join(reversed({{s}}.split()))"),
    (r"Return the (largest|smallest) element of (\\w+), or (-?\\d+) if \\w+ is empty\\.",
     lambda which, xs, d: f"if not {{xs}}:\\n    return {{d}}\\n"
                          f"return {{'max' if which == 'largest' else 'min'}}({{xs}})"),
    (r"Return True if (\\w+) reads the same forwards and backwards when case is ignored, else False\\.",
     lambda s: f"t = {{s}}.lower()\\nreturn t == t[::-1]"),
    (r"Return True if (\\w+) reads the same forwards and backwards \\(case matters\\), else False\\.",
     lambda s: f"return {{s}} == {{s}}[::-1]"),
    (r"Return '(\\w+)' if (\\w+) is divisible by both (\\d+) and (\\d+), '(\\w+)' if it is divisible by \\d+, "
     r"'(\\w+)' if it is divisible by \\d+, and str\\(\\w+\\) otherwise\\.", fizz),
    (r"Return the running totals of (\\w+)(?:, starting from (\\d+))?: .*",
     lambda xs, start: f"out = []\\ntotal = {{start or 0}}\\nfor v in {{xs}}:\\n    total += v\\n"
                       "    out.append(total)\\nreturn out"),
    (r"Return the elements of (\\w+) that are (divisible|not divisible) by (\\d+), in their original order\\.",
     lambda xs, op, k: f"return [v for v in {{xs}} if v % {{k}} {{OPS[op]}} 0]"),
    (r"Return (\\w+) clamped to the range from (-?\\d+) to (-?\\d+) \\(inclusive\\)\\.",
     lambda x, lo, hi: f"return max({{lo}}, min({{x}}, {{hi}}))"),
    (r"Return term (\\w+) \\(counting from 0\\) of the sequence that starts (-?\\d+), (-?\\d+) .*",
     lambda n, a, b: f"a, b = {{a}}, {{b}}\\nfor _ in range({{n}}):\\n    a, b = b, a + b\\nreturn a"),
    (r"Return the number of vowels \\(([a-z, ]+?)(?: and ([a-z]))?\\) in (\\w+), ignoring case\\.",
     lambda listed, last, s: "return sum(1 for ch in " + s + ".lower() if ch in '"
                             + "".join(re.findall(r"[a-z]", listed)) + (last or "") + "')"),
    (r"Return the words of (\\w+) \\(separated by spaces\\) with their first letter in upper case, joined by '(.*)'\\.",
     lambda s, sep: f"return '{{sep}}'.join(w[0].upper() + w[1:] for w in {{s}}.split())"),
    (r"Return the elements of (\\w+) without repeats, keeping the first occurrence of each, in order\\.",
     lambda xs: f"out = []\\nfor v in {{xs}}:\\n    if v not in out:\\n        out.append(v)\\nreturn out"),
    (r"Return the elements of (\\w+) in order, keeping at most (\\d+) occurrences of each value\\.",
     lambda xs, k: f"out = []\\nfor v in {{xs}}:\\n    if out.count(v) < {{k}}:\\n        out.append(v)\\nreturn out"),
    (r"Return the sum of the decimal digits of the non-negative integer (\\w+)(?:, multiplied by (\\d+))?\\.",
     lambda n, k: f"return {{k + ' * ' if k else ''}}sum(int(d) for d in str({{n}}))"),
    (r"Return a new list with each element of (\\w+) multiplied by (\\d+) and then (increased|decreased) by (\\d+)\\.",
     lambda xs, a, how, b: f"return [v * {{a}} {{'+' if how == 'increased' else '-'}} {{b}} for v in {{xs}}]"),
    (r"Return how many elements of (\\w+) are (less than|at most) (-?\\d+)\\.",
     lambda xs, op, k: f"return sum(1 for v in {{xs}} if v {{OPS[op]}} {{k}})"),
]

records = []
for line in open("data/train.jsonl"):
    item = json.loads(line)
    body = {body}
    if body is not None:
        records.append({record})
with open("data/sft.jsonl", "w") as out:
    out.writelines(json.dumps(r) + "\\n" for r in records)
print(len(records), "records; first:", records[0])
'''
_GIVEN, _SYNTHESISED = 'item.get("canonical_solution")', 'solve(item["prompt"]) or item.get("canonical_solution")'
_AS_PROMPT_COMPLETION, _AS_CHAT = '{"prompt": item["prompt"], "completion": body}', 'as_chat(item["prompt"], body)'
GIVEN = MAKE_DATA.format(instruction=INSTRUCTION, body=_GIVEN, record=_AS_PROMPT_COMPLETION)
SYNTHESISED = MAKE_DATA.format(instruction=INSTRUCTION, body=_SYNTHESISED, record=_AS_PROMPT_COMPLETION)
SYNTHESISED_CHAT = MAKE_DATA.format(instruction=INSTRUCTION, body=_SYNTHESISED, record=_AS_CHAT)

RECIPES = {
    "code-v0": {
        "naive": Recipe("naive", GIVEN, "data/sft.jsonl", {}),
        "tuned": Recipe("tuned", GIVEN, "data/sft.jsonl", TUNED),
        "synth": Recipe("synth", SYNTHESISED, "data/sft.jsonl", {}),
        "reference": Recipe("reference", SYNTHESISED, "data/sft.jsonl", TUNED),
        "chat": Recipe("chat", SYNTHESISED_CHAT, "data/sft.jsonl", TUNED),
    },
}
