"""The verifier: models are loaded and scored in a separate process, which the env bounds, kills and blames right."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from ptb_gym.verifier import Verifier, VerifierFailure

READY = 'import json, sys, time\nprint(json.dumps({"status": "ready"}), flush=True)\nrequest = json.loads(sys.stdin.readline())\n'


def fake(tmp_path, body: str) -> Verifier:
    """A verifier process that speaks the protocol and then does `body` (to test the env's side of it)."""
    script = tmp_path / "fake_verifier.py"
    script.write_text(READY + textwrap.dedent(body))
    return Verifier(tmp_path / "verifier.log", command=[sys.executable, str(script)])


def stage(name: str) -> str:
    return f'print(json.dumps({{"id": request["id"], "stage": "{name}"}}), flush=True)\n'


def test_a_verifier_stalled_while_reading_the_agents_files_is_the_agents_doing(tmp_path):
    verifier = fake(tmp_path, stage("load") + "time.sleep(600)\n")
    started = time.monotonic()
    with pytest.raises(VerifierFailure, match="longer than 2 s") as failure:
        verifier.request({"op": "final"}, timeout_s=2)
    assert failure.value.stage == "load" and failure.value.agent_caused
    assert time.monotonic() - started < 15
    assert verifier._process is None  # killed, not left behind


def test_a_verifier_that_dies_while_generating_is_an_infrastructure_failure(tmp_path):
    verifier = fake(tmp_path, stage("load") + stage("score") + "import os; os._exit(3)\n")
    with pytest.raises(VerifierFailure, match="died .*exit code 3") as failure:
        verifier.request({"op": "final"}, timeout_s=30)
    assert failure.value.stage == "score" and not failure.value.agent_caused


def test_a_verifier_that_writes_nonsense_is_refused(tmp_path):
    verifier = fake(tmp_path, 'print("hello", flush=True)\ntime.sleep(60)\n')
    with pytest.raises(VerifierFailure, match="not JSON"):
        verifier.request({"op": "final"}, timeout_s=30)


def test_the_verifier_runs_the_ptb_gym_the_env_imported_whatever_the_working_directory_holds(tmp_path, monkeypatch):
    # Run from a directory with a ptb_gym of its own (a source checkout beside an installed ptb_gym, whose `envs`
    # lives elsewhere), `python -m` imported that one and the verifier died at startup (exit code 1). A stray
    # json.py there would have been imported too.
    for name in ("ptb_gym", "torch"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise SystemExit(1)\n")
    (tmp_path / "json.py").write_text("raise SystemExit(1)\n")
    monkeypatch.chdir(tmp_path)
    verifier = Verifier(tmp_path / "verifier.log")
    try:  # it gets as far as answering: the request is refused by the real verifier's own code
        with pytest.raises(VerifierFailure, match="unknown verifier request 'nothing'"):
            verifier.request({"op": "nothing"}, timeout_s=120)
    finally:
        verifier.close()


def test_the_verifier_dies_with_the_env(tmp_path):
    # A parent process that starts a verifier and is then killed: the verifier must not outlive it.
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from ptb_gym.verifier import Verifier
        verifier = Verifier(Path({str(tmp_path / "v.log")!r}), command=[sys.executable, "-c", "import time; time.sleep(600)"])
        verifier.warm()
        print(verifier._process.pid, flush=True)
        time.sleep(600)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    for _ in range(50):
        try:
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().split(") ")[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the verifier outlived the env process")


def test_the_env_process_never_imports_torch_during_an_episode(tmp_path):
    code = textwrap.dedent(f"""
        import json, sys
        import gymnasium as gym
        import ptb_gym
        env = gym.make("PTB/math-v0", train_size=64, dev_size=8, test_size=16, device="cpu",
                       workdir={str(tmp_path)!r})
        env.reset(seed=0)
        step = lambda tool, **arguments: env.step({{"tool": tool, "arguments": arguments}})
        records = [{{"prompt": "Question: 1+1?\\nAnswer:", "completion": " 1+1=2 #### 2"}}] * 16
        step("write_data", path="data/sft.jsonl", records=records)
        job = step("train", data="data/sft.jsonl", output_dir="final_model", max_steps=2, batch_size=4)[4]["job"]["id"]
        step("wait", job_id=job, timeout_s=300)
        observation = step("evaluate", checkpoint="final_model", limit=8)[0]
        _, reward, terminated, _, info = step("submit")
        env.close()
        print(json.dumps({{"torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules,
                          "failure": info["failure"], "terminated": terminated, "evaluate": observation}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failure"] is None and result["terminated"]
    assert "Dev scores of final_model" in result["evaluate"]
    assert not result["torch"] and not result["transformers"]
