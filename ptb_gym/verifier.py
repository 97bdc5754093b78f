"""The verifier: every model the agent made is loaded and scored here, in a separate process with its own limits.

The env process never imports torch and never parses a checkpoint: a corrupt, huge or malicious submission can
crash, exhaust or stall only the verifier, which the env then kills and reports (PostTrainBench moved to a separate
verifier container for the same reason). One verifier process serves an episode: it starts (about 3 s of imports
on a CPU) when the agent first trains or evaluates, or at the final scoring, and answers requests over a pipe:

- `evaluate`: a checkpoint snapshot on the dev split under every harness (lineage checked), with a few failing
  items and the model's completions as feedback;
- `final`: the tampering check, the contamination scan of the workspace and of every data file the train tool was
  given, then the checkpoint snapshot on the hidden test split, which the verifier draws from the episode's
  secret seed (the seed travels over the pipe; it is never in a file, an argument or the environment).

Checkpoints arrive as snapshots the env copied out of the workspace through its path gate (regular files only,
bounded), so what is checked is what is loaded. The verifier reads the workspace only through the same gate.

Limits: RLIMIT_AS (on machines without a GPU; CUDA reserves huge address ranges) bounds its memory, the env bounds
each request's time and kills it past that, and it dies with the env (PR_SET_PDEATHSIG). Failures say at which
stage they happened: a death while the verifier was reading the agent's files (`scan`, `load`) is the agent's;
anything else is infrastructure.

    python -m ptb_gym.verifier [BASE_MODEL]   # JSON lines on stdin/stdout; started by `Verifier`

With BASE_MODEL (the trusted base model, never an agent's file), it loads that model once and generates a token
before it says it is ready, so that the first request does not pay for the lazy imports and first kernels (about
1.5 s on a CPU); the verifier starts while the first training job runs, so this costs the episode nothing.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("ptb_gym")

AGENT_STAGES = ("scan", "load")
"""Stages in which the verifier reads what the agent made: a crash or time-out there is the agent's doing."""
MAX_RESPONSE_BYTES = 64 * 1024**2
READY = "ready"


class VerifierFailure(Exception):
    """The verifier died, timed out or answered nonsense; `stage` says what it was doing then."""

    def __init__(self, message: str, stage: str | None):
        super().__init__(message)
        self.stage = stage

    @property
    def agent_caused(self) -> bool:
        return self.stage in AGENT_STAGES


