"""The episode's workspace, and the one gate through which the env process touches it.

The env process runs as root outside the sandbox while the agent's code changes the workspace under it: a
background job can swap a directory for a link between any two system calls. So no path is ever checked and
then used by name. Every path is resolved beneath the workspace's root without following any link, in the
same system call that opens it: `openat2(root, path, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS)` where the kernel has it, else a walk of the path's components from directory
descriptors with `O_NOFOLLOW` (`resolver()` decides which, once). Whatever is found is first opened with
`O_PATH`, which has no side effects and never blocks (a FIFO or a device is never really opened), its type is
checked with `fstat`, and only a regular file or a directory is then reopened, through that descriptor, for
reading or writing. Every later step works on descriptors.

Guaranteed: no method here reads, writes, lists or creates anything outside the root, follows a link, blocks
on a special file, or reads more than its caller's limit; files the env creates belong to the workspace's
owner. NOT guaranteed: that a file's content is stable while the env reads it (the agent may write to it
at the same time; `copy_out` makes a private snapshot for that), and nothing about paths the env builds
itself from `root` (only the methods here are safe against the agent).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ptb_gym.errors import ToolError
from ptb_gym.text import human_bytes

READ_ONLY_DIRS = ("base_model",)
MAX_PATH_CHARS = 4096
MAX_CHECKPOINT_PATH_BYTES = 1024
"""Longest path inside a checkpoint: its snapshot lies under the env's own directories, and PATH_MAX is 4096."""
LINE_SCAN_BYTES = 64 * 1024**2
"""read_text_lines reads at most this far into a file to find a line or to count the lines."""
BINARY_SNIFF_BYTES = 8192
COPY_CHUNK = 1024**2
MAX_TREE_DEPTH = 64

_O_PATH = getattr(os, "O_PATH", 0o10000000)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_KIND_WORDS = {"link": "a link", "fifo": "a FIFO (named pipe)", "socket": "a socket", "device": "a device node",
               "other": "a special file", "dir": "a directory", "file": "a file"}

Kind = Literal["file", "dir", "link", "fifo", "socket", "device", "other", "truncated"]


# ------------------------------------------------------------------------------------------- resolution

class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on every Linux architecture (the syscall table was unified at 424)
_RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x02, 0x04, 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS


@functools.cache
def _libc_syscall():
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    return syscall


def _openat2(dir_fd: int, relative: str, flags: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, _RESOLVE)
    for _ in range(16):  # EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry
        fd = _libc_syscall()(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(relative)),
                             ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code not in (errno.EAGAIN, errno.EINTR):
            raise OSError(code, os.strerror(code), relative)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), relative)


def _walk_open(dir_fd: int, relative: str, flags: int, mode: int = 0) -> int:
    """The fallback: one component at a time, each opened from its parent's descriptor with O_NOFOLLOW."""
    *parents, last = relative.split("/")
    current = dir_fd
    try:
        for name in parents:
            following = os.open(name, _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            if current != dir_fd:
                os.close(current)
            current = following
        return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=current)
    finally:
        if current != dir_fd:
            os.close(current)


