"""Running untrusted Python (a model's completions and the tests that score them), never in the env's process.

Each call runs its whole batch in one fresh bubblewrap sandbox: one Python interpreter (``python -I -S``, no
site-packages) reads the batch, then forks a child per program, a few at a time, and reports what each did on
a pipe of its own. What a program can reach:

- **Files**: an empty, read-only root with the system directories, a few ``/etc`` files and the Python
  installation with its site-packages hidden; a private 64 MiB tmpfs at ``/tmp`` (the working directory) is
  the one writable place. Nothing of ptb-gym, the repository, the workspaces or home directories is there.
- **Identity and kernel**: a user namespace (uid 1000, no capabilities, no nested user namespaces), its own
  PID, network (loopback only), IPC and UTS namespaces, a new session. As root, the interpreter runs on the
  host as ``EXECUTION_HOST_UID``, a uid of its own (not the agent sandbox's), so that the process limit
  counts only scoring processes and agent commands cannot signal them.
- **Per program**: a wall-clock timeout (its process group is killed), RLIMIT_CPU, RLIMIT_AS (512 MiB),
  RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, no core dumps; stdout and stderr go to /dev/null. The
  interpreter is PID 1 of the namespace (signals from programs do not reach it) and not dumpable (they cannot
  read its memory or file descriptors); when it exits every process left in the sandbox dies. The batch as a
  whole is bounded too, by the time it needs if every program runs out its own.

How a result is judged matters as much as where it runs. `check_asserts` keeps the expected values out of
the sandbox: it sends the expression of each ``assert EXPR == VALUE``, gets back its value as JSON (plain
types only) and compares here. A program cannot pass by ending early (``os._exit(0)``), by returning an object
whose ``__eq__`` always holds, or by forging another program's result. `run_tests` runs full scripts and
trusts their own asserts: use it for programs that are not adversarial to the result.

Without bubblewrap the same interpreter runs as a plain subprocess with the same limits and no isolation at
all (it warns once); as root it runs as ``EXECUTION_HOST_UID`` only where that uid can reach the interpreter,
else as root, which RLIMIT_NPROC does not bound. What it does not protect against: kernel exploits (no seccomp filter, no VM), a program
that escapes its process group (it lives, under RLIMIT_CPU, until the batch ends), side channels.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import os
import resource
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ptb_gym import sandbox

__all__ = ["EXECUTION_HOST_UID", "check_asserts", "run_tests"]

EXECUTION_HOST_UID = 64001
"""The host uid (and gid) the sandbox runs as when the env runs as root: no account, nor the agent's."""
MEMORY_BYTES = 512 * 1024**2
MAX_PROCESSES = 64
"""RLIMIT_NPROC of a program: the scoring identity's processes together (hence a uid of its own)."""
MAX_FILE_BYTES = 16 * 1024**2
TMP_BYTES = 64 * 1024**2
MAX_VALUE_CHARS = 100_000
"""A value longer than this as JSON counts as a failure."""
_BATCH_SLACK_S = 30.0

