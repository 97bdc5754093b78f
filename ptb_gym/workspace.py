"""The episode's workspace: the one directory the agent may read and write.

Every path an agent names goes through `Workspace.resolve`, which refuses absolute paths, `..` that leaves
the root, and symlinks that point out of it, and reports the offending path in agent-readable words.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from ptb_gym.errors import ToolError


class Workspace:
    """A fresh directory for one episode."""

    def __init__(self, parent: str | os.PathLike | None = None, prefix: str = "ptb-episode-"):
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent)).resolve()

    def resolve(self, path: str, *, must_exist: bool = False) -> Path:
        """The absolute path of `path` inside the workspace, or a ToolError saying why it is refused."""
        if not isinstance(path, str) or not path.strip():
            raise ToolError("The path is empty: give a path relative to the workspace, e.g. 'data/train.jsonl'.")
        if "\x00" in path:
            raise ToolError("The path contains a NUL byte.")
        if os.path.isabs(path) or path.startswith("~"):
            raise ToolError(
                f"{path!r} is an absolute path: paths are relative to the workspace root "
                f"(e.g. 'data/train.jsonl'), and nothing outside the workspace can be reached."
            )
        candidate = self.root / path
        resolved = candidate.resolve()  # follows symlinks, so a link pointing out is caught here
        if resolved != self.root and self.root not in resolved.parents:
            raise ToolError(f"{path!r} points outside the workspace; only files under the workspace can be used.")
        if must_exist and not resolved.exists():
            raise ToolError(f"{path!r} does not exist. Use list_files to see what is in the workspace.")
        return resolved

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() or "."

    def install_readonly(self, source: Path, name: str) -> Path:
        """Copy a directory into the workspace and make it read-only (the base model)."""
        target = self.root / name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.pyc"))
        for path in [target, *target.rglob("*")]:
            mode = path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
            path.chmod(mode)
        return target

    def remove(self) -> None:
        """Delete the workspace, read-only parts included; safe to call twice."""
        if not self.root.exists():
            return
        for path in [self.root, *self.root.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(self.root, ignore_errors=True)
