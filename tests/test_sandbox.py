"""The sandbox itself: what a command in it can see, write and reach, and the limits that bound it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ptb_gym import sandbox as sandbox_module
from ptb_gym.errors import ConfigError
from ptb_gym.sandbox import BubblewrapSandbox, SandboxLimits, SubprocessSandbox, make_sandbox
from tests.conftest import host_processes_with

needs_bwrap = pytest.mark.skipif(not sandbox_module.bubblewrap_works(), reason="bubblewrap does not work here")


def _cgroup_limits() -> dict[str, str]:
    return SubprocessSandbox(quiet=True).limits_in_force()


needs_pids_cgroup = pytest.mark.skipif("cgroup" not in _cgroup_limits()["processes"],
                                       reason="no cgroup with a pids controller can be created here")
needs_memory_cgroup = pytest.mark.skipif("cgroup" not in _cgroup_limits()["memory"],
                                         reason="no cgroup with a memory controller can be created here")


@pytest.fixture
def workspace(tmp_path):
    """A workspace as `disk.EpisodeDisk` makes one: owned by the sandbox's host identity, mode 0700 (and, here,
    under pytest's 0700 directory, which that identity cannot enter)."""
    root = tmp_path / "workspace"
    root.mkdir(mode=0o700)
    os.chown(root, *sandbox_module.host_identity())
    return root


@pytest.fixture
def bwrap():
    box = BubblewrapSandbox()
    yield box
    box.close()


def sh(box, workspace: Path, command: str, timeout: float = 60) -> tuple[int, str]:
    process = box.spawn(["bash", "-c", command], workspace)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
    return process.returncode, output.decode(errors="replace")



@needs_bwrap
def test_bwrap_shows_python_and_the_training_module_but_not_the_task_or_scoring_code(bwrap, workspace):
    import ptb_gym
    import ptb_gym.envs

    core = Path(ptb_gym.__file__).resolve().parent
    task_dir = Path(ptb_gym.envs.__path__[0]).resolve()
    code, out = sh(bwrap, workspace, f"""
        python -m ptb_gym.training; echo "training-exit=$?"
        for m in ptb_gym.envs ptb_gym.envs.math.problems ptb_gym.tools ptb_gym.evaluation ptb_gym.scoring \\
                 ptb_gym.integrity; do python -c "import $m" 2>/dev/null && echo "imported $m"; done
        python -c "import numpy, safetensors, transformers; print('packages-ok')"
        ls {task_dir} {task_dir}/math/problems.py 2>&1; ls {core}
        ls /etc/pip.conf /etc/shadow /root 2>&1 | grep -v pyenv""")
    assert "usage: python -m ptb_gym.training" in out and "training-exit=1" in out  # it imports and runs
    assert "imported" not in out
    assert "packages-ok" in out
    assert f"{task_dir}': No such file or directory" in out
    assert "training.py" in out.split() and not {"evaluation.py", "scoring.py"} & set(out.split())
    assert "/etc/pip.conf': No such file" in out and "/etc/shadow': No such file" in out


def test_the_sandboxed_ptb_gym_modules_are_the_training_closure_only():
    core, files = sandbox_module._core_modules()
    names = {f.name for f in files}
    assert {"__init__.py", "training.py"} <= names
    assert not names & {"evaluation.py", "scoring.py", "integrity.py", "env.py", "cli.py", "replay.py"}
    assert all(f.parent == core for f in files)


@needs_bwrap
def test_bwrap_only_the_workspace_is_writable(bwrap, workspace, tmp_path):
    import ptb_gym

    core = Path(ptb_gym.__file__).resolve().parent
    site = Path(sandbox_module.sysconfig.get_paths()["purelib"])
    marker = f"ptb-sandbox-{uuid.uuid4().hex}"
    code, out = sh(bwrap, workspace, f"""
        echo ok > inside.txt && echo wrote-workspace
        for target in /{marker} /usr/{marker} /etc/{marker} {site}/{marker} {core}/{marker}; do
            touch $target 2>/dev/null && echo "wrote $target"
        done
        touch /tmp/{marker} && echo wrote-private-tmp
        mkdir -p {tmp_path} && touch {tmp_path}/{marker}  # the workspace's parent: in the private /tmp""")
    assert "wrote-workspace" in out and (workspace / "inside.txt").read_text() == "ok\n"
    assert "wrote /" not in out
    # /tmp is the sandbox's own: what is written there never reaches the host's /tmp.
    assert "wrote-private-tmp" in out and not Path(f"/tmp/{marker}").exists()
    assert not (tmp_path / marker).exists() and not (core / marker).exists()


