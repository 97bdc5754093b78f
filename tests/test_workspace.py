"""The path gate (`ptb_gym.workspace`) on its own: every way a path could lead the env outside the workspace,
block it, or make it read without bound. Each test runs with both resolvers (openat2 and the O_NOFOLLOW walk)."""

from __future__ import annotations

import os
import socket
import stat
import time
import uuid
from pathlib import Path

import pytest

from ptb_gym import workspace as gate
from ptb_gym.errors import ToolError
from ptb_gym.workspace import Workspace, remove_tree
from tests.conftest import no_blocking, peak_rss_growth

RESOLVERS = ["openat2", "walk"] if gate.resolver() == "openat2" else ["walk"]


@pytest.fixture(params=RESOLVERS)
def ws(request, tmp_path) -> Workspace:
    root = tmp_path / "workspace"
    root.mkdir()
    return Workspace(root, resolver=request.param)


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory outside the workspace with a canary file of unique content."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "canary.txt").write_text(f"CANARY {uuid.uuid4().hex}\n")
    return directory


def refused(call, *words: str) -> str:
    with pytest.raises(ToolError) as caught:
        call()
    message = str(caught.value)
    for word in words:
        assert word in message, message
    return message


def every_access(ws: Workspace, path: str):
    """Each way the gate opens a path, as zero-argument calls."""
    return [lambda: ws.open_fd(path, expect=None), lambda: ws.read_bytes(path, 100),
            lambda: ws.read_text_lines(path, 1, 10, 1000), lambda: ws.write_bytes(path, b"x"),
            lambda: list(ws.walk(path)), lambda: ws.copy_out(path, ws.root.parent / f"copy-{uuid.uuid4().hex}",
                                                             max_bytes=10**6, max_files=100)]


# ------------------------------------------------------------------------------------------------ check

@pytest.mark.parametrize("path, words", [
    ("", ["empty"]), ("   ", ["empty"]), ("a\x00b", ["NUL"]), ("/etc/passwd", ["absolute", "workspace"]),
    ("~/x", ["absolute"]), ("..", ["above", "workspace"]), ("../x", ["above"]), ("a/../../x", ["above"]),
    ("a/" * 3000, ["long"]),
])
def test_check_refuses_paths_that_leave_or_are_not_paths(ws, path, words):
    refused(lambda: ws.check(path), *words)
    for call in every_access(ws, path):
        refused(call)