class Verifier:
    """The env's handle on its verifier process (started on first use, restarted after a failure)."""

    def __init__(self, log_path: Path, *, warm_model: Path | None = None, memory_bytes: int | None = None,
                 startup_timeout_s: float = 300.0, command: list[str] | None = None):
        self.log_path = log_path
        self.command = command or [*_own_module_command("ptb_gym.verifier"),
                                   *([str(warm_model)] if warm_model else [])]
        self.memory_bytes = memory_bytes
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen | None = None
        self._buffer = b""
        self._ready = False
        self._requests = 0
        self._deadline = 0.0
        self._cpu_s_closed = 0.0  # CPU time of the verifier processes already closed

    def warm(self, prepare: dict[str, Any] | None = None) -> None:
        """Start the process if it is not running, without waiting for it (its imports overlap other work), and
        queue `prepare`, a request whose answer nobody waits for (work the verifier may do ahead of time)."""
        if self._process is None or self._process.poll() is not None:
            self._start()
            if prepare is not None:
                assert self._process is not None and self._process.stdin is not None
                self._process.stdin.write(json.dumps({"id": 0, **prepare}).encode() + b"\n")
                self._process.stdin.flush()

    def request(self, payload: dict[str, Any], timeout_s: float,
                progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Send one request and return its result; VerifierFailure if the process fails or runs past `timeout_s`
        (plus its startup, if it had to start)."""
        self.warm()
        assert self._process is not None and self._process.stdin is not None
        if not self._ready:
            self._read_until(lambda message: message.get("status") == READY, self.startup_timeout_s,
                             lambda: "startup")
            self._ready = True
        self._requests += 1
        request_id = self._requests
        try:
            self._process.stdin.write(json.dumps({"id": request_id, **payload}).encode() + b"\n")
            self._process.stdin.flush()
        except OSError as error:
            self._fail(f"the verifier process could not be reached ({error})", "startup")
        stages: list[str] = []

        def answered(message: dict[str, Any]) -> bool:
            if message.get("id") != request_id:
                return False
            if "stage" in message:
                if stages and stages[-1] in AGENT_STAGES and message["stage"] not in AGENT_STAGES:
                    # The agent's stages do not eat the trusted ones' time (a time-out there would be blamed on
                    # the env): the deadline starts again, so a request waits at most twice `timeout_s`.
                    self._deadline = time.monotonic() + timeout_s
                stages.append(message["stage"])
                if progress:
                    progress(message)
                return False
            return "result" in message

        message = self._read_until(answered, timeout_s, lambda: stages[-1] if stages else "request")
        return message["result"]

    def cpu_seconds(self) -> float:
        """CPU time the verifier processes have used so far (theirs and their ended children's: the code
        scorer's sandboxes), for the `cpu` budget's charge of an `evaluate`."""
        process = self._process
        return self._cpu_s_closed + (process_cpu_seconds(process.pid) if process is not None else 0.0)

    def close(self) -> None:
        """Kill the process (idempotent)."""
        if self._process is not None:
            self._cpu_s_closed += process_cpu_seconds(self._process.pid)
            _kill(self._process)
            self._process = None
        self._ready, self._buffer = False, b""

    # ---------------------------------------------------------------------------------------------- internals

    def _start(self) -> None:
        self.close()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, start_new_session=True, env=_environment(),
                preexec_fn=_limits(self.memory_bytes))

    def _read_until(self, done: Callable[[dict[str, Any]], bool], timeout_s: float,
                    current: Callable[[], str]) -> dict[str, Any]:
        """Read messages until `done` accepts one; `current()` names the stage a failure is blamed on."""
        assert self._process is not None and self._process.stdout is not None
        self._deadline = time.monotonic() + timeout_s
        fd = self._process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self._buffer:
                    line, self._buffer = self._buffer.split(b"\n", 1)
                    try:
                        message = json.loads(line)
                    except ValueError:
                        self._fail(f"the verifier wrote a line that is not JSON: {line[:200]!r}", current())
                    if isinstance(message, dict) and "failure" in message and message.get("id") != 0:
                        self._fail(message["failure"], current())  # a queued `prepare` (id 0) may fail alone
                    if isinstance(message, dict) and done(message):
                        return message
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self._fail(f"the verifier took longer than {timeout_s:.0f} s (stage {current()})", current())
                if not selector.select(min(left, 1.0)):
                    if self._process.poll() is not None:
                        self._fail(self._death(), current())
                    continue
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    self._process.wait(timeout=10)
                    self._fail(self._death(), current())
                self._buffer += chunk
                if len(self._buffer) > MAX_RESPONSE_BYTES:
                    self._fail("the verifier's answer is too large", current())

    def _death(self) -> str:
        code = self._process.returncode if self._process else None
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL or code == -signal.SIGSEGV:
            why += " (out of memory, or a crash)"
        return f"the verifier process died ({why}); its log: {self.log_path}"

    def _fail(self, message: str, stage: str | None):
        self.close()
        raise VerifierFailure(message, stage)


def process_cpu_seconds(pid: int) -> float:
    """User + system time of a process (all its threads) and of its children it has reaped; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold anything
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _own_module_command(module: str) -> list[str]:
    """`python -m module`, run from the ptb_gym this process imported. `-m` would put the working directory first
    on sys.path, so a source checkout there shadows an installed ptb_gym (its `envs` lives elsewhere: the
    verifier died at startup on the GPU machine, run from the checkout) and any stray `torch.py` would be
    imported: the verifier must run the code the env trusts, not whatever the directory holds."""
    import ptb_gym

    root = str(Path(ptb_gym.__file__).resolve().parent.parent)
    return [sys.executable, "-c", f"import runpy, sys; root = {root!r}; "  # '' (the directory) out, root in once
                                  "sys.path[0:1] = [] if root in sys.path[1:] else [root]; "
                                  f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    env.setdefault("GOMP_SPINCOUNT", "10000")  # see ptb_gym/training.py
    return env


def _limits(memory_bytes: int | None) -> Callable[[], None]:
    import glob
    import resource

    limit = None if glob.glob("/dev/nvidia[0-9]*") else memory_bytes or _default_memory_bytes()
    libc = _libc()

    def enter() -> None:  # between fork and exec: system calls only
        if libc is not None:
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the env
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return enter


def _libc():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _default_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for stream in (process.stdin, process.stdout):
        try:
            if stream:
                stream.close()
        except OSError:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        logger.warning("the verifier process %d did not exit after SIGKILL", process.pid)


# --------------------------------------------------------------------------------------- the verifier process

def main() -> None:
    # The protocol owns the real stdout; whatever libraries print goes to stderr (the verifier's log).
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(message: dict[str, Any]) -> None:
        from ptb_gym.recording import to_jsonable

        protocol.write(json.dumps(to_jsonable(message), allow_nan=False) + "\n")
        protocol.flush()

    import torch  # noqa: F401 - the imports are the startup cost; pay them before saying ready
    import transformers  # noqa: F401

    from ptb_gym.scoring import handle, warm_up

    if len(sys.argv) > 1:
        warm_up(Path(sys.argv[1]))

    send({"status": READY})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = handle(request, lambda stage: send({"id": request["id"], "stage": stage}))
        except Exception as error:  # noqa: BLE001 - reported to the env, which classifies it by stage
            import traceback

            traceback.print_exc()
            send({"id": request.get("id"), "failure": f"{type(error).__name__}: {error}"})
            continue
        send({"id": request["id"], "result": result})


if __name__ == "__main__":
    main()
