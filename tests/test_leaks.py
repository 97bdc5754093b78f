"""Kill -9 and leaks: an env process killed mid-episode leaves a readable recording and no agent process, and
the next env start reclaims its directory, mount and loop device; many episodes in a row leave nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import gymnasium as gym
import pytest

import ptb_gym
from ptb_gym import disk as disk_module
from ptb_gym import sandbox as sandbox_module
from tests.conftest import SMALL, call, host_processes_with

pytestmark = pytest.mark.skipif(not sandbox_module.bubblewrap_works(), reason="bubblewrap does not work here")

REPOSITORY = Path(__file__).resolve().parent.parent

# An env process as a training loop would run it: one finished step, a background job that waits and one that
# computes, and then it waits to be killed.
_ENV_PROCESS = """
import json, sys
import gymnasium as gym
import ptb_gym

options, token = json.loads(sys.argv[1]), sys.argv[2]
env = gym.make("PTB/math-v0", **options)
observation, info = env.reset(seed=1)
env.step({"tool": "run", "arguments": {"command": "echo first step > first.txt"}})
env.step({"tool": "launch", "arguments": {"command": f"exec -a {token}-sleep sleep 1000"}})
env.step({"tool": "launch", "arguments": {"command":
    f"exec -a {token}-busy python -c 'import time\\nwhile True: sum(range(20000)); time.sleep(0.01)'"}})
episode = env.unwrapped.episode
cgroup = episode.sandbox._cgroup
print(json.dumps({"root": str(episode.disk.root), "workspace": str(episode.disk.workspace),
                  "recording": info.get("recording"), "quota": episode.disk.quota,
                  "cgroups": [str(d) for d in cgroup.dirs.values()] if cgroup else []}), flush=True)