# The interpreter in the sandbox. It reads the whole batch from stdin, becomes non-dumpable, then forks one
# child per item (at most `workers` at a time). A child moves its result pipe to fd 3, closes every other
# descriptor (the batch's result pipe above all), points 0-2 at /dev/null, sets its limits, runs the source
# and evaluates the probes; it writes a JSON list (one JSON text or null per probe; null for the whole item
# when the source raised) and exits. The parent fails an item that runs out of time or writes too much, kills
# its process group when it ends, and writes {"results": [...]} to the result fd (argv[1]) when all have.
_RUNNER = r'''
import ctypes, json, os, resource, select, signal, sys, time

def plain(value, depth=0):
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (list, tuple) and depth < 32:
        return [plain(v, depth + 1) for v in value]
    if kind is dict and depth < 32 and all(type(k) is str for k in value):
        return {k: plain(v, depth + 1) for k, v in value.items()}
    raise TypeError(kind)

def child(item, write_fd, limits, index):
    os.setpgid(0, 0)
    os.dup2(write_fd, 3)
    os.closerange(4, 1 << 16)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    for name, value in limits:
        resource.setrlimit(getattr(resource, name), (value, value))
    try:
        os.mkdir("item-%d" % index)
        os.chdir("item-%d" % index)
    except OSError:
        pass
    out = b"null"
    try:
        scope = {"__name__": "__main__", "__builtins__": __builtins__}
        exec(compile(item["source"], "<program>", "exec"), scope)
        values = []
        for probe in item["probes"]:
            try:
                values.append(json.dumps(plain(eval(probe, scope))))
            except BaseException:
                values.append(None)
        out = json.dumps(values).encode()
    except BaseException:
        pass
    try:
        view = memoryview(out)
        while view:
            view = view[os.write(3, view):]
    finally:
        os._exit(0)

class Running:
    def __init__(self, index, fd, deadline):
        self.index, self.fd, self.deadline = index, fd, deadline
        self.data, self.exited, self.failed = bytearray(), False, False

    def drain(self, cap):
        while not self.failed:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.data += chunk
            self.failed = len(self.data) > cap

def parse(data, probes, max_value):
    try:
        values = json.loads(data)
    except Exception:
        return None
    if not isinstance(values, list) or len(values) != probes:
        return None
    if not all(v is None or (isinstance(v, str) and len(v) <= max_value) for v in values):
        return None
    return values

def main():
    batch = json.loads(sys.stdin.buffer.read())
    result_fd = int(sys.argv[1])
    libc = ctypes.CDLL(None)
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    if os.getpid() != 1:
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come back to us
    items, timeout, workers = batch["items"], batch["timeout"], batch["workers"]
    limits, max_value = batch["limits"], batch["max_value"]
    cap = (max_value + 8) * max([len(item["probes"]) for item in items] + [1]) + 64
    results = [None] * len(items)
    pending = list(range(len(items)))[::-1]
    running = {}
    while pending or running:
        while pending and len(running) < workers:
            read_fd, write_fd = os.pipe()
            try:
                pid = os.fork()
            except OSError:  # out of processes for now: a program's leftovers hold them until they die
                os.close(read_fd)
                os.close(write_fd)
                time.sleep(0.01)
                break
            if pid == 0:
                child(items[pending[-1]], write_fd, limits, pending[-1])
            os.close(write_fd)
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass
            os.set_blocking(read_fd, False)
            running[pid] = Running(pending.pop(), read_fd, time.monotonic() + timeout)
        by_fd = {state.fd: state for state in running.values()}
        for fd in select.select(list(by_fd), [], [], 0.005)[0] if by_fd else ():
            by_fd[fd].drain(cap)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in running:
                running[pid].exited = True
        now = time.monotonic()
        for pid, state in list(running.items()):
            state.failed = state.failed or (not state.exited and now > state.deadline)
            if state.exited or state.failed:
                try:
                    os.killpg(pid, signal.SIGKILL)  # what it left behind in its group, or itself
                except OSError:
                    pass
            if state.exited:
                state.drain(cap)
                os.close(state.fd)
                if not state.failed:
                    results[state.index] = parse(bytes(state.data), len(items[state.index]["probes"]), max_value)
                del running[pid]
    out = memoryview(json.dumps({"results": results}).encode())
    while out:
        out = out[os.write(result_fd, out):]
    os.close(result_fd)

main()
'''


def run_tests(programs: Sequence[str], *, timeout_s: float = 3.0) -> list[bool]:
    """Run full scripts (say, prompt + completion + asserts); one passes when it runs to its end without
    raising within `timeout_s` seconds (`sys.exit` and `os._exit` count as failing). A script is trusted with
    its own verdict, though: code written to pass (an `__eq__` that always holds, a result forged on its own
    pipe) can fake it. Score adversarial code with `check_asserts`."""
    results = _run_batch([{"source": program, "probes": []} for program in programs], timeout_s)
    return [result is not None for result in results]


