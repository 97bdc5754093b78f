"""Episode recordings: writing, reading back, crash tolerance, versioning, and the replay views."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ptb_gym.errors import RecordingError
from ptb_gym.recording import FORMAT, FORMAT_VERSION, EpisodeRecorder, read_episode, to_jsonable
from ptb_gym.replay import render_episode, replay

HEADER = {
    "env_id": "PTB/math-v0",
    "seed": 7,
    "spec": {"id": "PTB/math-v0", "entry_point": "ptb_gym.env:PTBEnv"},
    "config": {"budget_s": 600, "device": "cpu"},
    "task": {"name": "math", "description": "Teach the base model grade-school arithmetic word problems."},
    "observation": "# Task\nPost-train base_model/ for math.",
    "info": {
        "tools": [{"type": "function", "function": {"name": name}} for name in ("write_file", "submit")],
        "budget": {"used_s": 0.0, "limit_s": 600.0, "remaining_s": 600.0, "mode": "wall"},
    },
}
BIG_CONTENT = "import torch\n" + "x = 1\n" * 1000  # a 6 KB write_file argument
STEPS = [
    {
        "action": {"tool": "write_file", "arguments": {"path": "train.py", "content": BIG_CONTENT}},
        "tool": "write_file",
        "arguments": {"path": "train.py", "content": BIG_CONTENT},
        "observation": "wrote 6012 bytes to train.py",
        "reward": 0.0,
        "terminated": False,
        "truncated": False,
        "info": {"budget": {"used_s": 1.5, "limit_s": 600.0, "remaining_s": 598.5, "mode": "wall"}},
        "started_at": 1700000000.0,
        "duration_s": 0.01,
    },
    {
        "action": '{"tool": "run", "arguments": {"command": "python nope.py"}}',
        "tool": "run",
        "arguments": {"command": "python nope.py"},
        "observation": "\n".join(f"log line {i}" for i in range(2000)),
        "reward": 0.0,
        "terminated": False,
        "truncated": False,
        "info": {
            "error": "python: can't open file 'nope.py': [Errno 2] No such file or directory",
            "metrics": {"loss": 0.41, "lr": 1e-5},
            "loss_curve": [{"step": 0, "loss": 2.3}, {"step": 10, "loss": 0.9}],
        },
        "started_at": 1700000001.0,
        "duration_s": 2.5,
    },
    {
        "action": {"tool": "submit", "arguments": {}},
        "tool": "submit",
        "arguments": {},
        "observation": "submitted final_model/",
        "reward": 0.62,
        "terminated": True,
        "truncated": False,
        "info": {},
        "started_at": 1700000004.0,
        "duration_s": 30.0,
    },
]
FOOTER = {
    "scores": {
        "zero_shot_chat": {"score": 0.41, "base": 0.1, "reference": 0.6, "uplift": 0.62, "interval": [0.55, 0.7]},
        "few_shot_plain": {"score": 0.3, "base": 0.2, "reference": 0.5, "uplift": 0.333, "interval": [0.2, 0.45]},
    },
    "primary_harness": "zero_shot_chat",
    "uplift": 0.62,
    "reward": 0.62,
    "failure": None,
    "flags": ["contamination_checked"],
    "steps": 3,
    "budget": {"used_s": 34.0, "limit_s": 600.0, "remaining_s": 566.0, "mode": "wall"},
    "submitted": True,
    "duration_s": 34.0,
}


def record(directory: Path, steps: list[dict] = STEPS, footer: dict | None = FOOTER) -> Path:
    recorder = EpisodeRecorder(directory, HEADER)
    for step in steps:
        recorder.step(step)
    if footer is not None:
        recorder.footer(footer)
    recorder.close()
    return recorder.path


def test_round_trip(tmp_path: Path) -> None:
    path = record(tmp_path / "episodes")
    assert path.parent == tmp_path / "episodes"
    assert path.name.startswith("PTB-math-v0-") and "-seed7-" in path.name and path.suffix == ".jsonl"

    log = read_episode(path)
    assert log.complete
    assert log.header["format"] == FORMAT and log.header["version"] == FORMAT_VERSION
    assert log.header["ptb_gym_version"] and log.header["created_at"]
    assert {k: log.header[k] for k in HEADER} == HEADER
    assert [s["index"] for s in log.steps] == [0, 1, 2]
    assert [{k: v for k, v in s.items() if k not in ("type", "index")} for s in log.steps] == STEPS
    assert {k: v for k, v in log.footer.items() if k != "type"} == FOOTER

    summary = read_episode(path, header_only=True)
    assert summary.header == log.header and summary.steps == [] and summary.footer == log.footer


def test_each_step_is_on_disk_before_the_episode_ends(tmp_path: Path) -> None:
    recorder = EpisodeRecorder(tmp_path, HEADER)
    recorder.step(STEPS[0])
    recorder.step(STEPS[1])
    # Another process (a viewer, or a reader after a crash) sees both steps while the recorder is open.
    log = read_episode(recorder.path)
    assert len(log.steps) == 2 and log.steps[1]["tool"] == "run" and not log.complete
    recorder.close()


def test_interrupted_episode_reads_as_incomplete(tmp_path: Path) -> None:
    path = record(tmp_path, steps=STEPS[:2], footer=None)
    log = read_episode(path)
    assert not log.complete and log.footer is None and len(log.steps) == 2
    assert read_episode(path, header_only=True).footer is None
    assert "episode was interrupted (no footer)" in render_episode(log)


def test_recorder_writes_one_footer_and_nothing_after_it(tmp_path: Path) -> None:
    recorder = EpisodeRecorder(tmp_path, HEADER)
    recorder.footer(FOOTER)
    recorder.close()  # idempotent after the footer closed it
    with pytest.raises(RecordingError, match="already written"):
        recorder.footer(FOOTER)
    with pytest.raises(RecordingError, match="closed"):
        recorder.step(STEPS[0])
    with pytest.raises(ValueError, match="reserved"):
        EpisodeRecorder(tmp_path, {**HEADER, "version": 3})


def test_truncated_last_line_is_skipped(tmp_path: Path) -> None:
    path = record(tmp_path, steps=STEPS[:2], footer=None)
    line = json.dumps({"type": "step", "index": 2, **STEPS[2]})
    with open(path, "a") as f:
        f.write(line[: len(line) // 2])  # a crash mid-write: half a line, no newline
    log = read_episode(path)
    assert len(log.steps) == 2 and not log.complete


def test_malformed_middle_line_names_its_line_number(tmp_path: Path) -> None:
    path = record(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "{not json\n"
    path.write_text("".join(lines))
    with pytest.raises(RecordingError, match="line 3: malformed JSON"):
        read_episode(path)


def test_newer_version_is_refused_with_an_upgrade_hint(tmp_path: Path) -> None:
    path = record(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    lines[0] = json.dumps({**header, "version": FORMAT_VERSION + 1, "ptb_gym_version": "9.0"}) + "\n"
    path.write_text("".join(lines))
    message = (
        rf"format version {FORMAT_VERSION + 1} \(written by ptb-gym 9.0\)"
        rf".*reads versions up to {FORMAT_VERSION}: upgrade ptb-gym"
    )
    with pytest.raises(RecordingError, match=message):
        read_episode(path)
    with pytest.raises(RecordingError, match=message):
        read_episode(path, header_only=True)


def test_other_formats_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"type": "header", "format": "inspect-eval", "version": 1}) + "\n")
    with pytest.raises(RecordingError, match="format 'inspect-eval', expected 'ptb-gym-episode'"):
        read_episode(path)
    path.write_text("")
    with pytest.raises(RecordingError, match="not a ptb-gym episode recording"):
        read_episode(path)


def test_to_jsonable() -> None:
    @dataclass
    class Point:
        x: float
        tags: tuple[str, ...]

    converted = to_jsonable(
        {
            "int": np.int64(3),
            "float": np.float32(0.5),
            "array": np.array([[1.0, np.nan], [np.inf, 2.0]]),
            "path": Path("/tmp/x"),
            "nan": math.nan,
            "inf": -math.inf,
            "point": Point(1.5, ("a", "b")),
            "set": {3, 1, 2},
            "bytes": b"\x00" * 10,
            1: "int key",
            "other": object,
        }
    )
    assert converted == {
        "int": 3,
        "float": 0.5,
        "array": [[1.0, None], [None, 2.0]],
        "path": "/tmp/x",
        "nan": None,
        "inf": None,
        "point": {"x": 1.5, "tags": ["a", "b"]},
        "set": [1, 2, 3],
        "bytes": "<10 bytes>",
        "1": "int key",
        "other": "<class 'object'>",
    }
    assert type(converted["int"]) is int
    json.dumps(converted, allow_nan=False)  # strict JSON


def test_numpy_values_in_records_are_written(tmp_path: Path) -> None:
    recorder = EpisodeRecorder(tmp_path, HEADER)
    recorder.step({"observation": "ok", "reward": np.float64("nan"), "info": {"metrics": {"loss": np.float32(0.25)}}})
    recorder.close()
    step = read_episode(recorder.path).steps[0]
    assert step["reward"] is None and step["info"]["metrics"]["loss"] == 0.25


def test_render_episode_shows_tools_errors_and_scores(tmp_path: Path) -> None:
    text = render_episode(read_episode(record(tmp_path)), width=100)
    assert "\x1b[" not in text  # plain text, no ANSI codes
    assert "PTB/math-v0 · seed 7" in text and "task:" in text and "write_file, submit" in text
    assert 'write_file(path="train.py", content="import torch' in text
    assert "chars omitted] ..." in text and BIG_CONTENT not in text  # the 6 KB argument is shortened
    assert "log line 0" in text and "log line 1999" in text and "log line 1000" not in text
    assert "ERROR: python: can't open file 'nope.py'" in text
    assert "loss=0.41, lr=1e-05" in text and "2 points, loss 2.300 -> 0.900" in text
    assert "9m58s left (wall)" in text
    assert "zero_shot_chat *" in text and "[0.550, 0.700]" in text and "few_shot_plain" in text
    assert "flags:" in text and "contamination_checked" in text and re.search(r"failure:\s+none", text)


def test_render_one_step_in_full(tmp_path: Path) -> None:
    log = read_episode(record(tmp_path))
    text = render_episode(log, step=0)
    assert BIG_CONTENT in text and "step 0 · write_file" in text
    assert "step 1" not in text and "zero_shot_chat" not in text
    assert "log line 1000" in render_episode(log, step=-2)
    with pytest.raises(IndexError, match="has 3 steps"):
        render_episode(log, step=3)


def test_replay_prints_with_rich(tmp_path: Path) -> None:
    from rich.console import Console

    path = record(tmp_path)
    out = io.StringIO()
    replay(path, console=Console(file=out, width=100))
    text = out.getvalue()
    assert "PTB/math-v0" in text and "write_file" in text and "nope.py" in text
    assert "zero_shot_chat" in text and "0.620" in text and "contamination_checked" in text

    out = io.StringIO()
    replay(record(tmp_path, footer=None), console=Console(file=out, width=100))
    assert "episode was interrupted (no footer)" in out.getvalue()


def test_importing_recording_is_light() -> None:
    code = "import sys, ptb_gym.recording, ptb_gym.replay; print(sorted({'torch', 'rich'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_episode_ended_between_steps_gets_its_footer(make_env, tmp_path):
    from conftest import call

    env = make_env(record_dir=str(tmp_path / "runs"))
    _, info = env.reset(seed=0)
    env.step(call("list_files"))
    outcome = env.unwrapped.episode.end("rollout")  # a front-end whose rollout is over (TRL's environment_factory)
    assert env.unwrapped.episode.end("rollout") is outcome
    log = read_episode(info["recording"])
    assert log.complete and log.footer["truncated_by"] == "rollout" and len(log.steps) == 1
