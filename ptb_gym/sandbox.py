"""Where agent commands run.

`BubblewrapSandbox` runs each command in fresh Linux namespaces (bubblewrap, Debian package `bubblewrap`):
no network, its own PID namespace (so every process it starts dies with it), the workspace the only writable
place, the Python installation read-only, a private /tmp, and only the system directories a Python program
needs. Resource limits (file size, open files, address space) are set with rlimits.

It does not protect against kernel exploits, nor does it limit CPU time or memory beyond the rlimits: it
keeps an agent from reading what it must not (the evaluation process's data lives elsewhere), from writing
outside its workspace, from reaching the network and from leaving processes behind.

`SubprocessSandbox` runs commands as plain subprocesses of the env, for trusted agents on machines without
bubblewrap; it warns when chosen.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from ptb_gym.errors import ConfigError

# Variables every agent process gets: offline Hugging Face libraries, unbuffered Python, no telemetry.
_BASE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PYTHONUNBUFFERED": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_MODE": "disabled",
    "LANG": "C.UTF-8",
}
_PASSED_THROUGH = ("PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE",
                   "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH", "PYTHONPATH")
_MAX_FILE_BYTES = 4 * 1024**3
_MAX_OPEN_FILES = 4096



class Sandbox:
    """Runs agent commands inside a workspace."""

    name = "none"

    def __init__(self, extra_env: Mapping[str, str] | None = None):
        self.extra_env = dict(extra_env or {})

    def wrap(self, argv: list[str], workspace: Path) -> list[str]:
        return argv

    def environment(self, workspace: Path) -> dict[str, str]:
        env = {key: os.environ[key] for key in _PASSED_THROUGH if key in os.environ}
        env.update(_BASE_ENV, HOME=str(workspace), TMPDIR=str(workspace / ".tmp"), **self.extra_env)
        return env

    def spawn(
        self,
        argv: list[str],
        workspace: Path,
        *,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = subprocess.STDOUT,
    ) -> subprocess.Popen:
        """Start `argv` in the workspace, in its own process group (so `kill` reaches all it started)."""
        (workspace / ".tmp").mkdir(exist_ok=True)
        return subprocess.Popen(
            self.wrap(argv, workspace),
            cwd=workspace,
            env=self.environment(workspace),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_apply_limits,
        )


class SubprocessSandbox(Sandbox):
    """Plain subprocesses: no isolation at all. For trusted agents only."""

    name = "none"

    def __init__(self, extra_env: Mapping[str, str] | None = None, *, quiet: bool = False):
        super().__init__(extra_env)
        if not quiet:
            warnings.warn(
                "ptb-gym runs agent commands WITHOUT a sandbox (sandbox='none'): they can read and write "
                "anything this process can, including outside the workspace. Use it only for trusted agents; "
                "install bubblewrap (apt-get install bubblewrap) for the isolated default.",
                stacklevel=3,
            )


class BubblewrapSandbox(Sandbox):
    """Linux namespaces through bubblewrap: no network, read-only system, the workspace writable."""

    name = "bwrap"

    def __init__(self, extra_env: Mapping[str, str] | None = None, readonly_paths: list[Path] | None = None):
        super().__init__(extra_env)
        if not bubblewrap_works():
            raise ConfigError(
                "sandbox='bwrap' was asked for but bubblewrap does not work here "
                f"({_bwrap_failure() or 'bwrap not found'}). Install it with `apt-get install bubblewrap`, "
                "or pass sandbox='none' for trusted agents."
            )
        self.readonly_paths = sorted({*_python_paths(), *(readonly_paths or [])})

    def wrap(self, argv: list[str], workspace: Path) -> list[str]:
        args = ["bwrap", "--die-with-parent", "--unshare-all", "--new-session", "--cap-drop", "ALL"]
        for system_dir in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"):
            args += ["--ro-bind-try", system_dir, system_dir]
        for path in self.readonly_paths:
            args += ["--ro-bind-try", str(path), str(path)]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        args += ["--bind", str(workspace), str(workspace), "--chdir", str(workspace)]
        return [*args, "--", *argv]


def make_sandbox(kind: str, extra_env: Mapping[str, str] | None = None) -> Sandbox:
    """The sandbox for an env's `sandbox` option: `auto` is bubblewrap when it works, else plain subprocesses."""
    if kind == "bwrap" or (kind == "auto" and bubblewrap_works()):
        return BubblewrapSandbox(extra_env)
    if kind in ("none", "auto"):
        return SubprocessSandbox(extra_env)
    raise ConfigError(f"Unknown sandbox {kind!r}: use 'auto', 'bwrap' or 'none'.")


@functools.cache
def bubblewrap_works() -> bool:
    return _bwrap_failure() == ""


@functools.cache
def _bwrap_failure() -> str | None:
    """'' when bubblewrap can start a namespaced process here, else why not (None: not installed)."""
    if shutil.which("bwrap") is None:
        return None
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
        capture_output=True, text=True, timeout=30,
    )
    return "" if probe.returncode == 0 else probe.stderr.strip() or f"exit code {probe.returncode}"


def _python_paths() -> set[Path]:
    """The Python installation and the directories ptb_gym is imported from (editable installs included)."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(Path(sysconfig.get_paths()[key]))
    import ptb_gym.envs
    import ptb_gym.tools

    for module in (sys.modules["ptb_gym"], ptb_gym.envs, ptb_gym.tools):
        paths.add(Path(module.__file__).resolve().parent)
    return {path for path in paths if path.exists()}


def _apply_limits() -> None:
    """Runs in the child before exec: limits that bound the damage a runaway command can do."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_FILE_BYTES, _MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = min(_MAX_OPEN_FILES, hard) if hard != resource.RLIM_INFINITY else _MAX_OPEN_FILES
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
