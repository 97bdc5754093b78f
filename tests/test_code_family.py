"""PTB/code-v0: its problems, public records, harnesses, recipes and corpus, and the sandbox that scores it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ptb_gym.envs.code import TASK, corpus, problems

import ptb_gym
from ptb_gym import execution, sandbox

needs_bwrap = pytest.mark.skipif(not sandbox.bubblewrap_works(), reason="bubblewrap does not work here")
TRAIN = TASK.records("train", 5000)
HIDDEN = {p.prompt: p for p in problems.split("train")}


# ---- data -----------------------------------------------------------------------------------------------------
def test_problems_are_deterministic_and_splits_disjoint():
    assert problems.generate(200, seed=5) == problems.generate(200, seed=5)
    assert problems.generate(50, seed=5) == problems.generate(200, seed=5)[:50]
    assert problems.generate(50, seed=6) != problems.generate(50, seed=5)
    assert problems.split("train", 300) == problems.split("train")[:300]
    train, dev = {p.prompt for p in problems.split("train")}, {p.prompt for p in problems.split("dev")}
    assert len(train) == 5000 and len(dev) == 200 and not train & dev
    for seed in (None, 12345):
        test = problems.split("test", 1000, seed)
        assert len({p.prompt for p in test}) == 1000 and not {p.prompt for p in test} & (train | dev)
    assert problems.split("test", 50, 1) != problems.split("test", 50, 2)
    assert {p.kind for p in problems.split("train")} == set(problems.KINDS)
    with pytest.raises(ValueError, match="only the test split"):
        problems.split("train", 5, seed=3)


def test_public_records_hold_no_hidden_tests():
    for split, records in (("train", TRAIN), ("dev", TASK.records("dev", 200))):
        full = problems.split(split)
        for record, problem in zip(records, full, strict=True):
            assert set(record) <= {"prompt", "entry_point", "visible_tests", "canonical_solution"}
            text = json.dumps(record)
            assert not any(test in text for test in problem.tests)
            assert len(record["visible_tests"]) == 2 and record["prompt"] == problem.prompt
            assert ("canonical_solution" in record) == (split == "train" and problem.kind in problems.SOLVED_KINDS)
    share = sum("canonical_solution" in r for r in TRAIN) / len(TRAIN)
    assert 0.15 < share < 0.35
    test = TASK.records("test", 5, seed=9)
    assert all(len(r["tests"]) == 5 and r["canonical_solution"] and r["kind"] for r in test)


def test_corpus_is_code_and_never_a_problem():
    docs = corpus.documents(random.Random(0), 3000)
    assert docs == corpus.documents(random.Random(0), 3000)
    assert all(0 < len(d) <= corpus.MAX_CHARS for d in docs)
    for forbidden in ("Question", "Answer", "####", ">>>", '"""Return'):  # every prompt's docstring starts so
        assert not any(forbidden in d for d in docs), forbidden
    assert sum("def " in d for d in docs) > 1000 and sum("print(" in d for d in docs) > 1000


def test_long_docstrings_close_on_a_line_of_their_own_and_change_nothing_else():
    plain = corpus.documents(random.Random(0), 3000)
    long = corpus.documents(random.Random(0), 3000, long_docstrings=True)
    closing = re.compile(r'\n    """\n    \S')  # a docstring's own closing line, then the body, as after a prompt
    assert not any(closing.search(d) for d in plain) and sum(bool(closing.search(d)) for d in long) > 300
    assert len(plain) == len(long) and sum(a == b for a, b in zip(plain, long)) > 1000  # the same draws otherwise
    for forbidden in ("Question", "Answer", "####", ">>>", '"""Return'):
        assert not any(forbidden in d for d in long), forbidden


def test_related_functions_share_one_body_and_print_what_they_compute():
    plain = corpus.documents(random.Random(0), 2000, long_docstrings=True)
    assert corpus.documents(random.Random(0), 2000, long_docstrings=True, related=False) == plain
    rng = random.Random(1)
    for _ in range(200):
        snippet = corpus._related(rng)
        functions = snippet.split("\n\n\n")
        assert 2 <= len(functions) <= 3 and not any(f in snippet for f in ("Question", "Answer", "####", ">>>"))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(snippet, {})  # our own generated code
        said = [line.rsplit("  # ", 1)[1] for line in snippet.splitlines() if line.startswith("print(")]
        assert printed.getvalue().splitlines() == said  # the comments are what the code prints
        # one body, renamed: with each function's names and constants blanked out, the bodies are the same
        shapes = {re.sub(r"-?\b\w+\b|'[^']*'", "_", f.split('"""')[-1].split("\n\nprint(")[0]) for f in functions}
        assert len(shapes) == 1, functions