def test_check_normalises(tmp_path):
    ws = Workspace(tmp_path)
    assert ws.check("a/./b//c") == "a/b/c" and ws.check("a/../b") == "b" and ws.check(".") == "."
    with pytest.raises(ToolError):
        ws.check(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ links

@pytest.mark.parametrize("layout, path", [
    ("link -> outside dir", "link/canary.txt"),
    ("link -> outside file", "link"),
    ("dir/link -> outside dir", "dir/link/canary.txt"),
    ("link -> inside dir", "inside_link/file.txt"),
    ("link -> /proc/self/root", "magic/etc/hostname"),
    ("link -> /proc/self/cwd", "cwd"),
    ("dangling link", "dangling"),
])
def test_links_in_any_component_are_refused(ws, outside, layout, path):
    root = ws.root
    (root / "dir").mkdir()
    (root / "real").mkdir()
    (root / "real" / "file.txt").write_text("inside")
    os.symlink(outside, root / "link") if "file" not in layout else os.symlink(outside / "canary.txt", root / "link")
    os.symlink(outside, root / "dir" / "link")
    os.symlink("real", root / "inside_link")
    os.symlink("/proc/self/root", root / "magic")
    os.symlink("/proc/self/cwd", root / "cwd")
    os.symlink(outside / "new.txt", root / "dangling")
    canary = (outside / "canary.txt").read_bytes()
    for call in every_access(ws, path):
        message = refused(call, "is a link", "outside the workspace")
        assert "CANARY" not in message
    assert (outside / "canary.txt").read_bytes() == canary and not (outside / "new.txt").exists()
    assert sorted(os.listdir(outside)) == ["canary.txt"]


def test_a_file_swapped_for_a_link_between_calls(ws, outside):
    (ws.root / "data.txt").write_text("mine")
    assert ws.read_bytes("data.txt", 100) == b"mine"
    os.unlink(ws.root / "data.txt")
    os.symlink(outside / "canary.txt", ws.root / "data.txt")
    refused(lambda: ws.read_bytes("data.txt", 100), "is a link")
    refused(lambda: ws.write_bytes("data.txt", b"overwrite"), "is a link")
    assert (outside / "canary.txt").read_text().startswith("CANARY")


def test_an_open_directory_stays_the_one_opened(ws, outside):
    (ws.root / "d").mkdir()
    (ws.root / "d" / "mine.txt").write_text("mine")
    fd = ws.open_fd("d", expect="dir")
    try:
        os.rename(ws.root / "d", ws.root / "d-moved")
        os.symlink(outside, ws.root / "d")
        assert os.listdir(fd) == ["mine.txt"]
    finally:
        os.close(fd)


def test_hard_links_are_refused(ws, outside):
    os.link(outside / "canary.txt", ws.root / "hard.txt")
    refused(lambda: ws.read_bytes("hard.txt", 100), "hard links")
    refused(lambda: ws.write_bytes("hard.txt", b"x"), "hard links")
    assert (outside / "canary.txt").read_text().startswith("CANARY")


def test_create_file_replaces_a_planted_link(ws, outside):
    (ws.root / "logs").mkdir()
    os.symlink(outside / "victim.log", ws.root / "logs" / "job-1.log")
    fd = ws.create_file("logs", "job-1.log")
    os.write(fd, b"log")
    os.close(fd)
    assert not (outside / "victim.log").exists() and (ws.root / "logs" / "job-1.log").read_bytes() == b"log"
    os.unlink(ws.root / "logs" / "job-1.log")
    os.rmdir(ws.root / "logs")
    os.symlink(outside, ws.root / "logs")
    refused(lambda: ws.create_file("logs", "job-2.log"), "link or a file")
    assert sorted(os.listdir(outside)) == ["canary.txt"]


# ------------------------------------------------------------------------------------------ special files

def test_fifos_sockets_and_devices_are_refused_without_blocking(ws, tmp_path):
    os.mkfifo(ws.root / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(ws.root / "sock"))
    kinds = {"fifo": "FIFO", "sock": "socket"}
    if os.geteuid() == 0:
        os.mknod(ws.root / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # /dev/zero
        kinds["zero"] = "device"
    try:
        with no_blocking():
            for name, word in kinds.items():
                for call in every_access(ws, name):
                    refused(call, word)
                for call in every_access(ws, f"{name}/x"):  # and as a component of a path
                    refused(call, "not a directory")
            (ws.root / "ck").mkdir()
            os.mkfifo(ws.root / "ck" / "weights.safetensors")
            refused(lambda: ws.copy_out("ck", tmp_path / "snap", max_bytes=10**6, max_files=10), "FIFOs",
                    "weights.safetensors")
            assert not (tmp_path / "snap").exists()
        entries = {e.relative: e.kind for e in ws.walk()}
        assert entries["fifo"] == "fifo" and entries["sock"] == "socket"
        assert entries.get("zero", "device") == "device"
    finally:
        server.close()


# -------------------------------------------------------------------------------------------- bounded reads

def test_a_4_gb_sparse_file_is_read_in_bounded_memory_and_time(ws):
    big = ws.root / "big.bin"
    with open(big, "wb") as out:
        out.write(b"line one\nline two\n" * 1000)
        out.truncate(4 * 1024**3)
    started = time.monotonic()
    results = {}

    def read():
        results["head"] = ws.read_bytes("big.bin", 1024)
        results["window"] = ws.read_text_lines("big.bin", 1, 3, 10_000)
        results["far"] = refused(lambda: ws.read_text_lines("big.bin", 10**9, 3, 10_000), "beyond", "run")

    growth, _ = peak_rss_growth(read)
    assert time.monotonic() - started < 5 and growth < 64 * 1024**2, growth
    head, window = results["head"], results["window"]
    assert len(head) == 1024 and head.truncated and head.size == 4 * 1024**3
    assert window.text == "line one\nline two\nline one" and window.total_lines is None and not window.cut
    (ws.root / "zeros.bin").write_bytes(b"\x00" * 100)
    refused(lambda: ws.read_text_lines("zeros.bin", 1, 3, 1000), "binary")


def test_read_text_lines_windows(ws):
    ws.write_bytes("t.txt", "".join(f"line {i}\r\n" for i in range(1, 101)).encode())
    window = ws.read_text_lines("t.txt", 10, 3, 10_000)
    assert window.text == "line 10\nline 11\nline 12" and (window.first_line, window.last_line) == (10, 12)
    assert window.total_lines == 100
    assert ws.read_text_lines("t.txt", 99, 10, 10_000).text == "line 99\nline 100"
    past = ws.read_text_lines("t.txt", 500, 10, 10_000)
    assert past.last_line < past.first_line and past.total_lines == 100
    ws.write_bytes("long.txt", b"x" * 100_000 + b"\nshort\n")
    long = ws.read_text_lines("long.txt", 1, 10, 1000)
    assert long.cut and len(long.text) == 1000 and long.total_lines == 2
    ws.write_bytes("e.txt", b"")
    assert ws.read_text_lines("e.txt", 1, 10, 100).total_lines == 0
    assert ws.read_bytes("t.txt", 7, offset=8) == b"line 2\r"


def test_read_bytes_limits(ws):
    ws.write_bytes("a.txt", b"0123456789")
    assert ws.read_bytes("a.txt", 10) == b"0123456789" and not ws.read_bytes("a.txt", 10).truncated
    cut = ws.read_bytes("a.txt", 4)
    assert cut == b"0123" and cut.truncated and cut.size == 10 and isinstance(cut, bytes)


# ------------------------------------------------------------------------------------------------ writing

def test_write_bytes_creates_parents_and_refuses_base_model(ws):
    assert ws.write_bytes("a/b/c.txt", b"hi") == 2
    assert ws.write_bytes("a/b/c.txt", b" there", append=True) == 6
    assert (ws.root / "a" / "b" / "c.txt").read_bytes() == b"hi there"
    refused(lambda: ws.write_bytes("base_model/config.json", b"{}"), "read-only")
    refused(lambda: ws.write_bytes("a/b", b"x"), "directory")
    refused(lambda: ws.write_bytes("a/b/c.txt/d", b"x"), "not a directory")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand files to another owner")
def test_what_the_env_creates_belongs_to_the_workspace_owner(tmp_path):
    root = tmp_path / "owned"
    root.mkdir()
    os.chown(root, 12345, 12345)
    ws = Workspace(root)
    ws.write_bytes("d/e/f.txt", b"x")
    os.close(ws.create_file("logs", "job-1.log"))
    for path in ("d", "d/e", "d/e/f.txt", "logs", "logs/job-1.log"):
        assert (root / path).stat().st_uid == 12345, path


# ------------------------------------------------------------------------------------------------ walking

def test_walk_kinds_order_and_limits(ws):
    for name in ("b", "a", "c/d", "c/e/f", ".hidden/x"):
        ws.write_bytes(f"{name}.txt" if "/" not in name else name, b"12345")
    os.symlink("/etc", ws.root / "l")
    entries = list(ws.walk())
    assert [e.relative for e in entries] == [".hidden", ".hidden/x", "a.txt", "b.txt", "c", "c/d", "c/e",
                                             "c/e/f", "l"]
    assert {e.relative: e.kind for e in entries}["l"] == "link" and entries[2].size == 5
    assert [e.relative for e in ws.walk(hidden=False)][0] == "a.txt"
    shallow = list(ws.walk(max_depth=1))
    assert [(e.relative, e.kind) for e in shallow if e.kind == "truncated"] == [(".hidden", "truncated"),
                                                                                 ("c", "truncated")]
    few = list(ws.walk(max_entries=3))
    assert len(few) == 4 and few[-1].kind == "truncated" and "entries" in few[-1].detail
    assert [e.relative for e in ws.walk("c")] == ["c/d", "c/e", "c/e/f"]
    refused(lambda: list(ws.walk("a.txt")), "is a file")


def nested(root: Path, depth: int) -> None:
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)


def test_a_10000_level_tree_is_walked_and_removed_without_recursion(tmp_path):
    ws = Workspace(tmp_path)  # (walking is the same code with either resolver)
    (ws.root / "deep").mkdir()
    try:
        nested(ws.root / "deep", 10_000)
        started = time.monotonic()
        entries = list(ws.walk("deep"))
        assert len(entries) == 65 and entries[-1].kind == "truncated" and "deeper" in entries[-1].detail
        assert time.monotonic() - started < 2
    finally:
        remove_tree(ws.root / "deep")
    assert not (ws.root / "deep").exists()


def test_remove_tree_never_follows_links_and_clears_read_only_dirs(tmp_path, outside):
    tree = tmp_path / "tree"
    (tree / "ro" / "sub").mkdir(parents=True)
    (tree / "ro" / "sub" / "f").write_text("x")
    os.symlink(outside, tree / "ro" / "link")
    os.chmod(tree / "ro" / "sub", 0o500)
    os.chmod(tree / "ro", 0o500)
    remove_tree(tree)
    remove_tree(tree)  # idempotent
    assert not tree.exists() and (outside / "canary.txt").exists()


# ----------------------------------------------------------------------------------------------- copy_out

def test_copy_out_copies_regular_files_and_drops_special_bits(ws, tmp_path):
    ws.write_bytes("ck/config.json", b"{}")
    weights = os.urandom(3 * 1024**2 + 7)
    ws.write_bytes("ck/sub/w.bin", weights)
    os.chmod(ws.root / "ck" / "config.json", 0o6755)
    os.chmod(ws.root / "ck" / "sub", 0o7777)
    snap = ws.copy_out("ck", tmp_path / "snap", max_bytes=len(weights) + 2, max_files=10)
    assert (snap / "config.json").read_bytes() == b"{}" and (snap / "sub" / "w.bin").read_bytes() == weights
    assert stat.S_IMODE((snap / "config.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((snap / "sub").stat().st_mode) == 0o755


@pytest.mark.parametrize("problem, words", [
    ("link", ["contains links", "sub/w.bin"]), ("oversize", ["more than"]), ("sparse", ["more than"]),
    ("many", ["more than 100 files"]), ("deep", ["levels"]), ("hardlink", ["hard links"]),
])
def test_copy_out_refuses(ws, tmp_path, outside, problem, words):
    ws.write_bytes("ck/config.json", b"{}")
    ws.write_bytes("ck/sub/w.bin", b"w")
    if problem == "link":
        os.unlink(ws.root / "ck" / "sub" / "w.bin")
        os.symlink(outside / "canary.txt", ws.root / "ck" / "sub" / "w.bin")
    elif problem == "oversize":
        ws.write_bytes("ck/sub/w.bin", b"w" * 20_000)
    elif problem == "sparse":
        with open(ws.root / "ck" / "big", "wb") as out:
            out.truncate(10 * 1024**3)
    elif problem == "many":
        for i in range(200):
            ws.write_bytes(f"ck/many/{i}", b"")
    elif problem == "deep":
        nested(ws.root / "ck", 40)
    elif problem == "hardlink":
        os.link(outside / "canary.txt", ws.root / "ck" / "tokenizer.json")
    started = time.monotonic()
    message = refused(lambda: ws.copy_out("ck", tmp_path / "snap", max_bytes=10_000, max_files=100), *words)
    assert "CANARY" not in message and time.monotonic() - started < 2
    assert not (tmp_path / "snap").exists()
    if problem == "deep":
        remove_tree(ws.root / "ck")


def test_list_tree_refuses_as_copy_out_does_without_copying(ws):
    ws.write_bytes("ck/config.json", b"{}")
    ws.write_bytes("ck/sub/w.bin", b"w")
    assert [e.relative for e in ws.list_tree("ck", max_files=10)] == ["ck/config.json", "ck/sub", "ck/sub/w.bin"]
    os.mkfifo(ws.root / "ck" / "sub" / "pipe")
    refused(lambda: ws.list_tree("ck", max_files=10), "contains FIFOs", "sub/pipe")
    refused(lambda: ws.list_tree("ck", max_files=2), "more than 2 files")


def test_copy_out_of_a_link_or_a_file(ws, tmp_path, outside):
    os.symlink(outside, ws.root / "final_model")
    refused(lambda: ws.copy_out("final_model", tmp_path / "a", max_bytes=10, max_files=10), "is a link",
            "outside the workspace")
    ws.write_bytes("f", b"x")
    refused(lambda: ws.copy_out("f", tmp_path / "b", max_bytes=10, max_files=10), "is a file")
    refused(lambda: ws.copy_out("nope", tmp_path / "c", max_bytes=10, max_files=10), "does not exist")
    assert not any((tmp_path / n).exists() for n in "abc")


def test_resolver_is_decided_once():
    assert gate.resolver() in ("openat2", "walk") and gate.resolver() is gate.resolver()
