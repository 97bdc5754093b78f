"""Attacks on the contamination scan: hidden test questions written back in every evasion form are flagged;
what cannot be scanned (bombs, corrupt archives, sparse or oversized files, special files) is flagged fast and in
bounded memory; honest data (the train split, 200,000 same-style generated problems, real weights) is not."""

from __future__ import annotations

import base64
import bz2
import codecs
import gzip
import html
import io
import json
import lzma
import os
import resource
import socket
import tarfile
import time
import urllib.parse
import zipfile
import zlib

import numpy as np
import pytest

from ptb_gym import contamination
from ptb_gym.contamination import scan_data, scan_workspace
from ptb_gym.envs import load_task
from ptb_gym.workspace import Workspace

N_QUESTIONS = 40


@pytest.fixture(scope="module")
def task():
    return load_task("math-v0")


@pytest.fixture(scope="module")
def questions(task) -> list[str]:
    return [record["question"] for record in task.records("test", N_QUESTIONS)]


@pytest.fixture(scope="module")
def index(task):
    return contamination.build_index(task.records("test", N_QUESTIONS),
                                     [*task.records("train", 2000), *task.records("dev", 100)])


def jsonl(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def sft(questions) -> list[dict]:
    return [{"prompt": f"Question: {q}\nAnswer:", "completion": " #### 1"} for q in questions]


def rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def nested_zip_tar_gzip(data: bytes) -> bytes:
    """A zip inside a tar.gz inside a gzip."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inner/train.jsonl", data)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as archive:
        info = tarfile.TarInfo("bundle/data.zip")
        info.size = len(inner.getvalue())
        archive.addfile(info, io.BytesIO(inner.getvalue()))
    return gzip.compress(tar.getvalue())


def spread(text: str, between: str, word_gap: str) -> str:
    return word_gap.join(between.join(word) for word in text.split())


def npy_of(strings: list[str]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array(strings))  # dtype <U...: UTF-32-LE
    return buffer.getvalue()


EVASIONS = {
    "jsonl_u_escapes": lambda qs: "".join(
        '{"prompt": "' + "".join(f"\\u{ord(c):04x}" for c in q) + '"}\n' for q in qs).encode(),
    "utf16_le_bom": lambda qs: "\n".join(qs).encode("utf-16"),
    "utf16_be_no_bom": lambda qs: "\n".join(qs).encode("utf-16-be"),
    "utf32_le_no_bom": lambda qs: "\n".join(qs).encode("utf-32-le"),
    "base64_in_jsonl": lambda qs: jsonl({"blob": base64.b64encode(q.encode()).decode()} for q in qs),
    "base64url_of_gzip": lambda qs: base64.urlsafe_b64encode(gzip.compress("\n".join(qs).encode())),
    "mime_base64": lambda qs: base64.encodebytes("\n".join(qs).encode()),
    "hex": lambda qs: "\n".join(q.encode().hex() for q in qs).encode(),
    "hex_0x_list": lambda qs: "\n".join(", ".join(f"0x{b:02x}" for b in q.encode()) for q in qs).encode(),
    "fullwidth": lambda qs: "\n".join(q.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}) for q in qs).encode(),
    "ligatures_and_case": lambda qs: "\n".join(q.swapcase().replace("fi", "\ufb01").replace("ff", "\ufb00")
                                               for q in qs).encode(),
    "rot13": lambda qs: "\n".join(rot13(q) for q in qs).encode(),
    "reversed": lambda qs: "\n".join(q[::-1] for q in qs).encode(),
    "nested_zip_in_tar_gz_in_gzip": lambda qs: nested_zip_tar_gzip(jsonl(sft(qs))),
    "bz2_xz_zlib": lambda qs: bz2.compress(lzma.compress(zlib.compress("\n".join(qs).encode()))),
    "letters_spread_by_spaces": lambda qs: "\n".join(spread(q, " ", "   ") for q in qs).encode(),
    "every_character_spaced": lambda qs: "\n".join(" ".join(q) for q in qs).encode(),
    "zero_width_joiners": lambda qs: "\n".join("\u200d".join(q) for q in qs).encode(),
    "npy_spread_letters": lambda qs: npy_of([spread(q, " ", "\t") for q in qs]),
    "percent_encoded": lambda qs: "\n".join(urllib.parse.quote(q, safe="") for q in qs).encode(),
    "percent_every_byte": lambda qs: "\n".join("".join(f"%{b:02X}" for b in q.encode()) for q in qs).encode(),
    "html_entities": lambda qs: "\n".join("".join(f"&#{ord(c)};" for c in q) for q in qs).encode(),
    "html_named": lambda qs: "\n".join(html.escape(q).replace(" ", "&nbsp;") for q in qs).encode(),
    "backslash_x_escapes": lambda qs: "\n".join("".join(f"\\x{b:02x}" for b in q.encode()) for q in qs).encode(),
    "split_across_json_fields": lambda qs: jsonl(
        {"a": " ".join(q.split()[: len(q.split()) // 2]), "b": " ".join(q.split()[len(q.split()) // 2:])} for q in qs),
    "split_mid_word_across_json_fields": lambda qs: jsonl(
        {f"k{j}": q[j: j + 7] for j in range(0, len(q), 7)} for q in qs),
    "json_keys": lambda qs: json.dumps({q: 1 for q in qs}).encode(),
    "stringified_json_in_json": lambda qs: jsonl({"payload": json.dumps({"text": q}, ensure_ascii=False)}
                                                 for q in qs),
    "percent_then_base64": lambda qs: urllib.parse.quote(
        base64.b64encode("\n".join(qs).encode()).decode(), safe="").encode(),
    "text_glued_before_zip": lambda qs: "\n".join(qs).encode() + zip_of({"x": b"nothing"}),
    "fake_safetensors_with_text": lambda qs: fake_safetensors(tail="\n".join(qs).encode()),
}


def zip_of(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def fake_safetensors(tail: bytes = b"", dtype: str = "F32") -> bytes:
    weights = np.arange(64, dtype=np.float32).tobytes()
    header = json.dumps({"w": {"dtype": dtype, "shape": [64], "data_offsets": [0, len(weights)]}}).encode()
    return len(header).to_bytes(8, "little") + header + weights + tail


@pytest.mark.parametrize("form", sorted(EVASIONS))
def test_every_evasion_form_is_flagged(form, questions, index, tmp_path):
    data = EVASIONS[form](questions)
    flag, stats = scan_data(f"data/{form}.bin", data, index)
    assert flag is not None and stats["matched_items"] == N_QUESTIONS, (stats, form)
    assert not stats["unscannable"]
    assert not any(q in json.dumps(stats) for q in questions)  # the evidence never reveals test items
    # The same through the workspace, beside honest files.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / f"{form}.bin").write_bytes(data)
    (tmp_path / "notes.txt").write_text("plans: train on the train split\n")
    flag, stats = scan_workspace(Workspace(tmp_path), index)
    assert flag is not None and stats["matched_items"] == N_QUESTIONS and stats["files_scanned"] == 2
    assert set(stats["files"]) <= {f"data/{form}.bin", f"data/{form}.bin (unpacked)"} or form.startswith("nested")


def test_a_few_copies_do_not_flag_but_are_counted(questions, index):
    flag, stats = scan_data("a.txt", "\n".join(questions[:2]).encode("utf-16"), index)
    assert flag is None and stats["matched_items"] == 2 and stats["threshold_items"] == 3


# ------------------------------------------------------------------------------------- cannot be scanned

def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def zip_bomb() -> bytes:
    """10 GB of zeros: 100 zips of one 100 MB member each, inside a zip."""
    inner = zip_of({"zeros.bin": bytes(100 * 1024**2)})
    return zip_of({f"part{i}.zip": inner for i in range(100)}, zipfile.ZIP_STORED)


def gzip_bomb() -> bytes:
    """1 GiB of zeros: 64 gzip members of 16 MiB each, one after another (as `cat a.gz b.gz` makes; gunzip reads
    them all). Compressing 16 MiB once is fast; 1 GiB in one member took 5 to 20 s."""
    return gzip.compress(bytes(16 * 1024**2), 9) * 64


def xz_bomb() -> bytes:
    """512 MiB of zeros in 32 concatenated xz streams (`xz -d` reads them all)."""
    return lzma.compress(bytes(16 * 1024**2)) * 32


def test_archive_bombs_are_flagged_fast_in_bounded_memory(index, tmp_path):
    bombs = {"bomb.zip": zip_bomb(), "bomb.gz": gzip_bomb(), "bomb.tar.xz": xz_bomb()}
    for name, data in bombs.items():
        (tmp_path / name).write_bytes(data)
    rss = peak_rss_mb()
    started = time.monotonic()
    flag, stats = scan_workspace(Workspace(tmp_path), index)
    assert time.monotonic() - started < 5
    assert peak_rss_mb() - rss < 200  # MB: never the unpacked size
    assert flag is not None and flag.check == "contamination" and stats["matched_items"] == 0
    why = {u["path"]: u["why"] for u in stats["unscannable"]}
    assert set(why) == set(bombs) and all("bomb" in w for w in why.values()), why
    assert "delete them" in flag.message and "bomb.zip" in flag.message


def encrypted_zip() -> bytes:
    """A zip whose member says it is encrypted (bit 0 of its flags, in both headers)."""
    data = bytearray(zip_of({"a.txt": b"secret " * 100}))
    for header, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(header) + flags_at
        data[at] |= 1
    return bytes(data)


@pytest.mark.parametrize("name,data", [
    ("broken.zip", zip_of({"a.txt": b"hello " * 1000})[:-30]),
    ("broken.gz", gzip.compress(b"hello world " * 10_000)[:-200]),
    ("broken.tar", b"x" * 257 + b"ustar\x0000" + b"\xff" * 300),
    ("encrypted.zip", encrypted_zip()),
    ("data.7z", b"7z\xbc\xaf\x27\x1c" + os.urandom(200)),
    ("data.zst", b"\x28\xb5\x2f\xfd" + os.urandom(200)),
], ids=lambda value: value if isinstance(value, str) else "")
def test_corrupt_encrypted_or_unknown_archives_are_flagged(name, data, index):
    flag, stats = scan_data(name, data, index)
    assert flag is not None and stats["unscannable"] and stats["unscannable"][0]["path"] == name, stats
    assert name in flag.message


def test_sparse_and_oversized_files_are_flagged_and_contentless_ones_skipped(index, tmp_path):
    with open(tmp_path / "sparse.bin", "wb") as handle:
        handle.truncate(4 * 1024**3)  # 4 GB, nothing on disk
    with open(tmp_path / "small_sparse.bin", "wb") as handle:
        handle.truncate(64 * 1024**2)
    (tmp_path / "big.txt").write_bytes(b"a" * (2 * 1024**2))
    os.mkfifo(tmp_path / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    os.symlink("/etc/hostname", tmp_path / "link")
    started = time.monotonic()
    try:
        flag, stats = scan_workspace(Workspace(tmp_path), index, max_bytes=1024**2)
    finally:
        server.close()
    assert time.monotonic() - started < 2
    why = {u["path"]: u["why"] for u in stats["unscannable"]}
    assert set(why) == {"sparse.bin", "small_sparse.bin", "big.txt"}, why
    assert "sparse" in why["small_sparse.bin"] and "budget" in why["big.txt"]
    # Links, FIFOs and sockets hold no content of their own (a link's target is scanned where it lies).
    assert {s["path"]: s["kind"] for s in stats["skipped"]} == {"fifo": "fifo", "sock": "socket", "link": "link"}
    assert flag is not None and "cannot be scanned" in flag.message


def test_a_tree_past_the_walks_limits_is_flagged(index, tmp_path, monkeypatch):
    monkeypatch.setattr(contamination, "WALK_MAX_ENTRIES", 50)
    for i in range(60):
        (tmp_path / f"f{i}.txt").write_text("x")
    flag, stats = scan_workspace(Workspace(tmp_path), index)
    assert flag is not None and any("more than 50 entries" in u["why"] for u in stats["unscannable"])


def test_encodings_nested_past_the_work_budget_are_flagged_not_slow(questions, index):
    data = "\n".join(questions).encode()
    for _ in range(12):  # base64 of base64 ...: each level grows by 4/3; only MAX_DEPTH levels are decoded
        data = base64.b64encode(data)
    started = time.monotonic()
    flag, stats = scan_data("deep.b64", data, index)
    assert time.monotonic() - started < 2
    assert flag is None or stats["matched_items"] == 0  # past MAX_DEPTH encodings are not seen (documented)
    hostile = ("\ufdfa" * 2_000_000).encode()  # expands 18-fold under NFKD
    flag, stats = scan_data("expands.txt", hostile, index)
    assert flag is not None and "normalisation" in stats["unscannable"][0]["why"]


@pytest.mark.parametrize("junk", [b"\x00" * 100, b"{" * 100_000, b"[" * 200_000, b"\"\\u12", b"PK\x05\x06",
                                  b"\x1f\x8b", b"BZh91AY&SY", b"x^2 + 1 = 5", os.urandom(10_000)],
                         ids=["nuls", "braces", "brackets", "bad_escape", "zip_end", "gzip_magic", "bz2_magic",
                              "zlib_like_text", "random"])
def test_hostile_bytes_never_raise(junk, index):
    flag, stats = scan_data("junk", junk, index)
    assert stats["matched_items"] == 0


# -------------------------------------------------------------------------------------------- honest data

def test_honest_data_is_not_flagged_and_the_scan_is_fast(task, index, tmp_path):
    from ptb_gym.envs.math import problems

    train = task.records("train", 2000)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sft.jsonl").write_bytes(jsonl(
        {"prompt": f"Question: {r['question']}\nAnswer:", "completion": f" {r['solution']} #### {r['answer']}"}
        for r in train))
    (tmp_path / "data" / "train.txt.gz").write_bytes(gzip.compress("\n\n".join(
        f"Q: {r['question'].upper()}\nA: {r['answer']}" for r in train).encode()))
    (tmp_path / "data" / "synthetic.jsonl").write_bytes(jsonl(
        {"prompt": f"Question: {p.question}\nAnswer:", "completion": f" {p.solution()} #### {p.answer}"}
        for p in problems.generate(200_000, seed=123)))
    size = (tmp_path / "data" / "synthetic.jsonl").stat().st_size
    started = time.process_time()
    flag, stats = scan_workspace(Workspace(tmp_path), index)
    seconds = time.process_time() - started
    assert flag is None and stats["unscannable_count"] == 0, stats
    assert stats["matched_items"] < stats["threshold_items"] and stats["bytes_scanned"] > size
    assert seconds < 8, seconds  # measured about 3.5 s for these 38 MB


def test_model_weights_are_skipped_but_a_fake_safetensors_is_scanned(questions, index, tmp_path):
    pytest.importorskip("safetensors")
    import torch
    from safetensors.torch import save_file

    (tmp_path / "ck").mkdir()
    save_file({"w": torch.randn(256, 256), "b": torch.zeros(256, dtype=torch.bfloat16)},
              str(tmp_path / "ck" / "model.safetensors"))
    flag, stats = scan_workspace(Workspace(tmp_path), index)
    assert flag is None and stats["weights_skipped"] == 1 and stats["files_scanned"] == 0
    # Integer tensors, a size that does not match, or text after the tensors: data, scanned.
    text = "\n".join(questions).encode()
    for name, data in {"ints.safetensors": fake_safetensors(dtype="I64") + text,
                       "tail.safetensors": fake_safetensors(tail=text)}.items():
        flag, stats = scan_data(name, data, index)
        assert flag is not None and stats["matched_items"] == N_QUESTIONS and stats["weights_skipped"] == 0


def test_scan_speed_on_30_mb_of_jsonl(index, task, capsys):
    from ptb_gym.envs.math import problems

    data = jsonl({"prompt": f"Question: {p.question}\nAnswer:", "completion": f" {p.solution()} #### {p.answer}"}
                 for p in problems.generate(160_000, seed=7))[: 30 * 1024**2]
    started = time.process_time()
    flag, stats = scan_data("speed.jsonl", data, index)
    seconds = time.process_time() - started
    with capsys.disabled():
        print(f"\ncontamination scan: {len(data) / 1e6:.0f} MB of JSONL in {seconds:.2f} s CPU")
    assert flag is None and seconds < 6


def test_items_spread_over_the_workspace_and_train_inputs_add_up(questions, index, tmp_path):
    (tmp_path / "a.txt").write_text("\n".join(questions[:2]))
    inputs = [(f"train_inputs/{i}.jsonl", jsonl(sft(questions[2 + i : 3 + i]))) for i in range(2)]
    flag, stats = scan_workspace(Workspace(tmp_path), index, extra_files=inputs)
    assert flag is not None and stats["matched_items"] == 4 and stats["files_scanned"] == 3


def test_the_same_bytes_are_scanned_once_and_public_files_not_at_all(index, questions, tmp_path):
    import hashlib

    public = jsonl({"question": q} for q in ("Public text one.", "Public text two."))
    (tmp_path / "train.jsonl").write_bytes(public)
    copied = jsonl({"text": q} for q in questions)
    (tmp_path / "copy.jsonl").write_bytes(copied)
    flag, stats = scan_workspace(Workspace(tmp_path), index, extra_files=[("train tool input", copied)],
                                 public_digests=[hashlib.sha256(public).digest()])
    assert stats["files_scanned"] == 1 and stats["duplicates"] == 2  # the public split and the tool's copy
    assert flag is not None and stats["matched_items"] == len(questions)
    # A file that only looks public (one byte changed) is scanned.
    (tmp_path / "train.jsonl").write_bytes(public.replace(b"one", b"One"))
    _, stats = scan_workspace(Workspace(tmp_path), index, public_digests=[hashlib.sha256(public).digest()])
    assert stats["files_scanned"] == 2