# ---- scoring --------------------------------------------------------------------------------------------------
BAD_BODIES = (
    "    pass\n",
    "    return 0\n",
    "    import os; os._exit(0)\n",
    "    raise SystemExit(0)\n",
    "    class Anything:\n        def __eq__(self, other):\n            return True\n    return Anything()\n",
    "    while True:\n        pass\n",
)


def test_canonical_solutions_pass_and_bad_completions_fail():
    items = TASK.records("test", 64, seed=7)
    harness = TASK.harness("completion")
    assert TASK.score(items, [item["canonical_solution"] for item in items], harness) == [1.0] * 64
    few = items[:len(BAD_BODIES)]
    started = time.monotonic()
    assert TASK.score(few, list(BAD_BODIES), harness) == [0.0] * len(few)
    assert time.monotonic() - started < 15
    # top-level code after the body cannot end the program early or fake the comparison either
    assert TASK.score(items[:1], ["    return None\nimport os\nos._exit(0)\n"], harness) == [0.0]


def test_harnesses_prompts_and_extraction():
    item = TASK.records("test", 1, seed=3)[0]
    function = item["prompt"] + item["canonical_solution"]
    assert TASK.prompt(item, TASK.harness("completion")) == item["prompt"]
    few = TASK.prompt(item, TASK.harness("few_shot"))
    assert few.endswith(item["prompt"]) and few.count("def ") == 3 and '"""' in few
    chat = TASK.prompt(item, TASK.harness("instruct"))
    assert chat[0]["role"] == "user" and item["prompt"] in chat[0]["content"]
    fenced, bare = f"Here it is.\n```python\n{function}```\nDone.", item["canonical_solution"]
    assert TASK.score([item] * 2, [fenced, bare], TASK.harness("instruct")) == [1.0, 0.0]
    assert TASK.score([item] * 3, [fenced, bare, function], TASK.harness("instruct_lenient")) == [1.0] * 3
    dev = TASK.records("dev", 2)  # no hidden tests there: scored on the visible ones
    assert TASK.score(dev, ["    return None\n"] * 2, TASK.harness("completion")) == [0.0, 0.0]


def test_check_asserts_compares_outside():
    source = "def f(x):\n    return (x, x + 1)\n"
    assert execution.check_asserts([source, source], [["assert f(1) == (1, 2)"], ["assert f(1) == (1, 3)"]]) == [
        True, False]
    with pytest.raises(ValueError, match="assert EXPR == VALUE"):
        execution.check_asserts([source], [["assert f(1)"]])