def check_asserts(sources: Sequence[str], tests: Sequence[Sequence[str]], *, timeout_s: float = 3.0) -> list[bool]:
    """Per source, whether it runs and every one of its tests holds. A test is ``assert EXPR == VALUE`` with
    VALUE a literal: EXPR is evaluated in the sandbox after the source, its value comes back as JSON (plain
    types only; tuples read as lists) and is compared with VALUE here, outside it.

    Raises:
        ValueError: a test is not of that form (the tests are trusted data: that is a bug of their author).
    """
    if len(sources) != len(tests):
        raise ValueError(f"{len(sources)} sources but {len(tests)} lists of tests")
    parsed = [[_split_assert(test) for test in item_tests] for item_tests in tests]
    items = [{"source": source, "probes": [probe for probe, _ in item]} for source, item in zip(sources, parsed)]
    results = _run_batch(items, timeout_s)
    return [values is not None and all(value is not None and _loads(value) == expected
                                       for value, (_, expected) in zip(values, item))
            for values, item in zip(results, parsed)]


def _split_assert(test: str) -> tuple[str, Any]:
    try:
        (node,) = ast.parse(test).body
    except (SyntaxError, ValueError):
        node = None
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        raise ValueError(f"not a test of the form `assert EXPR == VALUE`: {test!r}")
    try:
        expected = ast.literal_eval(node.test.comparators[0])
    except ValueError as error:
        raise ValueError(f"the expected value of {test!r} is not a literal") from error
    return ast.unparse(node.test.left), json.loads(json.dumps(expected))  # tuples as lists, as they come back


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _Unequal()


class _Unequal:
    def __eq__(self, other: object) -> bool:
        return False