print("ready", flush=True)
sys.stdin.read()
"""


def _mounts_under(path: Path) -> list[str]:
    needle = str(path).encode()
    return [line.decode() for line in Path("/proc/self/mountinfo").read_bytes().splitlines() if needle in line]


def _loops_backed_under(path: Path) -> list[str]:
    found = []
    for block in Path("/sys/block").glob("loop*"):
        try:
            backing = (block / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing.startswith(str(path)):
            found.append(f"{block.name}: {backing}")
    return found


def _describe(pids: list[int]) -> list[str]:
    described = []
    for pid in pids:
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120].decode(errors="replace")
            described.append(f"{pid} ppid {status['PPid'].strip()} state {status['State'].strip()}: {command}")
        except OSError:
            pass
    return described


def _wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("when", ["jobs running", "sandbox starting"])
def test_kill_9_leaves_a_readable_recording_no_process_and_a_reclaimable_episode(tmp_path, when):
    workdir, record_dir = tmp_path / "episodes", tmp_path / "recordings"
    token = f"ptb-leak-{uuid.uuid4().hex}"
    options = {**SMALL, "workdir": str(workdir), "record_dir": str(record_dir)}
    env_process = subprocess.Popen([sys.executable, "-c", _ENV_PROCESS, json.dumps(options), token], cwd=REPOSITORY,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        facts = json.loads(env_process.stdout.readline())
        assert env_process.stdout.readline().strip() == "ready"
        if when == "jobs running":  # else at once, while bubblewrap may still be setting the last job's sandbox up
            assert _wait_for(lambda: len([pid for pid in host_processes_with(token) if Path(
                f"/proc/{pid}/cmdline").read_bytes().startswith(token.encode())]) == 2)
        env_process.send_signal(signal.SIGKILL)
        env_process.wait(timeout=10)
    finally:
        if env_process.poll() is None:
            env_process.kill()
            env_process.wait()
    root, workspace = Path(facts["root"]), Path(facts["workspace"])

    # (a) Nothing of the episode survives: bubblewrap dies with the env, and its PID namespace with it.
    assert _wait_for(lambda: host_processes_with(token) == []), _describe(host_processes_with(token))
    for cgroup in facts["cgroups"]:
        assert _wait_for(lambda: not Path(cgroup, "cgroup.procs").exists()
                         or Path(cgroup, "cgroup.procs").read_text().split() == [])

    # (b) The recording holds every step that finished.
    log = ptb_gym.read_episode(facts["recording"])
    assert [step.get("tool") for step in log.steps] == ["run", "launch", "launch"]
    assert log.footer is None  # the episode never ended

    # (c) The dead episode is still there (directory, mount, loop device) until the next env start...
    assert root.exists()
    if facts["quota"]["kind"] == "ext4-loop":
        assert _mounts_under(workspace) and _loops_backed_under(root)
    env = gym.make("PTB/math-v0", **{**SMALL, "workdir": str(workdir)})
    try:
        env.reset()
        env.step(call("run", command="true"))  # the first command's cgroup sweeps the dead env's cgroups
        # ...which reclaims it.
        assert not root.exists()
        assert _mounts_under(root) == [] and _wait_for(lambda: _loops_backed_under(root) == [])
        for cgroup in facts["cgroups"]:
            assert not Path(cgroup).exists()
    finally:
        env.close()


def test_an_env_process_that_exits_without_closing_its_env_leaves_nothing(tmp_path):
    """A script that ends (or dies of an exception) with its env open, jobs running: the env's directory, mount and
    loop device go with the process, not at some later env start in the same workdir."""
    workdir, token = tmp_path / "episodes", f"ptb-exit-{uuid.uuid4().hex}"
    env_process = subprocess.Popen([sys.executable, "-c", _ENV_PROCESS + "raise SystemExit('no close')\n",
                                    json.dumps({**SMALL, "workdir": str(workdir)}), token], cwd=REPOSITORY,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    facts = json.loads(env_process.stdout.readline())
    assert env_process.stdout.readline().strip() == "ready"
    env_process.stdin.close()  # its `sys.stdin.read()` returns: the script goes on to its end
    assert env_process.wait(timeout=60) == 1
    root = Path(facts["root"])
    assert not root.exists() and list(workdir.iterdir()) == []
    assert _mounts_under(root) == [] and _wait_for(lambda: _loops_backed_under(root) == [])
    assert _wait_for(lambda: host_processes_with(token) == []), _describe(host_processes_with(token))


def test_a_reused_pid_does_not_protect_a_dead_episode(tmp_path):
    parent = tmp_path / "episodes"
    disk = disk_module.EpisodeDisk.create(parent, quota_bytes=64 * 1024**2, owner_uid=None)
    owner = json.loads((disk.root / disk_module.OWNER_FILE).read_text())
    # Our own pid, but another process's start time: the process that made it is gone.
    (disk.root / disk_module.OWNER_FILE).write_text(json.dumps({**owner, "start": "1"}))
    alive = disk_module.EpisodeDisk.create(parent, quota_bytes=64 * 1024**2, owner_uid=None)
    try:
        assert disk_module.sweep_stale(parent) == [disk.root]
        assert not disk.root.exists() and alive.root.exists()
        assert _mounts_under(disk.root) == [] and _wait_for(lambda: _loops_backed_under(disk.root) == [])
    finally:
        disk.remove()
        alive.remove()


def _episodes(n: int, tmp_path: Path) -> None:
    workdir = tmp_path / "episodes"
    token = f"ptb-many-{uuid.uuid4().hex}"
    cgroups_before = _own_cgroups()
    temp_before = set(os.listdir(tempfile_dir()))
    env = gym.make("PTB/math-v0", **{**SMALL, "workdir": str(workdir)})
    try:
        for index in range(n):
            env.reset(seed=index)
            observation, *_ = env.step(call("run", command=f"echo {index} > n.txt && cat n.txt"))
            assert f"{index}" in observation
            env.step(call("launch", command=f"exec -a {token} sleep 1000"))
            env.close()
    finally:
        env.close()
    assert _wait_for(lambda: host_processes_with(token) == [])
    assert _own_cgroups() <= cgroups_before
    assert list(workdir.iterdir()) == []
    # Other processes (other test runs) may add theirs: only this process's count; at most its sandbox directory.
    new = {name for name in set(os.listdir(tempfile_dir())) - temp_before if f"-{os.getpid()}-" in name}
    assert all(name.startswith(f"ptb-gym-sandbox-{os.getpid()}-") for name in new) and len(new) <= 1, new
    assert _mounts_under(workdir) == []
    assert _wait_for(lambda: _loops_backed_under(workdir) == [])


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def _own_cgroups() -> set[str]:
    """The episode cgroups this process made that still exist."""
    found = set()
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        base = Path("/sys/fs/cgroup") / (controllers.split(",")[0] if controllers else "") / path.lstrip("/")
        found |= {str(p) for p in base.glob(f"ptb-gym-{os.getpid()}-*")}
    return found


def test_100_episodes_in_a_row_leave_nothing_behind(tmp_path):
    started = time.monotonic()
    _episodes(100, tmp_path)
    assert time.monotonic() - started < 120  # about 8 s here: reset, run, launch and close are cheap