@functools.cache
def resolver() -> Literal["openat2", "walk"]:
    """How paths are resolved here: "openat2" where the kernel has it and no seccomp filter refuses it (ENOSYS,
    EPERM), else "walk" (the O_NOFOLLOW component walk). Both refuse the same paths."""
    try:
        root = os.open("/", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return "walk"
    try:
        os.close(_openat2(root, ".", _O_PATH | os.O_DIRECTORY))
        return "openat2"
    except (OSError, AttributeError):  # ENOSYS, EPERM (seccomp), EINVAL (an older struct), no libc syscall
        return "walk"
    finally:
        os.close(root)


_default_resolver = resolver  # (the constructor's argument of the same name hides the function there)


def _reopen(path_fd: int, flags: int) -> int:
    """Open what an O_PATH descriptor refers to (the same inode, whatever its name now points to)."""
    flags &= ~(os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
    return os.open(f"/proc/self/fd/{path_fd}", flags | os.O_CLOEXEC)


def kind_of(mode: int) -> str:
    """"file", "dir", "link", "fifo", "socket", "device" or "other" for an st_mode."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"


# ---------------------------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Entry:
    """One thing found by `Workspace.walk`."""

    relative: str
    """Its path relative to the workspace root (POSIX separators)."""
    kind: Kind
    """file, dir, link, fifo, socket, device or other; "truncated" marks where a limit stopped the walk."""
    size: int
    """Apparent size in bytes (st_size: a sparse file counts its full length); 0 for a truncated marker."""
    detail: str = ""
    """For a truncated marker: which limit stopped the walk there."""


class ReadBytes(bytes):
    """What `read_bytes` read: the bytes themselves, plus `size` (the file's size when opened) and `truncated`
    (True when the file held more than the limit from the offset on)."""

    size: int
    truncated: bool

    def __new__(cls, data: bytes, size: int, truncated: bool) -> ReadBytes:
        instance = super().__new__(cls, data)
        instance.size, instance.truncated = size, truncated
        return instance


@dataclass(frozen=True)
class TextLines:
    """A window of lines of a text file, as `read_text_lines` read it."""

    text: str
    """The lines shown, joined by newlines (no trailing newline)."""
    first_line: int
    """1-based number of the first line shown."""
    last_line: int
    """Number of the last line shown (first_line - 1 when none was)."""
    total_lines: int | None
    """Lines in the file, or None when counting them would read more than LINE_SCAN_BYTES."""
    size: int
    """The file's size in bytes."""
    cut: bool
    """True when max_bytes cut the window short inside a line."""


# -------------------------------------------------------------------------------------------- the gate

class Workspace:
    """The gate to one episode's workspace directory (which must exist; `disk.EpisodeDisk` creates it)."""

    def __init__(self, root: str | os.PathLike, *, resolver: Literal["openat2", "walk"] | None = None):
        """`root`: the existing workspace directory; `resolver`: force one way of resolving paths (tests)."""
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"The workspace {self.root} is not an existing directory.")
        self.resolver = resolver or _default_resolver()
        owner = self.root.stat()
        self._owner = (owner.st_uid, owner.st_gid) if os.geteuid() == 0 and owner.st_uid != 0 else None

    # ----------------------------------------------------------------------------------------- paths

    def check(self, path: str) -> str:
        """The normalised relative path ("." for the root), or a ToolError saying why `path` is refused:
        empty, NUL, absolute, `~`, too long, or going above the root with `..`. Touches nothing on disk."""
        if not isinstance(path, str) or not path.strip():
            raise ToolError("The path is empty: give a path relative to the workspace, e.g. 'data/train.jsonl'.")
        if "\x00" in path:
            raise ToolError(f"The path {path!r} contains a NUL byte: give a plain relative path.")
        if len(path) > MAX_PATH_CHARS:
            raise ToolError(f"The path is {len(path)} characters long; paths are limited to {MAX_PATH_CHARS}.")
        if os.path.isabs(path) or path.startswith("~"):
            raise ToolError(
                f"{path!r} is an absolute path: paths are relative to the workspace root "
                f"(e.g. 'data/train.jsonl'), and nothing outside the workspace can be reached."
            )
        normal = posixpath.normpath(path)
        if normal == ".." or normal.startswith("../"):
            raise ToolError(f"{path!r} goes above the workspace root with '..': paths are relative to the workspace "
                            "root, and nothing outside the workspace can be reached.")
        return normal

    def relative(self, path: str | os.PathLike) -> str:
        """`path` relative to the root: an absolute path under the root, or an agent path (checked)."""
        if isinstance(path, str) and not os.path.isabs(path):
            return self.check(path)
        return Path(path).relative_to(self.root).as_posix() or "."

    def _root_fd(self) -> int:
        return os.open(self.root, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def _open_beneath(self, dir_fd: int, relative: str, flags: int, mode: int = 0) -> int:
        if self.resolver == "openat2":
            return _openat2(dir_fd, relative, flags, mode)
        return _walk_open(dir_fd, relative, flags, mode)

    def _path_fd(self, relative: str) -> int:
        """An O_PATH descriptor of what `relative` names (a link itself if the last component is one)."""
        root_fd = self._root_fd()
        try:
            return self._open_beneath(root_fd, relative, _O_PATH | os.O_NOFOLLOW)
        except OSError as error:
            raise self._explain(relative, error) from None
        finally:
            os.close(root_fd)

    def _explain(self, relative: str, error: OSError) -> ToolError:
        """Turn a failed resolution into words for the agent (looking again only to name the culprit)."""
        code = error.errno
        if code in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
            culprit = self._first_problem(relative)
            if culprit is not None:
                where, kind = culprit
                return self._refusal(relative, where, kind)
        if code == errno.EXDEV:
            return ToolError(f"{relative!r} points outside the workspace; only files under the workspace can be used.")
        if code == errno.ENOENT:
            return ToolError(f"{relative!r} does not exist. Use list_files to see what is in the workspace.")
        if code in (errno.ELOOP, errno.ENOTDIR):
            return ToolError(f"{relative!r} changed while the env opened it (a link or a file appeared in it): "
                             "try again, and do not swap files for links.")
        if code == errno.EISDIR:
            return ToolError(f"{relative!r} is a directory; give a file path.")
        if code == errno.ENAMETOOLONG:
            return ToolError(f"{relative!r} has a name longer than the file system allows (255 bytes a name).")
        if code in (errno.EACCES, errno.EPERM):
            return ToolError(f"{relative!r} cannot be opened: permission denied.")
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return ToolError("The workspace is full (its disk quota is used up): delete files you no longer need "
                             "(old checkpoints, caches) and try again.")
        return ToolError(f"{relative!r} cannot be opened: {os.strerror(code) if code else error}.")

    def _first_problem(self, relative: str) -> tuple[str, str] | None:
        """The first component of `relative` that is not a directory (where one is needed), and its kind."""
        parts = relative.split("/")
        root_fd = self._root_fd()
        current = root_fd
        try:
            for index, name in enumerate(parts):
                try:
                    info = os.stat(name, dir_fd=current, follow_symlinks=False)
                except OSError:
                    return None
                kind = kind_of(info.st_mode)
                where = "/".join(parts[: index + 1])
                if kind == "link" or (kind != "dir" and index < len(parts) - 1):
                    return where, kind
                if index < len(parts) - 1:
                    try:
                        following = os.open(name, _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                            dir_fd=current)
                    except OSError:
                        return None
                    if current != root_fd:
                        os.close(current)
                    current = following
            return None
        finally:
            if current != root_fd:
                os.close(current)
            os.close(root_fd)

    @staticmethod
    def _refusal(relative: str, where: str, kind: str) -> ToolError:
        inside = "" if where == relative else f" (in {relative!r})"
        if kind == "link":
            return ToolError(f"{where!r}{inside} is a link; the env never follows links in the workspace, since a link "
                             "can point outside the workspace: copy what it points to instead (cp -rL), or give "
                             "the real path.")
        if where != relative:
            return ToolError(f"{where!r}{inside} is {_KIND_WORDS[kind]}, not a directory: fix the path.")
        return ToolError(f"{relative!r} is {_KIND_WORDS[kind]}; the env reads and writes only regular files and "
                         "lists only directories.")

    def _expect(self, relative: str, info: os.stat_result, expect: str | None) -> None:
        kind = kind_of(info.st_mode)
        if kind not in ("file", "dir"):
            raise self._refusal(relative, relative, kind)
        if expect == "file" and kind == "dir":
            raise ToolError(f"{relative!r} is a directory; give a file path (list_files shows the files in it).")
        if expect == "dir" and kind == "file":
            raise ToolError(f"{relative!r} is a file; give a directory.")
        if kind == "file" and info.st_nlink > 1:
            raise ToolError(f"{relative!r} has {info.st_nlink} names (hard links); the env only uses files with a "
                            "single name: copy it (cp) instead of linking it (ln).")

    # ----------------------------------------------------------------------------------------- opening

    def open_fd(self, path: str, flags: int = os.O_RDONLY, *, expect: Literal["file", "dir"] | None = "file",
                create_mode: int = 0o644) -> int:
        """A descriptor of the regular file (or directory) `path`, opened with `flags`, never through a link.

        `expect` names what must be there ("file", "dir", or None for either); FIFOs, sockets, devices and links
        are always refused, without blocking. With O_CREAT, missing parent directories are created beneath the
        root and a missing file is created (owned by the workspace's owner). The caller closes the descriptor.
        """
        relative = self.check(path)
        if expect == "dir":
            flags |= os.O_DIRECTORY
        if flags & os.O_CREAT:
            if relative == ".":
                raise ToolError("'.' is the workspace root, a directory; give a file path.")
            parent, name = posixpath.split(relative)
            dir_fd = self._make_dirs(parent or ".", relative)
            try:
                return self._open_in(dir_fd, name, relative, flags, expect, create_mode)
            finally:
                os.close(dir_fd)
        return self._reopen_checked(self._path_fd(relative), relative, flags, expect)

    def _reopen_checked(self, path_fd: int, relative: str, flags: int, expect: str | None) -> int:
        """The O_PATH descriptor `path_fd` (closed here) reopened with `flags`, once its kind is the expected one:
        a FIFO or a device is never really opened."""
        try:
            self._expect(relative, os.fstat(path_fd), expect)
            try:
                return _reopen(path_fd, flags)
            except OSError as error:
                raise self._explain(relative, error) from None
        finally:
            os.close(path_fd)

    def _open_in(self, dir_fd: int, name: str, relative: str, flags: int, expect: str | None, mode: int) -> int:
        """Open (creating it if needed) `name` in the directory `dir_fd`: one component, never followed."""
        for _ in range(8):
            try:
                path_fd = os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except FileNotFoundError:
                try:
                    fd = os.open(name, (flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC) & ~os.O_DIRECTORY,
                                 mode, dir_fd=dir_fd)
                except FileExistsError:
                    continue  # something appeared between the two calls: look again
                except OSError as error:
                    raise self._explain(relative, error) from None
                self._adopt(fd)
                return fd
            except OSError as error:
                raise self._explain(relative, error) from None
            if flags & os.O_EXCL:
                os.close(path_fd)
                raise ToolError(f"{relative!r} already exists.")
            return self._reopen_checked(path_fd, relative, flags, expect)
        raise ToolError(f"{relative!r} keeps changing while the env opens it: try again.")

    def _make_dirs(self, relative: str, full: str | None = None) -> int:
        """An O_RDONLY descriptor of the directory `relative`, creating missing directories one component at a
        time from the root's descriptor, never through a link. `full`: the path to name in errors."""
        current = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if relative == ".":
            return current
        done: list[str] = []
        try:
            for name in relative.split("/"):
                done.append(name)
                for _ in range(8):
                    try:
                        following = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                            dir_fd=current)
                        break
                    except FileNotFoundError:
                        try:
                            os.mkdir(name, 0o755, dir_fd=current)
                            created = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                              dir_fd=current)
                        except FileExistsError:
                            continue
                        except OSError as error:
                            raise self._explain(full or "/".join(done), error) from None
                        self._adopt(created)
                        following = created
                        break
                    except OSError as error:
                        raise self._explain(full or "/".join(done), error) from None
                else:
                    raise ToolError(f"{'/'.join(done)!r} keeps changing while the env creates it: try again.")
                os.close(current)
                current = following
            return current
        except BaseException:
            os.close(current)
            raise

    def _adopt(self, fd: int) -> None:
        """Give what the env created to the workspace's owner (the sandbox's identity), so the agent can use it."""
        if self._owner is not None:
            os.fchown(fd, *self._owner)

    def create_file(self, directory: str, name: str) -> int:
        """Create `directory/name` for the env to write (a job log, a run config), returning a write-only
        descriptor, without following any link the agent planted: `directory` must be a real directory (it is
        created if missing), and whatever was at `name` before (a file, a link) is replaced by a new file."""
        relative = self.check(f"{directory}/{name}")
        parent, base = posixpath.split(relative)
        try:
            dir_fd = self._make_dirs(parent or ".")
        except ToolError:
            raise ToolError(f"{parent} is a link or a file, but the env keeps its {parent} in the directory "
                            f"{parent}/ of the workspace: remove or rename it.") from None
        try:
            for _ in range(8):
                try:
                    os.unlink(base, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
                except OSError as error:
                    raise ToolError(f"{relative} cannot be replaced ({error.strerror}): remove it.") from None
                try:
                    fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                                 dir_fd=dir_fd)
                except FileExistsError:
                    continue
                except OSError as error:
                    raise self._explain(relative, error) from None
                self._adopt(fd)
                return fd
            raise ToolError(f"{relative} keeps reappearing while the env creates it: stop recreating it.")
        finally:
            os.close(dir_fd)

    # ----------------------------------------------------------------------------------------- reading

    def read_bytes(self, path: str, limit: int, *, offset: int = 0) -> ReadBytes:
        """At most `limit` bytes of the regular file `path` from `offset`; `.truncated` says whether there was
        more, `.size` gives the file's size. Never reads more than limit + 1 bytes."""
        fd = self.open_fd(path)
        try:
            size = os.fstat(fd).st_size
            data = _pread_exactly(fd, max(0, limit) + 1, max(0, offset))
        finally:
            os.close(fd)
        return ReadBytes(data[:limit], size, len(data) > limit)

    def read_text_lines(self, path: str, start_line: int, max_lines: int, max_bytes: int) -> TextLines:
        """Lines `start_line`.. of the text file `path`: at most `max_lines` lines and `max_bytes` bytes, having
        read at most LINE_SCAN_BYTES to find them and count the file's lines. A file with NUL bytes where it is
        read is refused as binary."""
        start_line, max_lines, max_bytes = max(1, start_line), max(1, max_lines), max(1, max_bytes)
        relative = self.check(path)
        fd = self.open_fd(relative)
        try:
            size = os.fstat(fd).st_size
            if b"\x00" in os.pread(fd, BINARY_SNIFF_BYTES, 0):
                raise ToolError(f"{relative!r} is a binary file ({human_bytes(size)}) and cannot be shown as text; "
                                "inspect it with run (e.g. `xxd file | head`).")
            offset, line = 0, 1
            while line < start_line:  # find where start_line begins, a chunk at a time
                if offset >= LINE_SCAN_BYTES:
                    raise ToolError(f"Line {start_line} of {relative!r} lies beyond its first {human_bytes(LINE_SCAN_BYTES)}, "
                                    f"which is as far as read_file looks: use run (e.g. `sed -n '{start_line},+"
                                    f"{max_lines}p' {relative}`).")
                chunk = os.pread(fd, COPY_CHUNK, offset)
                if not chunk:
                    break
                newlines = chunk.count(b"\n")
                if newlines < start_line - line:  # not there yet
                    line += newlines
                    offset += len(chunk)
                else:
                    rest = chunk.split(b"\n", start_line - line)[-1]
                    offset += len(chunk) - len(rest)
                    line = start_line
            if line < start_line:
                total = _count_lines(fd, size)
                return TextLines("", start_line, start_line - 1, total, size, False)
            window = os.pread(fd, max_bytes + 1, offset)
            if b"\x00" in window:
                raise ToolError(f"{relative!r} has NUL bytes from line {start_line} on: it is binary there; inspect "
                                "it with run (e.g. `xxd`).")
            at_end = offset + len(window) >= size and len(window) <= max_bytes
            pieces = window[:max_bytes].split(b"\n")
            if at_end and pieces and pieces[-1] == b"":
                pieces.pop()  # the file ends with a newline
            cut = not at_end and len(pieces) == 1  # one line longer than max_bytes: show it cut
            if not at_end and len(pieces) > 1:
                pieces.pop()  # the window ended inside this line: it is for the next read
            shown = pieces[:max_lines]
            text = "\n".join(piece.decode("utf-8", "replace").removesuffix("\r") for piece in shown)
            total = (start_line - 1 + len(pieces)) if at_end else _count_lines(fd, size)
            return TextLines(text, start_line, start_line + len(shown) - 1, total, size, cut)
        finally:
            os.close(fd)

    # ----------------------------------------------------------------------------------------- writing

    def write_bytes(self, path: str, data: bytes, *, append: bool = False) -> int:
        """Write (or append) `data` to the regular file `path`, creating it and missing parent directories
        beneath the root without following links; refuses the read-only base_model/. Returns the bytes written."""
        relative = self.check(path)
        top = relative.split("/")[0]
        if top in READ_ONLY_DIRS:
            raise ToolError(f"{top}/ is read-only: write your outputs elsewhere, e.g. checkpoints/.")
        fd = self.open_fd(relative, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC))
        try:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(fd, view)
                except OSError as error:
                    raise self._explain(relative, error) from None
                view = view[written:]
        finally:
            os.close(fd)
        return len(data)

    # ----------------------------------------------------------------------------------------- walking

    def walk(self, path: str = ".", *, max_depth: int = MAX_TREE_DEPTH, max_entries: int = 200_000,
             hidden: bool = True) -> Iterator[Entry]:
        """Everything under the directory `path`, depth first, each directory's entries sorted by name, never
        following links (links, FIFOs, sockets, devices are reported, not entered).

        Iterative, one open descriptor per level. A directory at depth `max_depth` (children of `path` are at
        depth 1) is not entered: an Entry(kind="truncated") for it says so, and the walk goes on. Past
        `max_entries` entries a final Entry(kind="truncated") is yielded and the walk stops. With
        hidden=False, names starting with "." are neither shown nor entered.
        """
        for entry, _, _ in self._walk(path, max_depth=max_depth, max_entries=max_entries, hidden=hidden):
            yield entry

    def _walk(self, path: str, *, max_depth: int, max_entries: int,
              hidden: bool = True) -> Iterator[tuple[Entry, int, str]]:
        """As `walk`, with the descriptor of each entry's directory and its name there (valid until the next
        item), so that callers open the very entry listed, relative to the directory that listed it."""
        start = self.check(path)
        top = self.open_fd(start, expect="dir")
        stack: list[tuple[int, str, int, Iterator[tuple[str, int, int]]]] = []
        count = 0
        try:
            stack.append((top, start, 1, iter(_list_dir(top, max_entries + 1, hidden))))
            while stack:
                dir_fd, directory, depth, children = stack[-1]
                child = next(children, None)
                if child is None:
                    os.close(dir_fd)
                    stack.pop()
                    continue
                name, mode, size = child
                relative = name if directory == "." else f"{directory}/{name}"
                count += 1
                if count > max_entries:
                    yield Entry(directory, "truncated", 0, f"more than {max_entries} entries"), dir_fd, ""
                    return
                kind = kind_of(mode)
                yield Entry(relative, kind, size), dir_fd, name
                if kind != "dir":
                    continue
                if depth >= max_depth:
                    yield Entry(relative, "truncated", 0, f"deeper than {max_depth} levels"), dir_fd, name
                    continue
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                except OSError:
                    yield Entry(relative, "truncated", 0, "changed while the env listed it"), dir_fd, name
                    continue
                stack.append((sub, relative, depth + 1, iter(_list_dir(sub, max_entries - count + 1, hidden))))
        finally:
            for dir_fd, *_ in stack:
                os.close(dir_fd)

    # ----------------------------------------------------------------------------------------- snapshots

    def list_tree(self, path: str, *, max_files: int, max_depth: int = 32) -> list[Entry]:
        """The entries of the directory tree `path` (a checkpoint), refused as `copy_out` refuses them (a link,
        FIFO, socket or device inside, more than `max_files` entries or `max_depth` levels), without copying:
        an early word for the agent. Only `copy_out` makes what it checked the thing used."""
        return [entry for entry, _, _ in self._checked_tree(self.check(path), max_files, max_depth)]

    def _checked_tree(self, top: str, max_files: int, max_depth: int) -> Iterator[tuple[Entry, int, str]]:
        for entry, dir_fd, name in self._walk(top, max_depth=max_depth, max_entries=max_files):
            inner = entry.relative if top == "." else entry.relative[len(top) + 1:]
            if entry.kind == "truncated":
                limit = f"{max_files} files" if "entries" in entry.detail else f"{max_depth} directory levels"
                raise ToolError(f"{top}/ is too large to use: it has more than {limit}. Keep only the model's "
                                "files in it (config, weights, tokenizer).")
            if entry.kind not in ("file", "dir"):
                what = {"link": "links", "fifo": "FIFOs", "socket": "sockets", "device": "device nodes"}
                raise ToolError(f"{top}/ contains {what.get(entry.kind, 'special files')} ({inner}); a checkpoint "
                                "must hold its own regular files: copy them in instead (cp -L).")
            if len(os.fsencode(inner)) > MAX_CHECKPOINT_PATH_BYTES:
                raise ToolError(f"{top}/ holds a path longer than {MAX_CHECKPOINT_PATH_BYTES} bytes ({inner[:60]}...); "
                                "keep only the model's files in it (config, weights, tokenizer).")
            yield entry, dir_fd, name

    def copy_out(self, path: str, destination: Path, *, max_bytes: int, max_files: int,
                 max_depth: int = 32) -> Path:
        """Copy the directory `path` (a checkpoint) to `destination` (a new directory outside the workspace):
        regular files and directories only, modes 0o644/0o755 (no setuid/setgid), at most `max_files` entries
        and `max_bytes` bytes (apparent sizes: a sparse file counts its full length). A link, FIFO, socket or
        device inside, or a limit passed, raises a ToolError naming it, and nothing is left at `destination`.
        What the env then reads is this copy: the agent cannot change it."""
        top = self.check(path)
        destination = Path(destination)
        destination.mkdir(mode=0o755)
        total = 0
        try:
            for entry, dir_fd, name in self._checked_tree(top, max_files, max_depth):
                inner = entry.relative if top == "." else entry.relative[len(top) + 1:]
                if entry.kind == "dir":
                    os.mkdir(destination / inner, 0o755)
                else:
                    total += self._copy_file(dir_fd, name, f"{top}/{inner}", destination / inner, max_bytes - total)
        except BaseException:
            remove_tree(destination)
            raise
        return destination

    def _copy_file(self, dir_fd: int, name: str, shown: str, target: Path, budget: int) -> int:
        try:
            path_fd = os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as error:
            raise self._explain(shown, error) from None
        try:
            info = os.fstat(path_fd)
            self._expect(shown, info, "file")
            too_big = ToolError(f"{shown.split('/')[0]}/ holds more than {human_bytes(budget)} of files; a checkpoint "
                                f"may hold at most that here ({shown} is {human_bytes(info.st_size)}).")
            if info.st_size > budget:
                raise too_big
            source = _reopen(path_fd, os.O_RDONLY)
        finally:
            os.close(path_fd)
        try:
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.fchmod(out, 0o644)
                copied = 0
                while True:  # up to budget + 1 bytes: a file growing while copied is caught too
                    sent = _copy_some(source, out, min(64 * COPY_CHUNK, budget + 1 - copied))
                    if not sent:
                        break
                    copied += sent
                    if copied > budget:
                        raise too_big
            finally:
                os.close(out)
        finally:
            os.close(source)
        return copied

    # ------------------------------------------------------------------------- whole-workspace snapshots

    def contents(self, *, max_entries: int = 200_000) -> Iterator[tuple[Entry, int, os.stat_result | str | None]]:
        """Everything in the workspace, in `walk` order, for a snapshot: with each regular file a read-only
        descriptor of the very file listed (the caller closes it) and its `fstat`, with each directory -1 and its
        `stat`, with each link -1 and its target, with anything else -1 and None. A file swapped for something else since it was listed is reported as what it
        now is. A walk limit passed raises a ToolError."""
        for entry, dir_fd, name in self._walk(".", max_depth=MAX_TREE_DEPTH, max_entries=max_entries):
            if entry.kind == "truncated":
                raise ToolError(f"the workspace is too large to snapshot: {entry.detail} ({entry.relative}).")
            if entry.kind == "link":
                try:
                    yield entry, -1, os.readlink(name, dir_fd=dir_fd)
                except OSError:
                    continue  # gone since it was listed
            elif entry.kind == "file":
                try:  # O_NONBLOCK: a FIFO swapped in since the listing must not block the open
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
                except OSError:
                    continue  # gone, or a link now: the next snapshot sees what is there
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    os.close(fd)
                    yield Entry(entry.relative, kind_of(info.st_mode), info.st_size), -1, None
                    continue
                yield entry, fd, info
            elif entry.kind == "dir":
                try:
                    yield entry, -1, os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
            else:
                yield entry, -1, None

    def clear(self) -> None:
        """Delete everything in the workspace (the root itself stays: it may be a mount point)."""
        root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in _clear_files(root):
                remove_tree(f"/proc/self/fd/{root}/{name}")
        finally:
            os.close(root)

    def make_dir(self, path: str, mode: int) -> None:
        """Create the directory `path` (and missing parents) with `mode`, owned by the workspace's owner."""
        fd = self._make_dirs(self.check(path))
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def make_link(self, path: str, target: str) -> None:
        """Create the symbolic link `path` -> `target` (the env never follows it), owned by the workspace's owner."""
        self._make_special(path, lambda base, dir_fd: os.symlink(target, base, dir_fd=dir_fd))

    def make_fifo(self, path: str) -> None:
        """Create the FIFO `path` (the env never opens it), owned by the workspace's owner."""
        self._make_special(path, lambda base, dir_fd: os.mkfifo(base, 0o644, dir_fd=dir_fd))

    def _make_special(self, path: str, make: Callable[[str, int], None]) -> None:
        parent, base = posixpath.split(self.check(path))
        dir_fd = self._make_dirs(parent or ".")
        try:
            make(base, dir_fd)
            if self._owner is not None:
                os.chown(base, *self._owner, dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(dir_fd)

    # ------------------------------------------------------------------------------ set-up and clean-up

    def install_readonly(self, source: Path, name: str) -> Path:
        """Copy a trusted directory into the workspace, read-only (the base model). Works by path: call it
        before any agent code runs."""
        relative = self.check(name)
        target = self.root / relative
        if os.path.lexists(target):
            raise FileExistsError(f"{target} exists already.")
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.pyc"))
        for directory, dirs, files in os.walk(target):
            for path in [directory, *(os.path.join(directory, f) for f in files)]:
                mode = os.lstat(path).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID
                                                  | stat.S_ISGID)
                if self._owner is not None:
                    os.chown(path, *self._owner, follow_symlinks=False)
                os.chmod(path, stat.S_IMODE(mode))
        return target


