"""The host as the sandbox leaves it: what agent commands write belongs to an unprivileged identity, setuid bits
they set gain nothing, and the episode's disk quota holds against one huge file and against many small ones."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ptb_gym import sandbox as sandbox_module
from tests.conftest import call

pytestmark = pytest.mark.skipif(not sandbox_module.bubblewrap_works(), reason="bubblewrap does not work here")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the env drops to an unprivileged identity only as root")

QUOTA = 64 * 1024**2  # the smallest quota EnvConfig allows: filling it is quick


def run(env, command: str, timeout_s: int = 120) -> str:
    observation, *_ = env.step(call("run", command=command, timeout_s=timeout_s))
    return observation


def needs_quota_image(env) -> None:
    quota = env.unwrapped.episode.disk.quota
    if quota["kind"] != "ext4-loop":
        pytest.skip(f"no quota image here ({quota.get('why')})")


@needs_root
def test_files_the_sandbox_writes_belong_to_the_unprivileged_identity(make_env):
    env = make_env()
    env.reset()
    root = env.unwrapped.episode.root
    run(env, "echo x > owned.txt; mkdir -p made/deeper; python -c \"open('made/deeper/p.txt', 'w').write('y')\"")
    expected = (sandbox_module.SANDBOX_HOST_UID, sandbox_module.SANDBOX_HOST_GID)
    for name in ("owned.txt", "made", "made/deeper/p.txt"):
        info = (root / name).lstat()
        assert (info.st_uid, info.st_gid) == expected, name
    assert expected[0] != 0 and expected[0] not in {int(line.split(":")[2]) for line in
                                                   Path("/etc/passwd").read_text().splitlines() if line.count(":") >= 6}


@needs_root
def test_a_setuid_binary_the_agent_makes_gains_nothing_on_the_host(make_env):
    env = make_env()
    env.reset()
    root = env.unwrapped.episode.root
    output = run(env, "cp /usr/bin/id ./myid && chmod 4755 ./myid && ls -l myid && ./myid -u")
    assert "rwsr-xr-x" in output and "1000" in output  # inside, it is the agent's own uid anyway
    binary = root / "myid"
    info = binary.stat()
    assert info.st_uid == sandbox_module.SANDBOX_HOST_UID  # at most that identity, never root
    # Run by another user on the host, it stays that user: the setuid bit does nothing (nosuid mount).
    result = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", str(binary), "-u"],
                            capture_output=True, text=True, timeout=30)
    if env.unwrapped.episode.disk.quota["kind"] == "ext4-loop":
        assert result.stdout.split() == ["65534"]
        options = next(line.split()[5] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                       if line.split()[4] == str(root))
        assert {"nosuid", "nodev"} <= set(options.split(","))
    else:
        assert result.stdout.split() in (["65534"], [str(sandbox_module.SANDBOX_HOST_UID)])


@needs_root
def test_one_4_gb_file_stops_at_the_quota(make_env):
    env = make_env(disk_quota_bytes=QUOTA)
    env.reset()
    needs_quota_image(env)
    disk = env.unwrapped.episode.disk
    output = run(env, "fallocate -l 4G big1; echo fallocate=$?; head -c 4G /dev/zero > big2; echo head=$?; "
                      "ls -s --block-size=1M big2")
    assert "fallocate=1" in output and "head=1" in output and "No space left on device" in output
    assert int(output.split("head=1")[1].split()[0]) <= QUOTA // 1024**2
    image = disk.root / "workspace.img"
    assert image.stat().st_blocks * 512 <= QUOTA  # nothing beyond the quota reached the host
    # The env goes on: a clear error for a write that does not fit, and commands still run.
    observation, *_ = env.step(call("write_file", path="more.txt", content="x" * 100_000))
    assert observation.startswith("Error") and "full" in observation
    assert "still here" in run(env, "rm -f big1 big2; echo still here")
    observation, *_ = env.step(call("write_file", path="more.txt", content="fits now"))
    assert not observation.startswith("Error")


@needs_root
def test_many_small_files_stop_at_the_quota(make_env):
    env = make_env(disk_quota_bytes=QUOTA)
    env.reset()
    needs_quota_image(env)
    output = run(env, """python -c '
import os
os.mkdir("many")
n = 0
try:
    while n < 1_000_000:
        open(f"many/{n}", "w").close()
        n += 1
except OSError as error:
    print("stopped after", n, error.strerror)
'""")
    assert "stopped after" in output and "No space left on device" in output
    assert int(output.split("stopped after")[1].split()[0]) <= QUOTA // 16384
    observation, *_ = env.step(call("launch", command="echo job"))  # a job log needs an inode too
    assert observation.startswith(("Error", "Started"))
    observation, *_ = env.step(call("list_files", path="."))
    assert "many" in observation
    assert "ok" in run(env, "rm -rf many; echo ok")
