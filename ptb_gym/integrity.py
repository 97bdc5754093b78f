"""Integrity checks that feed the reward, and what a check that fires reports.

They run in the verifier process when an episode is scored, before the submitted model is evaluated, and they
are deterministic: the same workspace and checkpoint give the same verdict, with no LLM judge. A check that fires
gives a `Flag` (which check, a message, the evidence); a flagged episode scores as the base model (uplift 0) with
`info["failure"]["kind"] == "integrity"` and the flags in `info["flags"]`. Passing checks leave their statistics in
`info["integrity"]`.

- **Contamination** (`contamination.py`): the workspace and every data file the train tool was given, normalised
  and unpacked, against the episode's secret test items; what cannot be scanned is flagged too.
- **Lineage** (`checkpoints.py`): the submission is the base model post-trained, every weight tensor compared.
- **Tampering** (here): every file of the ptb_gym core, task and tool packages is hashed when the env is imported
  and again by the verifier before it scores; any change flags the episode. The sandbox keeps these files out of
  the agent's sight and reach; this verifies it.

What these checks do not see: data generated inside a script and never written; encrypted test items (but the
test items are drawn in secret for each episode, so there is nothing to encrypt); paraphrased test items; a
submission that was post-trained from the base by someone else (the full tier's instruct models descend from
their base models too - the sandbox's lack of network is what keeps them out).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptb_gym.errors import IntegrityError

_HASH_ONLY_BELOW = 64 * 1024**2  # larger sealed files are fingerprinted by size and mtime


@dataclass(frozen=True)
class Flag:
    """A check that fired: which one, why in words, and the evidence (never the hidden test items)."""

    check: str
    """`contamination`, `lineage`, `tampering` or `checkpoint` (an unsafe file format)."""
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, "evidence": self.evidence}


class IntegrityViolation(IntegrityError):
    """An IntegrityError that says which check fired and on what evidence."""

    def __init__(self, check: str, message: str, evidence: dict[str, Any] | None = None):
        super().__init__(message)
        self.flag = Flag(check, message, evidence or {})


# ----------------------------------------------------------------------------------------------- tampering

def evaluation_files() -> list[Path]:
    """The files whose integrity the final score depends on: every file of the ptb_gym core package, of the task
    packages and of the tools (sealed by directory, so a new module is covered without naming it)."""
    import importlib.util

    import ptb_gym

    directories = [Path(ptb_gym.__file__).resolve().parent]
    for package in ("ptb_gym.envs", "ptb_gym.tools"):  # located, not imported (the tools import the episode)
        spec = importlib.util.find_spec(package)
        directories += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    files = []
    for directory in dict.fromkeys(d.resolve() for d in directories):
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def fingerprint(paths: Iterable[Path]) -> dict[str, str]:
    """sha256 of each file (size and mtime for files over 64 MiB); 'missing' for files that are gone."""
    prints = {}
    for path in paths:
        try:
            info = path.stat()
            if info.st_size >= _HASH_ONLY_BELOW:
                prints[str(path)] = f"size={info.st_size} mtime_ns={info.st_mtime_ns}"
            else:
                prints[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            prints[str(path)] = "missing"
    return prints


@functools.cache
def seal() -> dict[str, str]:
    """The fingerprint of the evaluation files, taken once per process (when the env module is imported)."""
    return fingerprint(evaluation_files())


def of_task(files: Mapping[str, str], task: str) -> dict[str, str]:
    """The entries of `files` a score on `task` depends on: all but the other task families' scores files, so that
    recording one family's scores (`ptb-gym calibrate`) never flags an episode of another that runs meanwhile
    (a family's code may serve another: gsm8k's train split is math's problems)."""
    family = task.rsplit("-", 1)[0]
    return {path: value for path, value in files.items()
            if not (Path(path).name.startswith("scores") and _family_of(Path(path)) not in (None, family))}


def _family_of(path: Path) -> str | None:
    """The task family whose package holds `path` (`.../envs/<family>/...` of the ptb_gym.envs package), or None."""
    import importlib.util

    from ptb_gym.registration import FAMILIES

    spec = importlib.util.find_spec("ptb_gym.envs")
    for root in (Path(p).resolve() for p in (spec.submodule_search_locations or [])) if spec else ():
        if path.is_relative_to(root) and len(parts := path.relative_to(root).parts) > 1 and parts[0] in FAMILIES:
            return parts[0]
    return None


def check_tampering(sealed: Mapping[str, str], task: str) -> tuple[Flag | None, dict[str, Any]]:
    """Compare the evaluation files of `task` with their seal: changed, removed or added files flag the episode."""
    now = of_task(fingerprint(evaluation_files() + [Path(p) for p in sealed]), task)
    changed = sorted(p for p in set(now) | set(sealed) if now.get(p) != sealed.get(p))
    stats = {"files": len(sealed), "changed": changed[:10]}
    if not changed:
        return None, {"files": len(sealed)}
    message = (f"the evaluation code or the task's data changed during the episode ({len(changed)} file(s), "
               f"e.g. {Path(changed[0]).name}); the score cannot be trusted")
    return Flag("tampering", message, stats), stats