# ------------------------------------------------------------------------------------------- helpers

def _pread_exactly(fd: int, count: int, offset: int) -> bytes:
    """Up to `count` bytes from `offset` (a short read means the end of the file)."""
    parts, got = [], 0
    while got < count:
        chunk = os.pread(fd, min(count - got, COPY_CHUNK), offset + got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _copy_some(source: int, out: int, count: int) -> int:
    """Copy up to `count` bytes from `source`'s offset to `out`'s, in the kernel where it can; 0 at the end."""
    try:
        return os.sendfile(out, source, None, count)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    chunk = os.read(source, min(count, COPY_CHUNK))
    view = memoryview(chunk)
    while view:
        view = view[os.write(out, view):]
    return len(chunk)


def _count_lines(fd: int, size: int) -> int | None:
    if size > LINE_SCAN_BYTES:
        return None
    newlines, offset, last = 0, 0, b""
    while True:
        chunk = os.pread(fd, COPY_CHUNK, offset)
        if not chunk:
            break
        newlines += chunk.count(b"\n")
        offset += len(chunk)
        last = chunk[-1:]
        if offset > LINE_SCAN_BYTES:
            return None
    return newlines + (1 if last not in (b"", b"\n") else 0)


def _list_dir(dir_fd: int, limit: int, hidden: bool = True) -> list[tuple[str, int, int]]:
    """(name, st_mode, st_size) of at most `limit` entries of a directory, sorted by name; never follows links."""
    found = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if not hidden and entry.name.startswith("."):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since it was listed
            found.append((entry.name, info.st_mode, info.st_size))
            if len(found) >= limit:
                break
    found.sort()
    return found


def remove_tree(path: str | os.PathLike) -> None:
    """Delete `path` and everything under it, never following a link, iteratively (a tree 10,000 levels deep is
    fine: no recursion, one directory descriptor open at a time). Read-only directories are made writable
    first. Missing `path` is fine; raises OSError if something cannot be removed (a mount point, say)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            os.unlink(path)
            return
        raise
    stack: list[tuple[tuple[int, int], str, list[str]]] = []  # (dev, ino), name in its parent, subdirectories left
    name = ""
    try:
        while True:
            info = os.fstat(fd)
            stack.append(((info.st_dev, info.st_ino), name, _clear_files(fd)))
            while True:
                pending = stack[-1][2]
                if pending:
                    name = pending.pop()
                    try:
                        child = os.open(name, flags, dir_fd=fd)
                    except FileNotFoundError:
                        continue
                    except OSError as error:
                        if error.errno in (errno.ELOOP, errno.ENOTDIR):
                            os.unlink(name, dir_fd=fd)
                            continue
                        raise
                    os.close(fd)
                    fd = child
                    break
                _, done, _ = stack.pop()
                if not stack:
                    os.close(fd)
                    fd = -1
                    os.rmdir(path)
                    return
                parent = os.open("..", flags & ~os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = parent
                parent_info = os.fstat(fd)
                if (parent_info.st_dev, parent_info.st_ino) != stack[-1][0]:
                    raise OSError(errno.ESTALE, "a directory moved while it was being removed", str(path))
                os.rmdir(done, dir_fd=fd)
    finally:
        if fd >= 0:
            os.close(fd)


def _clear_files(dir_fd: int) -> list[str]:
    """Unlink everything but subdirectories in `dir_fd`; return the subdirectories' names."""
    try:
        os.fchmod(dir_fd, 0o700)
    except OSError:
        pass
    subdirs = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                try:
                    os.unlink(entry.name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
    return subdirs