def _run_batch(items: list[dict[str, Any]], timeout_s: float) -> list[list[str | None] | None]:
    """The runner's result per item: the probes' JSON texts (or None each), or None when the item failed."""
    if not items:
        return []
    workers = max(2, min(16, 2 * (os.cpu_count() or 1)))  # children spend part of their time starting and exiting
    batch_timeout = timeout_s * math.ceil(len(items) / workers) + _BATCH_SLACK_S
    limits = [("RLIMIT_CPU", math.ceil(timeout_s) + 1), ("RLIMIT_AS", MEMORY_BYTES), ("RLIMIT_NPROC", MAX_PROCESSES),
              ("RLIMIT_FSIZE", MAX_FILE_BYTES), ("RLIMIT_NOFILE", 64), ("RLIMIT_CORE", 0)]
    payload = json.dumps({"items": items, "timeout": timeout_s, "workers": workers, "limits": limits,
                          "max_value": MAX_VALUE_CHARS}).encode()
    argv, identity, binds = _command()
    read_fd, write_fd = os.pipe()
    try:
        with tempfile.TemporaryDirectory(prefix="ptb-gym-execution-") as workdir, tempfile.TemporaryFile() as errors:
            if identity is not None:  # the working directory without bubblewrap (in it, its own /tmp)
                os.chown(workdir, *identity)
            # `_enter_child` makes system calls only (no locks), as for the agent's sandbox: safe between fork
            # and exec with threads around.
            enter = functools.partial(sandbox._enter_child, [(resource.RLIMIT_CORE, 0)], (), identity, binds, b"")
            process = subprocess.Popen(
                [*argv, "-c", _RUNNER, str(write_fd)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=errors, pass_fds=(write_fd,), cwd=workdir, start_new_session=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"},
                preexec_fn=enter,  # noqa: PLW1509
            )
            os.close(write_fd)
            write_fd = -1
            threading.Thread(target=_feed, args=(process, payload), daemon=True).start()
            data = _read_until(read_fd, time.monotonic() + batch_timeout, limit=len(payload) + 64 * len(items)
                               + MAX_VALUE_CHARS * sum(len(item["probes"]) for item in items) + 1024)
            _kill(process)
            if not data:  # out of time, too much, or the runner died before it wrote anything
                errors.seek(0)
                message = errors.read()[-2000:].decode(errors="replace")
                warnings.warn(f"ptb-gym: the code sandbox returned no results (exit code {process.returncode}); "
                              f"every program of the batch counts as failing. {message}", stacklevel=3)
                return [None] * len(items)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    return _validated(data, items)


def _validated(data: bytes, items: list[dict[str, Any]]) -> list[list[str | None] | None]:
    try:
        results = json.loads(data)["results"]
    except (ValueError, KeyError, TypeError):
        results = None
    if not isinstance(results, list) or len(results) != len(items):
        return [None] * len(items)
    return [values if isinstance(values, list) and len(values) == len(item["probes"])
            and all(v is None or isinstance(v, str) for v in values) else None
            for values, item in zip(results, items)]


def _feed(process: subprocess.Popen, payload: bytes) -> None:
    try:
        process.stdin.write(payload)
        process.stdin.close()
    except (OSError, ValueError):
        pass  # the runner died or was killed: its results say so


def _read_until(fd: int, deadline: float, limit: int) -> bytes | None:
    """Everything written to `fd` until its end, or None if that takes past `deadline` or more than `limit`."""
    import select

    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    process.wait()


@functools.cache
def _command() -> tuple[list[str], tuple[int, int] | None, tuple[tuple[bytes, bytes], ...]]:
    """The runner's command line, the host identity it runs as and the binds made for it (see `sandbox`)."""
    python = str(Path(sys.executable).resolve())
    root = os.geteuid() == 0
    if not sandbox.bubblewrap_works():
        warnings.warn("ptb-gym: bubblewrap does not work here, so model-written code is scored in plain "
                      "subprocesses with resource limits but NO isolation: it can read and write what this "
                      "process can. Install bubblewrap (apt-get install bubblewrap).", stacklevel=4)
        identity = (EXECUTION_HOST_UID,) * 2 if root and sandbox._reachable_by_others(Path(python)) else None
        return [python, "-I", "-S"], identity, ()
    identity = (EXECUTION_HOST_UID,) * 2 if root and sandbox.host_identity()[0] != 0 else None
    binds: list[tuple[bytes, bytes]] = []
    args = ["bwrap", "--die-with-parent", "--unshare-all", "--unshare-user", *sandbox._bwrap_userns_flags(),
            "--uid", str(sandbox.SANDBOX_UID), "--gid", str(sandbox.SANDBOX_UID), "--hostname", "sandbox",
            "--new-session", "--cap-drop", "ALL", "--as-pid-1", "--proc", "/proc", "--dev", "/dev",
            "--size", str(TMP_BYTES), "--tmpfs", "/tmp", "--size", str(TMP_BYTES), "--tmpfs", "/dev/shm"]
    for path in sandbox._SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in sandbox._ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    etc = sandbox._sandbox_dir()
    args += ["--ro-bind", str(etc / "passwd"), "/etc/passwd", "--ro-bind", str(etc / "group"), "/etc/group"]
    prefixes = sandbox._python_prefixes()
    for index, prefix in enumerate(prefixes):
        source = prefix
        if identity is not None and not sandbox._reachable_by_others(prefix):
            source = sandbox._stage(prefix, f"execution-python-{index}")
            binds.append((os.fsencode(prefix), os.fsencode(source)))
        args += ["--ro-bind", str(source), str(prefix)]
    # The interpreter runs with -S; its site-packages (ptb-gym's own modules among them) are not shown at all.
    packages = {Path(p) for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                                  *site.getsitepackages())}
    for path in sorted(p for p in packages if p.is_dir() and any(sandbox._is_under(p, q) for q in prefixes)):
        args += ["--tmpfs", str(path), "--remount-ro", str(path)]
    args += ["--remount-ro", "/", "--chdir", "/tmp", "--", python, "-I", "-S"]
    return args, identity, tuple(binds)
