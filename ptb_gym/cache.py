"""ptb-gym's cache directory: what is prepared once per machine (models, benchmark data) and measured once per base
model (base scores), under `$PTB_GYM_CACHE`, by default `~/.cache/ptb-gym`.

A prepared directory is written into `<name>.partial-<pid>` and renamed into place (`building`): it appears whole or
not at all, a killed preparation leaves nothing half-made (the next one removes its partial directory), and two
processes preparing the same thing at once both end with one good copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("PTB_GYM_CACHE") or Path.home() / ".cache" / "ptb-gym").expanduser()


@contextlib.contextmanager
def building(target: Path, is_ready: Callable[[Path], bool]) -> Iterator[Path]:
    """A scratch directory that becomes `target` when the block ends without an error (and is removed if it
    raises). `is_ready(target)` tells a finished copy (another process may have finished first: its copy is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
        try:
            partial.rename(target)  # whole or absent
        except OSError:
            if not is_ready(target):
                raise
            shutil.rmtree(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _remove_abandoned(target: Path) -> None:
    """Delete the partial directories of `target` whose process is gone (killed mid-way)."""
    for partial in target.parent.glob(f"{target.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another process is preparing it now
        shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:  # it exists, under another user
        return True
    except (ProcessLookupError, OverflowError):
        return False
    return True
