"""What every registered task must hold, family by family: its recipes run on the workspace's own files, and
nothing the agent can read gives the recipe away."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from ptb_gym.envs import load_task
from ptb_gym.registration import TASK_NAMES

SHARED_MODEL_TASKS = [name for name in TASK_NAMES if name != "math-v0"]


def write_public_files(task, workspace):
    """The files a workspace starts with: the public splits and the task's own files."""
    (workspace / "data").mkdir()
    for split, n in (("train", 5000), ("dev", 200)):
        rows = task.records(split, n)
        (workspace / "data" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for relative, content in task.public_files().items():
        (workspace / relative).parent.mkdir(parents=True, exist_ok=True)
        (workspace / relative).write_bytes(content)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_recipe_writes_training_records_in_the_evaluation_format(name, tmp_path):
    """A recipe's records are prompt/completion text, or chat messages (a system message at most, then user and
    assistant turns in turn, ending with the assistant's: chat templates refuse anything else); a recipe
    that writes the primary harness's kind (text or chat) writes its prompts (the real benchmarks' naive recipes
    write text for a chat harness: that is what makes them naive)."""
    task = load_task(name)
    assert {"reference", "naive"} <= set(task.recipes)
    write_public_files(task, tmp_path)
    primary = task.harness(task.primary_harness)
    train = task.records("train", 5000)
    train_prompts = {json.dumps(task.prompt(item, primary)) for item in train}
    for recipe in task.recipes.values():
        subprocess.run([sys.executable, "-c", recipe.data_script], cwd=tmp_path, check=True, timeout=300,
                       capture_output=True)
        records = [json.loads(line) for line in (tmp_path / recipe.data).read_text().splitlines()]
        assert len(records) >= min(1000, len(train)), recipe.name
        prompts, chat = [], "messages" in records[0]
        for record in records:
            if "messages" in record:
                *prompt, reply = record["messages"]
                assert reply["role"] == "assistant" and isinstance(reply["content"], str) and reply["content"]
                roles = [message["role"] for message in record["messages"]]  # as Gemma's chat template demands
                turns = roles[1:] if roles[0] == "system" else roles
                assert turns == ["user", "assistant"] * (len(turns) // 2), roles
                prompts.append(json.dumps(prompt))
            else:
                assert isinstance(record["prompt"], str) and isinstance(record["completion"], str)
                prompts.append(json.dumps(record["prompt"]))
        if chat == primary.chat:
            in_format = sum(prompt in train_prompts for prompt in prompts)
            assert in_format >= min(len(records), 5000) // 2, f"{recipe.name}: {in_format} of {len(records)} prompts"


@pytest.mark.parametrize("name", SHARED_MODEL_TASKS)
def test_the_goal_says_how_the_model_is_evaluated_never_how_to_train_it(name):
    goal = load_task(name).goal
    assert re.search(r"greedy decoding of at most \d+ new tokens", goal)
    for hint in ("helps", "should train", "fine-tune it", "learning rate", "reference", "recipe", "epoch"):
        assert hint not in goal.lower(), hint


def test_math_v1_gives_final_answers_only():
    task = load_task("math-v1")
    for split in ("train", "dev"):
        assert all(set(r) == {"question", "answer"} for r in task.records(split, 200))
    assert "solution" in task.records("test", 5, seed=1)[0]  # the generator knows the working; the agent does not
    assert all("solution" in r for r in load_task("math-v0").records("train", 50))  # v0 keeps its data


@pytest.mark.parametrize("name, copies", [("math-v1", False), ("math-v2", True)])
def test_math_v2s_base_copies_the_answer_format_from_the_shots(name, copies):
    """What makes math-v2's base score higher few-shot than zero-shot, as PostTrainBench's base models do: after
    the four shots it writes their `#### N`; zero-shot, no base ever does (math-v1's never does either way)."""
    from ptb_gym import checkpoints
    from ptb_gym.evaluation import evaluate_model

    task = load_task(name)
    model_dir = task.embedded_model
    model, tokenizer = checkpoints.load_model(model_dir, model_dir), checkpoints.load_tokenizer(model_dir)
    scores = evaluate_model(model, tokenizer, task, task.records("dev", 40),
                            [task.harness("zero_shot_strict"), task.harness("few_shot")])
    marked = {harness: sum("####" in text for text in score.completions) for harness, score in scores.items()}
    assert marked["zero_shot_strict"] == 0
    assert (marked["few_shot"] >= 20) if copies else (marked["few_shot"] == 0), marked

def test_math_v1_solver_recipe_finds_working_for_almost_every_problem(tmp_path):
    from ptb_gym.envs.math import recipes

    task = load_task("math-v1")
    write_public_files(task, tmp_path)
    subprocess.run([sys.executable, "-c", recipes.SOLVED_WORK], cwd=tmp_path, check=True, timeout=120,
                   capture_output=True)
    records = [json.loads(line) for line in (tmp_path / "data" / "sft.jsonl").read_text().splitlines()]
    assert len(records) >= 0.97 * 5000
    for record in records[:500]:
        *steps, marker, answer = record["completion"].split()
        assert marker == "####" and steps
        for step in steps:  # each step is true arithmetic, and the last gives the answer
            expression, result = step.split("=")
            assert eval(expression.replace("/", "//")) == int(result)  # noqa: S307 - the script's own digits
        assert steps[-1].split("=")[1] == answer
