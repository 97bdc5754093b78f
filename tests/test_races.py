"""Attacks on the env process's file work, as real episode steps with the bubblewrap sandbox on: path races
(a job swapping a directory for a link to / while the env reads, writes, lists, trains, evaluates and
submits), special files, and contents meant to grow the env's memory or stall it.

| attack | outcome |
| --- | --- |
| swap `d/` for a link to `/` (and a file for a link to a host file) in a tight loop | never read, written or created outside |
| FIFOs and sockets where the env expects files or checkpoints | refused at once, never blocks |
| a 4 GB sparse file to read_file, a 1 GB log to tail/job_status/wait | bounded reads, RSS flat |
| `run` printing 2 GB | head and tail kept, the rest counted and dropped, RSS flat |
| 10,000 nested directories, 100,000 files in one directory, to list_files | bounded time and output |
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from ptb_gym import sandbox as sandbox_module
from tests.conftest import call, no_blocking, peak_rss_growth

pytestmark = pytest.mark.skipif(not sandbox_module.bubblewrap_works(), reason="bubblewrap does not work here")


def step(env, tool: str, **arguments):
    return env.step(call(tool, **arguments))


def run(env, command: str, timeout_s: int = 60) -> str:
    return step(env, "run", command=command, timeout_s=timeout_s)[0]


# ---------------------------------------------------------------------------------------------- races

SWAPPER = """
import os, random, shutil, time
swaps = 0
while True:
    hold = 0.002 if random.random() < 0.1 else 0  # now and then the link stays a moment, mostly not at all
    try:
        os.rename("d", "d.real"); os.symlink("/", "d"); time.sleep(hold); os.unlink("d"); os.rename("d.real", "d")
        os.rename(FILE, FILE + ".real"); os.symlink(CANARY, FILE); time.sleep(hold); os.unlink(FILE)
        os.rename(FILE + ".real", FILE)
    except OSError:
        for path in ("d", FILE):
            if os.path.islink(path):
                os.unlink(path)
            if os.path.lexists(path + ".real"):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                os.rename(path + ".real", path)
    swaps += 1
    if swaps == 1 or swaps % 2000 == 0:
        print("swaps", swaps, flush=True)
