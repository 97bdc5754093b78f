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

    def resolve(self, path: str, *, must_exist: bool = False, expect: str | None = None) -> Path:
        """The absolute path of `path` inside the workspace, or a ToolError saying why it is refused.

        `expect="file"` or `"dir"` also requires an existing file or directory.
        """
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
        if (must_exist or expect) and not resolved.exists():
            raise ToolError(f"{path!r} does not exist. Use list_files to see what is in the workspace.")
        if expect == "file" and not resolved.is_file():
            raise ToolError(f"{path!r} is a directory; give a file path (list_files shows the files in it).")
        if expect == "dir" and not resolved.is_dir():
            raise ToolError(f"{path!r} is a file; give a directory.")
        return resolved

    def create_file(self, directory: str, name: str) -> int:
        """Create `directory/name` in the workspace for the env to write (a job log), returning a write-only
        descriptor, without following any link the agent planted: `directory` must be a real directory, and
        whatever was at `name` before (a file, a link) is replaced by a new file."""
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                os.mkdir(directory, dir_fd=root_fd)
            except FileExistsError:
                pass
            try:
                dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
            except OSError:
                raise ToolError(f"{directory} is a link or a file, but the env keeps its {directory} in the directory "
                                f"{directory}/ of the workspace: remove or rename it.") from None
            try:
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
                except OSError as error:
                    raise ToolError(f"{directory}/{name} cannot be replaced ({error.strerror}): remove it.") from None
                try:
                    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
                except FileExistsError:
                    raise ToolError(f"{directory}/{name} reappeared while the env created it: try again.") from None
            finally:
                os.close(dir_fd)
        finally:
            os.close(root_fd)

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