@needs_bwrap
def test_bwrap_runs_as_an_unprivileged_user_without_nested_namespaces(bwrap, workspace):
    code, out = sh(bwrap, workspace, "id; whoami; grep CapEff /proc/self/status; unshare -U true && echo nested-userns")
    assert "uid=1000(agent)" in out and "agent" in out.split()
    assert "CapEff:\t0000000000000000" in out
    assert "nested-userns" not in out


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the env drops to an unprivileged identity only as root")


@needs_root
@needs_bwrap
def test_bwrap_commands_run_on_the_host_as_an_unprivileged_identity_without_groups(bwrap, workspace):
    token = f"ptb-identity-{uuid.uuid4().hex}"
    process = bwrap.spawn(["bash", "-c", f"echo x > owned; mkdir d; exec -a {token} sleep 30"], workspace)
    try:
        deadline = time.monotonic() + 10
        while not (found := [p for p in host_processes_with(token)
                             if Path(f"/proc/{p}/cmdline").read_bytes().startswith(token.encode())]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [pid] = found  # the sleep, not the bubblewraps whose command lines name it
        status = Path(f"/proc/{pid}/status").read_text()
        bwrap_status = Path(f"/proc/{process.pid}/status").read_text()  # bubblewrap itself, outside
    finally:
        bwrap.close()
    uid, gid = sandbox_module.SANDBOX_HOST_UID, sandbox_module.SANDBOX_HOST_GID
    for text in (status, bwrap_status):
        fields = dict(line.split(":", 1) for line in text.splitlines())
        assert fields["Uid"].split() == [str(uid)] * 4 and fields["Gid"].split() == [str(gid)] * 4
        assert fields["Groups"].strip() == "" and fields["NoNewPrivs"].strip() == "1"
        assert fields["CapEff"].strip() == "0000000000000000"
    for name in ("owned", "d", ".tmp"):
        info = (workspace / name).stat()
        assert (info.st_uid, info.st_gid) == (uid, gid)
    assert "64000" not in Path("/etc/passwd").read_text().replace(":", " ").split()  # no account's uid


@needs_root
@needs_bwrap
def test_bwrap_reaches_python_and_a_workspace_its_identity_could_not_enter(bwrap, tmp_path):
    # pytest's /tmp/pytest-of-root is 0700, and the interpreter may live under /root: both are bound for it.
    hidden = tmp_path / "closed" / "workspace"
    hidden.mkdir(parents=True)
    hidden.parent.chmod(0o700)
    os.chown(hidden, *sandbox_module.host_identity())
    code, out = sh(bwrap, hidden, "python -c 'import sys; print(sys.version_info[0])'; echo ok > f && cat f")
    assert out.split() == ["3", "ok"]
    assert not any(b"/ptb-gym-sandbox-" in line and b"/view/" in line
                   for line in Path("/proc/self/mountinfo").read_bytes().splitlines())  # no host mount left


def test_the_plain_backend_says_which_identity_it_runs_as(workspace):
    box = SubprocessSandbox(quiet=True)
    expected = sandbox_module.SANDBOX_HOST_UID if box.identity else os.getuid()
    try:
        code, out = sh(box, workspace, "id -u")
    finally:
        box.close()
    assert out.split() == [str(expected)]
    assert str(expected) in box.limits_in_force()["identity"]


@needs_bwrap
def test_bwrap_has_no_network(bwrap, workspace):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    script = f"""
import socket
for host, port in (("1.1.1.1", 53), ("127.0.0.1", {port})):
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("connected", host)
    except OSError as error:
        print("blocked", host, error)
"""
    code, out = sh(bwrap, workspace, f"python -c '{script}'")
    assert "connected" not in out and out.count("blocked") == 2
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()


@needs_bwrap
def test_bwrap_sees_only_its_own_processes(bwrap, workspace):
    code, out = sh(bwrap, workspace, "ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/*/cmdline | tr '\\0' ' '; "
                                     f"cat /proc/{os.getpid()}/environ 2>&1 | head -c 200")
    assert int(out.split()[0]) <= 5  # bwrap's init, bash and its pipeline
    assert "-m pytest" not in out and "No such file" in out  # not the test runner, nor its environment


@needs_bwrap
def test_nothing_a_command_starts_outlives_it(bwrap, workspace):
    token = f"ptb-escape-{uuid.uuid4().hex}"
    code, out = sh(bwrap, workspace, f"""
        setsid bash -c 'exec -a {token}-setsid sleep 300' > /dev/null 2>&1 &
        (bash -c 'exec -a {token}-double sleep 300' > /dev/null 2>&1 &) &
        nohup bash -c 'exec -a {token}-nohup sleep 300' > /dev/null 2>&1 &
        sleep 0.3; echo started""", timeout=30)
    assert "started" in out
    deadline = time.monotonic() + 5
    while host_processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert host_processes_with(token) == []


@needs_pids_cgroup
def test_close_kills_processes_that_escaped_the_plain_backend(workspace):
    box = SubprocessSandbox(quiet=True)
    token = f"ptb-escape-{uuid.uuid4().hex}"
    process = box.spawn(["bash", "-c", f"setsid bash -c 'exec -a {token} sleep 300' > /dev/null 2>&1 & sleep 0.3"],
                        workspace)
    process.communicate(timeout=30)
    assert host_processes_with(token)  # a plain subprocess can leave its process group...
    box.close()
    deadline = time.monotonic() + 5
    while host_processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert host_processes_with(token) == []  # ...but not the episode's cgroup


@pytest.mark.parametrize("kind", ["bwrap", "none"])
def test_file_size_and_open_file_limits(kind, workspace):
    if kind == "bwrap" and not sandbox_module.bubblewrap_works():
        pytest.skip("bubblewrap does not work here")
    box = make_sandbox(kind, limits=SandboxLimits(max_file_bytes=1024**2, max_open_files=256)) if kind == "bwrap" \
        else SubprocessSandbox(limits=SandboxLimits(max_file_bytes=1024**2, max_open_files=256), quiet=True)
    try:
        code, out = sh(box, workspace, "ulimit -f; ulimit -n; head -c 5M /dev/zero > big; echo exit=$?")
    finally:
        box.close()
    assert out.split()[:2] == ["1024", "256"]  # ulimit -f counts 1024-byte blocks
    assert (workspace / "big").stat().st_size == 1024**2 and "exit=0" not in out


@needs_pids_cgroup
def test_the_process_limit_bounds_a_fork_bomb(workspace):
    box = make_sandbox("auto", limits=SandboxLimits(max_processes=32))
    script = """
import os, time
children = 0
try:
    while children < 200:
        if os.fork() == 0:
            time.sleep(10)
            os._exit(0)
        children += 1
except OSError as error:
    print("blocked after", children, error.strerror)
"""
    try:
        code, out = sh(box, workspace, f"python -c '{script}'", timeout=60)
    finally:
        box.close()
    assert "blocked after" in out and int(out.split()[2]) < 32


@needs_memory_cgroup
def test_the_memory_limit_stops_a_runaway_allocation(workspace):
    box = make_sandbox("auto", limits=SandboxLimits(memory_bytes=256 * 1024**2))
    try:
        code, out = sh(box, workspace, "python -c \"x = b'x' * (1024**3); print('alloc' + 'ated')\"; echo exit=$?")
    finally:
        box.close()
    assert "allocated" not in out and "exit=137" in out  # SIGKILLed by the cgroup's OOM killer


def test_the_disk_guard_kills_the_episode_when_the_disk_fills_up(workspace):
    free = shutil.disk_usage(workspace).free
    box = make_sandbox("auto", limits=SandboxLimits(min_free_disk_bytes=free + 1024**3))
    try:
        process = box.spawn(["sleep", "60"], workspace)
        process.wait(timeout=10)
    finally:
        box.close()
    assert process.returncode != 0 and "disk is almost full" in box.stopped_reason


def test_the_plain_backend_warns_loudly():
    with pytest.warns(UserWarning, match="WITHOUT a sandbox"):
        make_sandbox("none")


def test_asking_for_bwrap_where_it_does_not_work_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sandbox_module, "bubblewrap_works", lambda: False)
    with pytest.raises(ConfigError, match="bubblewrap does not work here.*sandbox='none'"):
        make_sandbox("bwrap")
    with pytest.warns(UserWarning, match="WITHOUT a sandbox"):
        assert make_sandbox("auto").name == "none"
    with pytest.raises(ConfigError, match="Unknown sandbox 'docker'"):
        make_sandbox("docker")


def test_limits_in_force_say_what_holds():
    facts = SubprocessSandbox(quiet=True).limits_in_force()
    assert set(facts) == {"isolation", "processes", "memory", "file_size", "open_files", "disk", "kill_all",
                          "cpu_time", "identity"}
    assert facts["isolation"].startswith("none")
    assert (facts["cpu_time"] == "counted by the episode's cgroup") == sandbox_module.counts_cpu()
    if sandbox_module.bubblewrap_works():
        box = BubblewrapSandbox()
        assert box.limits_in_force()["isolation"].startswith("bubblewrap") and box.name == "bwrap"
    assert sys.platform == "linux"