"""


def test_swapping_directories_for_links_while_the_env_works_never_leaks(make_env, tmp_path):
    env = make_env(max_steps=10_000)
    env.reset(seed=0)
    token = f"CANARY-{uuid.uuid4().hex}"
    outside = tmp_path / "outside"
    (outside / "ck").mkdir(parents=True)
    (outside / "canary.txt").write_text(f"{token}\n")
    (outside / "data.jsonl").write_text(json.dumps({"text": token}) + "\n")
    (outside / "ck" / "config.json").write_text(json.dumps({"canary": token}))
    (outside / "ck" / "model.safetensors").write_text(token)
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    # Inside, the same paths under d/ (a real directory, or a link to / for an instant) hold harmless files.
    mirror = "d/" + str(outside).lstrip("/")
    step(env, "write_file", path=f"{mirror}/canary.txt", content="inside\n")
    step(env, "write_file", path=f"{mirror}/data.jsonl", content="not json: the train tool refuses it\n")
    step(env, "write_file", path=f"{mirror}/ck/config.json", content="{}")
    step(env, "write_file", path=f"{mirror}/ck/model.safetensors", content="not weights")
    step(env, "write_file", path="files/f.txt", content="inside\n")
    step(env, "write_file", path="swap.py", content=f"FILE = 'files/f.txt'\nCANARY = {str(outside / 'canary.txt')!r}\n"
                                                     + SWAPPER)
    step(env, "launch", command="exec python swap.py")
    time.sleep(0.5)

    observations, refusals, successes = [], 0, 0
    started = time.monotonic()
    with no_blocking(120):
        for i in range(150):
            for action in (call("read_file", path=f"{mirror}/canary.txt"), call("read_file", path="files/f.txt"),
                           call("write_file", path=f"{mirror}/created-{i % 3}.txt", content="x"),
                           call("write_file", path="files/f.txt", content="inside\n", append=True),
                           call("list_files", path=mirror, depth=3), call("list_files", path="d", depth=64),
                           call("train", data=f"{mirror}/data.jsonl", model=f"{mirror}/ck", max_steps=1),
                           call("train", data="files/f.txt", max_steps=1)):
                observation, *_ = env.step(action)
                observations.append(observation)
                refusals += "is a link" in observation
                successes += "inside" in observation or observation.startswith("Wrote") or "Appended" in observation
        for _ in range(3):
            observations.append(step(env, "evaluate", checkpoint=f"{mirror}/ck", limit=2)[0])
        observations.append(step(env, "tail", job_id="job-1")[0])
        swaps = observations[-1]
        for _ in range(20):
            observation, _, terminated, _, final = step(env, "submit", checkpoint=f"{mirror}/ck")
            observations.append(observation + json.dumps(final, default=str))
            if terminated:
                break
    elapsed = time.monotonic() - started

    assert not [o for o in observations if token in o]
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before  # nothing written or created
    assert sorted(p.name for p in outside.rglob("*")) == ["canary.txt", "ck", "config.json", "data.jsonl",
                                                          "model.safetensors"]
    inputs = env.unwrapped.episode.disk.root / "inputs"
    assert not [p for p in inputs.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    # The race was really run: the swapper swapped, and the env hit both states.
    print(f"race: {refusals} refusals, {successes} successes, {swaps.splitlines()[-1]}")
    assert "swaps" in swaps and refusals > 10 and successes > 10, (refusals, successes, swaps[-300:])
    assert elapsed < 100


# --------------------------------------------------------------------------------------- special files

def test_fifos_and_sockets_from_a_job_never_block_the_env(make_env):
    env = make_env(max_steps=30)
    env.reset(seed=0)
    made = run(env, "mkfifo p && mkdir -p ck && cp base_model/config.json ck/ && mkfifo ck/model.safetensors && "
                    "python -c \"import socket; s = socket.socket(socket.AF_UNIX); s.bind('s')\" && ls -l p s ck")
    assert "exit code 0" in made, made
    with no_blocking(60):
        for action, word in [(call("read_file", path="p"), "FIFO"), (call("write_file", path="p", content="x"), "FIFO"),
                             (call("read_file", path="s"), "socket"), (call("write_file", path="s", content="x"), "socket"),
                             (call("train", data="p", max_steps=1), "FIFO"),
                             (call("evaluate", checkpoint="ck", limit=2), "FIFOs"),
                             (call("submit", checkpoint="p"), "FIFO")]:
            observation, _, terminated, _, _ = env.step(action)
            assert observation.startswith("Error:") and word in observation and not terminated, observation
        listing, *_ = step(env, "list_files")
        assert "p  (fifo)" in listing and "s  (socket)" in listing
        observation, _, terminated, _, _ = step(env, "submit", checkpoint="ck")  # its weights are a FIFO
        assert observation.startswith("Error:") and not terminated, observation
        assert "exit code 0" in run(env, "cp -r base_model ck2 && chmod -R u+w ck2 && rm ck2/tokenizer.json && "
                                         "mkfifo ck2/tokenizer.json")
        observation, _, terminated, _, _ = step(env, "submit", checkpoint="ck2")
        assert observation.startswith("Error:") and "FIFOs" in observation and not terminated, observation
        # Left as final_model when the step limit ends the episode: the final snapshot refuses it, never blocks.
        run(env, "mv ck2 final_model")
        for _ in range(100):
            _, _, terminated, truncated, final = step(env, "budget")
            if truncated:
                break
        assert truncated and final["failure"]["kind"] == "agent" and "FIFOs" in final["failure"]["message"], final


# -------------------------------------------------------------------------------------- bounded memory

def test_huge_files_logs_and_outputs_keep_the_env_small(make_env):
    env = make_env()
    _, info = env.reset(seed=0)
    root = Path(info["workspace"])
    # Made by the host (the sandbox's file size limit is 4 GiB): what the agent could make with a larger limit.
    (root / "sparse.bin").touch()
    os.truncate(root / "sparse.bin", 4 * 1024**3)
    (root / "text-then-holes.jsonl").write_bytes((root / "data" / "train.jsonl").read_bytes()[:20_000])
    os.truncate(root / "text-then-holes.jsonl", 4 * 1024**3)
    log_script = ("import os\nos.write(1, b'PTB_METRICS {\"step\": 1, \"loss\": 0.5}\\n' + b'a log line\\n' * 20_000_000)\n"
                  "os.lseek(1, 1024**3, 0)\nos.write(1, b'\\nPTB_METRICS {\"step\": 2, \"loss\": 0.25}\\nthe last line\\n')\n"
                  "import time; time.sleep(60)\n")
    step(env, "write_file", path="log.py", content=log_script)
    job = step(env, "launch", command="python log.py")[4]["job"]["id"]
    for _ in range(100):
        time.sleep(0.2)
        if (root / "logs" / f"{job}.log").stat().st_size > 1024**3:
            break

    def attack():
        seen = [step(env, "read_file", path="sparse.bin")[0], step(env, "read_file", path="text-then-holes.jsonl")[0],
                step(env, "read_file", path="text-then-holes.jsonl", start_line=10**8)[0]]
        for tool in ("job_status", "tail", "job_status", "job_status"):
            seen.append(step(env, tool, job_id=job)[0])
        started = time.monotonic()
        observation, _, _, _, info = step(env, "run", command="yes | head -c 2G", timeout_s=120)
        return seen + [observation], info, time.monotonic() - started

    with no_blocking(120):
        growth, (seen, info, run_s) = peak_rss_growth(attack)
    assert growth < 150 * 1024**2, f"the env grew by {growth / 1024**2:.0f} MB"
    assert "binary" in seen[0] and "4.0 GB" in seen[0]
    assert seen[1].count("\n") >= 10 and "use start_line=" in seen[1]
    assert seen[2].startswith("Error:") and "run" in seen[2]
    assert "the last line" in seen[4] and "loss 0.2500" in seen[-2], seen[-2]
    assert info["output_bytes"] == 2 * 1024**3 and info["dropped_bytes"] > 2 * 1024**3 - 200_000
    assert "bytes of output dropped" in seen[-1] and seen[-1].count("y\n") > 100 and run_s < 60
    step(env, "kill", job_id=job)


# ------------------------------------------------------------------------------------------ deep, wide

TREES = """
import os
os.mkdir("wide")
for i in range(100_000):
    open(f"wide/f{i:06d}", "w").close()
os.mkdir("deep"); os.chdir("deep")
for _ in range(10_000):
    os.mkdir("d"); os.chdir("d")
print("made")
"""


def test_deep_and_wide_trees_are_listed_in_bounded_time(make_env):
    env = make_env()
    env.reset(seed=0)
    step(env, "write_file", path="trees.py", content=TREES)
    made = run(env, "python trees.py", timeout_s=300)
    assert "made" in made, made
    with no_blocking(60):
        for arguments in ({"path": ".", "depth": 64}, {"path": "deep", "depth": 10_000}, {"path": "wide"}):
            started = time.monotonic()
            observation, _, _, _, info = step(env, "list_files", **arguments)
            assert time.monotonic() - started < 10 and "error" not in info, observation[:500]
            assert len(observation) <= env.unwrapped.config.max_observation_chars
        wide = step(env, "list_files", path="wide")[0]
        assert wide.count("\n") < 205 and "19800 more" in wide and "listing stopped: more than 20000 entries" in wide
        assert "d/" in step(env, "list_files", path="deep", depth=10_000)[0]
