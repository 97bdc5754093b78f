"""A security review's attacks, each through real episode steps (one through the verifier's protocol).

Each test states the property that should hold. Tests marked `xfail(strict=True)` document a hole that is still
open: they fail today, and strictness makes the suite say so once a fix lands (then drop the mark).

| attack | outcome |
| --- | --- |
| a checkpoint whose nested paths pass PATH_MAX, submitted or evaluated | refused: paths in a checkpoint are bounded (agent) |
| time spent scanning the agent's files pushes the request's deadline into `score` | the deadline restarts after the agent's stages |
| a train data file that is one long line | the size limit counts the first line too |
| test items rot47'd, base32'd, or as text under a float-only safetensors header | flagged (decoded; weights must look signed) |
| test items split into two blocks of halves, or broken every 6 words by a junk word | not flagged: open (xfail) |
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
import textwrap
from pathlib import Path

import pytest

from ptb_gym import sandbox as sandbox_module
from ptb_gym.verifier import Verifier, VerifierFailure
from tests.conftest import call

pytestmark = pytest.mark.skipif(not sandbox_module.bubblewrap_works(), reason="bubblewrap does not work here")


def run(env, command: str, timeout_s: int = 120) -> str:
    observation, *_ = env.step(call("run", command=command, timeout_s=timeout_s))
    return observation


def hidden_questions(env, n: int) -> list[str]:
    """The episode's own hidden test questions: only the test knows them (it reads the env's memory)."""
    episode = env.unwrapped.episode
    return [record["question"] for record in episode.task.records("test", n, seed=episode.test_seed)]


def copy_base_to(env, name: str = "final_model") -> None:
    assert "exit code 0" in run(env, f"cp -r base_model {name} && chmod -R u+w {name}")


# A checkpoint directory whose nested names add up to more than PATH_MAX (4096) once under the env's snapshot
# directory: 18 levels of 250-character names, made one level at a time (each system call sees a short path).
DEEP_TREE = ("cd {name} && python3 -c \"\nimport os\nfor _ in range(18):\n    os.mkdir('d' * 250)\n"
             "    os.chdir('d' * 250)\nopen('notes.txt', 'w').write('hi')\n\" && echo made")


# ------------------------------------------------------------------------- failures posing as infrastructure

def test_a_checkpoint_with_paths_past_path_max_is_the_agents_failure(make_env):
    env = make_env(test_size=8, max_steps=3)  # the submit is the last step: refused or not, final_model is scored
    env.reset(seed=0)
    copy_base_to(env)
    assert "made" in run(env, DEEP_TREE.format(name="final_model"))
    _, reward, terminated, truncated, info = env.step(call("submit"))
    assert (terminated or truncated) and reward == 0.0
    assert info["failure"]["kind"] in ("agent", "integrity"), info["failure"]
    assert info["valid"]


def test_evaluating_a_checkpoint_with_paths_past_path_max_is_an_agent_error(make_env):
    env = make_env(test_size=8)
    env.reset(seed=0)
    copy_base_to(env, "ck")
    assert "made" in run(env, DEEP_TREE.format(name="ck"))
    observation, _, terminated, _, info = env.step(call("evaluate", checkpoint="ck", limit=2))
    assert observation.startswith("Error:") and not terminated
    assert "internal_error" not in info and "bug in ptb-gym" not in observation


def test_time_spent_on_the_agents_files_is_not_blamed_on_a_later_stage(tmp_path):
    # The protocol as the real verifier speaks it: the scan of a large hostile workspace takes most of the
    # request's time (1.6 s of 2), then generation, which takes its usual 1 s, runs past the deadline.
    script = tmp_path / "fake_verifier.py"
    script.write_text(textwrap.dedent('''
        import json, sys, time
        print(json.dumps({"status": "ready"}), flush=True)
        request = json.loads(sys.stdin.readline())
        def stage(name):
            print(json.dumps({"id": request["id"], "stage": name}), flush=True)
        stage("tampering"); stage("scan"); time.sleep(1.6)
        stage("load"); stage("score"); time.sleep(1.0)
        print(json.dumps({"id": request["id"], "result": {"ok": True}}), flush=True)
        time.sleep(60)
    '''))
    verifier = Verifier(tmp_path / "verifier.log", command=[sys.executable, str(script)])
    try:
        verifier.request({"op": "final"}, timeout_s=2)
    except VerifierFailure as failure:
        assert failure.agent_caused, f"timed out in {failure.stage!r}, after the agent's stages used the time"
    finally:
        verifier.close()


# ------------------------------------------------------------------------------------------------ host disk

def test_the_train_tools_size_limit_counts_the_first_line(make_env, monkeypatch):
    import ptb_gym.tools  # noqa: F401 - the package's `train` is the tool; the module is in sys.modules

    train_tool = sys.modules["ptb_gym.tools.train"]
    monkeypatch.setattr(train_tool, "MAX_DATA_BYTES", 64 * 1024)
    env = make_env(test_size=8)
    _, info = env.reset(seed=0)
    # One record on one line, just under the 1 MiB the tool reads as the first line before it counts anything.
    assert "exit code 0" in run(env, "python3 -c \"import json; open('data/one_line.jsonl', 'w').write("
                                     "json.dumps({'text': 'a' * (1024**2 - 20)}) + '\\n')\"")
    observation, *_ = env.step(call("train", data="data/one_line.jsonl", output_dir="checkpoints/x", max_steps=1,
                                    batch_size=1))
    if observation.startswith("Started"):
        env.step(call("kill", job_id="job-1"))
    inputs = env.unwrapped.episode.disk.root / "inputs"
    stored = sum(path.stat().st_size for path in inputs.rglob("data.jsonl"))
    assert observation.startswith("Error:") and stored <= 64 * 1024, (stored, observation[:200])


# ------------------------------------------------------------------------------------- contamination evasions

_ROT47 = bytes.maketrans(bytes(range(33, 127)), bytes(33 + (c - 33 + 47) % 94 for c in range(33, 127)))


def _halves(questions: list[str]) -> bytes:
    """Every question's first half, then (further than the scan's window) every question's second half."""
    split = [(q.split()[: len(q.split()) // 2], q.split()[len(q.split()) // 2:]) for q in questions]
    return ("\n".join(" ".join(a) for a, _ in split) + "\n" + "\n".join(" ".join(b) for _, b in split)).encode()


def _junk_words(questions: list[str]) -> bytes:
    """A word the training script drops ("qzx") after every sixth word: no 8-gram of a question survives."""
    return "\n".join(" ".join(w + (" qzx" if i % 6 == 5 else "") for i, w in enumerate(q.split()))
                     for q in questions).encode()


def _float_safetensors(questions: list[str]) -> bytes:
    """The questions as plain text, behind a 100-byte safetensors header that calls them one F32 tensor."""
    payload = "\n".join(questions).encode()
    payload += b" " * (-len(payload) % 4)
    header = json.dumps({"w": {"dtype": "F32", "shape": [len(payload) // 4], "data_offsets": [0, len(payload)]}})
    return struct.pack("<Q", len(header)) + header.encode() + payload


EVASIONS = {
    "plain": (lambda qs: "\n".join(qs).encode(), None),  # the control: flagged today
    "rot47": (lambda qs: "\n".join(qs).encode().translate(_ROT47), None),
    "base32": (lambda qs: base64.b32encode("\n".join(qs).encode()), None),
    "halves": (_halves, "a question must be matched within one window of one text; halves far apart never are"),
    "junk_words": (_junk_words, "one unknown word every 6 words breaks every 8-gram, and no view drops it"),
    "float_safetensors": (_float_safetensors, None),  # text never sets the sign bits weights do
}


@pytest.mark.parametrize("form", [
    pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=why)] if why else [])
    for name, (_, why) in EVASIONS.items()])
def test_test_items_written_in_an_evasive_form_are_flagged(make_env, form):
    env = make_env(test_size=8)
    _, info = env.reset(seed=0)
    encode, _ = EVASIONS[form]
    questions = hidden_questions(env, 8)
    target = Path(info["workspace"]) / "notes" / "corpus.bin"
    target.parent.mkdir()
    target.write_bytes(encode(questions))
    os.chown(target.parent, *env.unwrapped.episode.sandbox.identity)
    copy_base_to(env)
    _, reward, terminated, _, info = env.step(call("submit"))
    assert terminated and reward == 0.0
    assert info["failure"] is not None and info["failure"]["kind"] == "integrity", info["failure"]
    assert any(flag["check"] == "contamination" for flag in info["flags"])