# ---- the sandbox ----------------------------------------------------------------------------------------------
@needs_bwrap
def test_sandbox_refuses_network_and_file_escapes(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    repo = Path(ptb_gym.__file__).resolve().parents[1]
    allowed_root = sorted({p.parts[2] for p in sandbox._python_prefixes() if p.parts[1:2] == ("root",)})
    programs = [
        "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))",
        "import socket\nsocket.getaddrinfo('example.com', 80)",
        "open('/etc/shadow').read()",
        f"open({str(secret)!r}).read()",
        f"import os\nos.listdir({str(repo)!r})",
        f"import os\nassert sorted(os.listdir('/root')) != {allowed_root!r}",
        "open('/usr/ptb-escape', 'w')",
        f"open({str(Path(sys.prefix) / 'ptb-escape')!r}, 'w')",
        "import ptb_gym",
        "open('/proc/1/mem', 'rb').read(1)",
        "import os\nos.listdir('/proc/1/fd')",
        # positive controls: what is allowed does work
        "open('/tmp/scratch', 'w').write('ok')\nassert open('/tmp/scratch').read() == 'ok'",
        (f"import os\nassert os.getuid() == {sandbox.SANDBOX_UID}\n"
         f"assert sorted(os.listdir('/root')) == {allowed_root!r}"),
    ]
    assert execution.run_tests(programs) == [False] * 11 + [True, True]
    assert not (Path(sys.prefix) / "ptb-escape").exists() and not Path("/usr/ptb-escape").exists()


@needs_bwrap
def test_sandbox_bounds_time_and_survives_hostile_programs():
    fake = json.dumps({"results": [[]] * 8})
    programs = [
        "while True:\n    pass",
        "import time\ntime.sleep(100)",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "print('x' * 20_000_000)\nimport sys\nsys.stderr.write('y' * 5_000_000)",
        "open('/tmp/big', 'w').write('z' * 50_000_000)",
        "bytearray(2 * 1024 ** 3)",
        (f"import os, sys\nprint({fake!r})\nsys.stderr.write({fake!r})\nfor fd in (3, 4, 5):\n"
         f"    try:\n        os.write(fd, {fake.encode()!r})\n    except OSError:\n        pass\n"
         "try:\n    open('/proc/1/fd/3', 'w').write('x')\nexcept OSError:\n    pass\nos.kill(1, 9)\nassert False"),
        "assert sum(range(10)) == 45",
    ]
    started = time.monotonic()
    results = execution.run_tests(programs, timeout_s=4)  # room for the honest programs on a loaded machine
    assert time.monotonic() - started < 30
    assert results == [False, False, False, True, False, False, False, True]
    # a process that leaves its group lives on, but not past the batch (and, with a fork bomb in the same batch,
    # it would have had no process to fork: the limit is the scoring uid's, not each program's)
    escape = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(100)"
    assert execution.run_tests([escape, "assert True"], timeout_s=4) == [True, True]
    assert time.monotonic() - started < 40


def test_many_programs_are_fast():
    started = time.monotonic()
    assert execution.run_tests(["assert sorted([3, 1, 2]) == [1, 2, 3]"] * 500) == [True] * 500
    assert time.monotonic() - started < 15


# ---- recipes --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recipe_outputs(tmp_path_factory):
    outputs = {}
    for name, recipe in TASK.recipes.items():
        workspace = tmp_path_factory.mktemp(name)
        (workspace / "data").mkdir()
        (workspace / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIN))
        subprocess.run([sys.executable, "-c", recipe.data_script], cwd=workspace, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": ""})
        outputs[name] = [json.loads(line) for line in (workspace / recipe.data).read_text().splitlines()]
    return outputs


def test_recipes_write_prompt_completion_jsonl(recipe_outputs):
    assert set(recipe_outputs) == {"naive", "tuned", "synth", "reference", "chat"}
    for name, rows in recipe_outputs.items():
        assert rows and (name == "chat" or all(set(r) == {"prompt", "completion"} and r["completion"].startswith("    ")
                                               for r in rows))
    assert recipe_outputs["naive"] == recipe_outputs["tuned"]
    assert len(recipe_outputs["naive"]) == sum("canonical_solution" in r for r in TRAIN)
    assert recipe_outputs["synth"] == recipe_outputs["reference"] and len(recipe_outputs["synth"]) == len(TRAIN)
    assert TASK.recipes["tuned"].train == TASK.recipes["reference"].train != TASK.recipes["naive"].train == {}


def test_synthesised_solutions_pass_the_hidden_tests(recipe_outputs):
    rows = recipe_outputs["synth"]
    passed = execution.check_asserts([r["prompt"] + r["completion"] for r in rows],
                                     [HIDDEN[r["prompt"]].tests for r in rows])
    assert sum(passed) >= 0.95 * len(rows)


def test_the_chat_recipe_writes_the_instruct_harness_turns_and_functions_that_pass(recipe_outputs):
    rows, instruct = recipe_outputs["chat"], next(h for h in TASK.harnesses if h.name == "instruct")
    assert len(rows) == len(TRAIN) and TASK.recipes["chat"].train == TASK.recipes["reference"].train
    items = [{**record, "tests": HIDDEN[record["prompt"]].tests} for record in TRAIN]
    for item, row in zip(items, rows, strict=True):
        user, assistant = row["messages"]
        assert [user] == TASK.prompt(item, instruct) and assistant["role"] == "assistant"
    sample = slice(0, None, 5)  # a thousand programs: test_synthesised_solutions_pass_the_hidden_tests runs all
    passed = TASK.score(items[sample], [row["messages"][1]["content"] for row in rows[sample]], instruct)
    assert sum(passed) >= 0.95 * len(passed)


def test_training_sees_each_prompt_as_the_evaluation_tokenizes_it():
    # Tokenized whole, a code record merges the prompt's last newline with the body's indentation: a model
    # trained so never sees a prompt's last token and fails every evaluation prompt.
    from transformers import AutoTokenizer

    from ptb_gym.training import tokenize

    tokenizer = AutoTokenizer.from_pretrained(TASK.embedded_model)
    solved = [r for r in TRAIN if "canonical_solution" in r][:20]
    records = [{"prompt": r["prompt"], "completion": r["canonical_solution"]} for r in solved]
    prepared = tokenize(records, tokenizer, max_length=512)
    for record, ids, labels in zip(records, prepared["input_ids"], prepared["labels"], strict=True):
        prompt = tokenizer(record["prompt"])["input_ids"]
        assert ids[:len(prompt)] == prompt and labels[:len(prompt)] == [-100] * len(prompt)
        assert tokenizer.decode(ids[len(prompt):]) == record["completion"] + tokenizer.eos_token
