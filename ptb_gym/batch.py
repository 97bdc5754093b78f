"""`ptb-gym batch`: a grid of tasks x agents x seeds, one episode per cell, on Ray; resumable, with a summary.

    ptb-gym batch PTB/math-v0 --agents scripted random --seeds 0 1 2 --out runs/batch   # a local Ray instance
    ptb-gym batch PTB/math-v0 PTB/tools-v0 --agents scripted --seeds 0 1 --address auto # an existing cluster

An agent is a baseline's name with settings, `NAME[:KEY=VALUE,...]` (`scripted:recipe=naive`, values parsed as
JSON when they can be): the string is the agent's label in every file, so two settings of one baseline are two
agents of the grid. Every cell is one Ray task, which plays the episode on whichever node Ray picks and ships its
recording back, so the files land in one folder on the driver's machine with or without a shared file system:

- `cells.jsonl`: a line per played cell, appended as it finishes; a rerun skips every cell with a valid line
  (`batch.json` keeps the env options, and a rerun with other options is refused: its cells would not compare);
- `recordings/`: every episode's recording, retried attempts included;
- `results.csv` (and `results.parquet` when pyarrow is installed): the last line of every cell;
- `summary.csv`: per task x agent, the mean reward (normalized uplift) over the valid cells with a 95% Student-t
  interval over seeds (a bootstrap of 2 or 3 seeds would understate the spread), and the valid and invalid counts;
- `compare.html`: the viewer's comparison page of the cells' recordings.

**Failures.** Only the env's own failures are retried, never the agent's (`ptb_gym.outcome` classifies them): the
final scoring runs again in place after an infrastructure failure (`RetryInfrastructureFailures`: the same model
and test split, so the same reward), and a cell whose ending is still an infrastructure failure, or whose Ray
worker or node died, is played again, up to `max_retries` times each. A cell that still fails is recorded with
`valid: false`, left out of every mean (never a 0) and played again by the next rerun; so is a cell whose code
raised (`failure_kind: error`, not retried: a bug raises again).

**Resources** per episode come from the task's tier (`episode_resources`): the embedded tier (the task's own tiny
base model) reserves 1 CPU, the one torch thread its budgets were calibrated on, and 2 GiB, and runs on the CPU
unless `device="cuda"` is asked for (then 1/8 of a GPU: the calibrations ran 6 to 24 such episodes on one GPU);
a `base_model` of one's own (the full tier) reserves a GPU, 4 CPUs and 32 GiB. Override them with `resources`.

Ray is an optional dependency (`pip install 'ptb-gym[ray]'`), imported only when cells run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import fcntl
import json
import math
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptb_gym.config import SANDBOX_KINDS

GIB = 1024**3
FORMAT_VERSION = 1
"""Of `batch.json`; a batch folder of a newer version is refused."""
ROW_COLUMNS = ("env_id", "agent", "seed", "valid", "reward", "reward_kind", "uplift_low", "uplift_high",
               "failure_kind", "failure", "attempts", "infrastructure_failures", "steps", "budget_used_s", "wall_s",
               "worker", "recording")
"""The columns of `results.csv` (then one `score_<harness>` column per harness)."""


@dataclass(frozen=True)
class Resources:
    """What Ray reserves for one episode (a reservation for scheduling: the sandbox and verifier set the limits)."""

    num_cpus: float
    num_gpus: float
    memory: int
    """Bytes of RAM (Ray's `memory` resource)."""


EMBEDDED = Resources(num_cpus=1, num_gpus=0, memory=2 * GIB)
"""The embedded tier: its processes (env, training job, verifier) peak at about 0.5 GiB each on `PTB/math-v0`."""
FULL = Resources(num_cpus=4, num_gpus=1, memory=32 * GIB)
"""The full tier: a base model of the user's own, post-trained on a GPU as in PostTrainBench."""


@dataclass(frozen=True)
class Cell:
    """One episode of the grid."""

    env_id: str
    agent: str
    """The agent's spec, `NAME[:KEY=VALUE,...]`."""
    seed: int


@dataclass
class BatchResult:
    """What `run_batch` leaves in `out_dir`, as Python objects."""

    out_dir: Path
    rows: list[dict[str, Any]]
    """The last row of every cell of the grid that has one, in grid order."""
    summary: list[dict[str, Any]]
    """Per task x agent: `n`, `valid`, `invalid`, `mean`, `low`, `high` (the 95% interval), `reward_kind`."""
    played: int
    """Cells played by this run (the others were finished by an earlier one)."""


def parse_agent(spec: str) -> tuple[str, dict[str, Any]]:
    """`scripted:max_steps=5,recipe=naive` -> ("scripted", {"max_steps": 5, "recipe": "naive"})."""
    name, _, settings = spec.partition(":")
    kwargs: dict[str, Any] = {}
    from ptb_gym.cli import key_value

    for item in filter(None, settings.split(",")):
        try:
            key, value = key_value(item)
        except ValueError:
            raise ValueError(f"agent {spec!r}: settings are KEY=VALUE separated by commas, got {item!r}") from None
        kwargs[key] = value
    return name, kwargs


def episode_resources(config: Any) -> tuple[Resources, str]:
    """The tier's reservation for an episode of `config` (an `EnvConfig`), and the device it runs on.

    Decided here, on the driver, because `device="auto"` would pick whatever the worker's node has rather than
    what was reserved."""
    if config.base_model is None:
        device = "cpu" if config.device == "auto" else config.device
        return (dataclasses.replace(EMBEDDED, num_gpus=0.125) if device == "cuda" else EMBEDDED), device
    device = "cuda" if config.device == "auto" else config.device
    return (FULL if device == "cuda" else dataclasses.replace(FULL, num_gpus=0)), device


def play_cell(cell: Cell, options: dict[str, Any], scoring_retries: int) -> dict[str, Any]:
    """Play one cell's episode (in a Ray worker): its result row, and its recording as bytes for the driver."""
    import tempfile

    import gymnasium as gym

    import ptb_gym  # noqa: F401 - registers the ids in a fresh worker
    from ptb_gym.baselines import make_agent, play_episode
    from ptb_gym.recording import read_episode
    from ptb_gym.wrappers import RetryInfrastructureFailures

    name, kwargs = parse_agent(cell.agent)
    if name == "random":
        kwargs.setdefault("seed", cell.seed)  # as `ptb-gym run` does: the cell's seed draws its actions
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ptb-batch-") as records:
        env = RetryInfrastructureFailures(gym.make(cell.env_id, **options, record_dir=records), scoring_retries)
        try:
            info = play_episode(env, make_agent(name, **kwargs), cell.seed)
        finally:
            env.close()
        recording = Path(info["recording"])
        footer = read_episode(recording, header_only=True).footer or {}
        data = recording.read_bytes()
    failure = info["failure"] or {}
    interval = info.get("uplift_interval") or [None, None]
    return {
        **dataclasses.asdict(cell), "valid": info["valid"], "reward": footer.get("reward") if info["valid"] else None,
        "reward_kind": info["reward_kind"], "uplift_low": interval[0], "uplift_high": interval[1],
        "failure_kind": failure.get("kind"), "failure": failure.get("message"),
        "infrastructure_failures": [{key: f.get(key) for key in ("kind", "message", "stage")}
                                    for f in info["retry"]["failures"]],
        "steps": info["step"], "budget_used_s": info["budget"]["used_s"],
        "wall_s": round(time.monotonic() - started, 1), "worker": f"{socket.gethostname()}:{os.getpid()}",
        "scores": {h: e.get("score") for h, e in info["scores"].items()}, "recording": recording.name,
        "recording_data": data,
    }


def run_batch(env_ids: Sequence[str], agents: Sequence[str], seeds: Sequence[int], *, out_dir: str | os.PathLike[str],
              address: str | None = None, options: Mapping[str, Any] | None = None, max_retries: int = 2,
              num_cpus: int | None = None, resources: Mapping[str, float] | None = None,
              runtime_env: Mapping[str, Any] | None = None, progress: bool = True) -> BatchResult:
    """Play every cell of `env_ids` x `agents` x `seeds` not yet finished in `out_dir`, then write its tables.

    `address`: a Ray cluster (`auto`, `ray://head:10001`); None starts a local instance with `num_cpus` CPUs (all
    by default) for this run and stops it at the end. A Ray connection already open in this process is used as it
    is. `options`: env options for every cell; `resources`: overrides of the tier's `Resources` fields (e.g.
    `{"num_gpus": 0.5}`); `runtime_env`: Ray's, for the workers (e.g. `{"pip": ["ptb-gym"]}` on a cluster).
    """
    out = Path(out_dir)
    (out / "recordings").mkdir(parents=True, exist_ok=True)
    options = {"snapshot_max_bytes": 0, **(options or {})}  # per-step snapshots are for forks, rare in a grid
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
    if "record_dir" in options:
        raise ValueError(f"the batch's recordings go to {out / 'recordings'}: drop the record_dir option")
    with _exclusive(out):
        plans = _plans(env_ids, agents, options, resources or {})
        _check_batch_file(out / "batch.json", options)
        grid = [Cell(env_id, agent, seed) for env_id in plans for agent in dict.fromkeys(agents)
                for seed in dict.fromkeys(seeds)]
        rows = read_rows(out / "cells.jsonl")
        todo = [cell for cell in grid if not rows.get(cell, {}).get("valid")]
        if todo:
            with _ray(address, num_cpus, runtime_env) as ray:
                for row in _play(ray, out, todo, plans, max_retries, progress):
                    _append_row(out, row)
                    rows[_cell(row)] = row
        result = [rows[cell] for cell in grid if cell in rows]
        summary = summarize(result)
        write_tables(out, result, summary)
        recordings = [out / "recordings" / row["recording"] for row in result
                      if row.get("recording") and (out / "recordings" / row["recording"]).exists()]
        if recordings:
            from ptb_gym.viewer import write_html

            write_html(recordings, out / "compare.html")
    return BatchResult(out, result, summary, len(todo))


def read_rows(path: Path) -> dict[Cell, dict[str, Any]]:
    """The last row of every cell in `cells.jsonl` (a line cut short by a killed driver is skipped)."""
    rows: dict[Cell, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[_cell(row)] = row
    return rows


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per task x agent: the mean reward of the valid cells with its 95% t-interval over seeds, and the counts.
    An invalid cell (the env failed, or the cell's code raised) counts in `invalid` and in no mean."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["env_id"], row["agent"]), []).append(row)
    summary = []
    for (env_id, agent), group in groups.items():
        values = [row["reward"] for row in group if row["valid"]]
        kinds = {row["reward_kind"] for row in group if row["valid"]}
        low, high = t_interval(values) or (None, None)
        summary.append({"env_id": env_id, "agent": agent, "n": len(group), "valid": len(values),
                        "invalid": len(group) - len(values), "mean": statistics.fmean(values) if values else None,
                        "low": low, "high": high, "reward_kind": kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else None)})
    return summary


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student's t 0.975 quantiles for 1 to 10 degrees of freedom."""


def t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% Student-t interval of the mean of `values` (None for fewer than two)."""
    if len(values) < 2:
        return None
    df, z = len(values) - 1, 1.959964
    if df <= len(_T975):
        t = _T975[df - 1]
    else:  # the Cornish-Fisher expansion of the quantile around the normal's: within 1e-3 of it from here on
        t = (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
             + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))
    mean, half = statistics.fmean(values), t * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def write_tables(out: Path, rows: Sequence[Mapping[str, Any]], summary: Sequence[Mapping[str, Any]]) -> None:
    """`results.csv` (and `.parquet` with pyarrow) with a row per cell, and `summary.csv`."""
    harnesses = list(dict.fromkeys(h for row in rows for h in row.get("scores", {})))
    flat = [{**{key: row.get(key) for key in ROW_COLUMNS},
             "infrastructure_failures": len(row.get("infrastructure_failures", [])),
             **{f"score_{h}": row.get("scores", {}).get(h) for h in harnesses}} for row in rows]
    _write_csv(out / "results.csv", [*ROW_COLUMNS, *(f"score_{h}" for h in harnesses)], flat)
    _write_csv(out / "summary.csv", ["env_id", "agent", "n", "valid", "invalid", "mean", "low", "high",
                                     "reward_kind"], summary)
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(flat), out / "results.parquet")


def summary_table(summary: Sequence[Mapping[str, Any]]):
    """The summary as a rich `Table`."""
    from rich.table import Table

    table = Table(title="mean reward per task and agent (valid cells; 95% t-interval over seeds)")
    for column in ("task", "agent", "mean", "95% interval", "valid", "invalid"):
        table.add_column(column, justify="left" if column in ("task", "agent") else "right")
    for entry in summary:
        mean = "-" if entry["mean"] is None else f"{entry['mean']:+.3f}"
        interval = "-" if entry["low"] is None else f"{entry['low']:+.3f} to {entry['high']:+.3f}"
        invalid = f"[red]{entry['invalid']}[/red]" if entry["invalid"] else "0"
        table.add_row(entry["env_id"], entry["agent"], mean, interval, f"{entry['valid']}/{entry['n']}", invalid)
    return table


# ---------------------------------------------------------------------------------------------- internals

def _plans(env_ids: Sequence[str], agents: Sequence[str], options: Mapping[str, Any],
           overrides: Mapping[str, float]) -> dict[str, tuple[Resources, dict[str, Any]]]:
    """Per task, its episodes' reservation and options, after checking every option and agent on the driver
    (a typo fails here, not in every worker)."""
    import gymnasium as gym

    import ptb_gym  # noqa: F401 - registers the ids
    from ptb_gym.baselines import make_agent

    for spec in agents:
        name, kwargs = parse_agent(spec)
        make_agent(name, **kwargs)
    unknown = set(overrides) - {field.name for field in dataclasses.fields(Resources)}
    if unknown:
        raise ValueError(f"unknown resources {sorted(unknown)}; they are num_cpus, num_gpus and memory")
    plans = {}
    for env_id in dict.fromkeys(e if "/" in e else f"PTB/{e}" for e in env_ids):
        env = gym.make(env_id, **options)
        config = env.unwrapped.config
        env.close()
        tier, device = episode_resources(config)
        plans[env_id] = (dataclasses.replace(tier, **overrides), {**options, "device": device})
    return plans


def _play(ray: Any, out: Path, todo: Sequence[Cell], plans: Mapping[str, tuple[Resources, dict[str, Any]]],
          max_retries: int, show: bool) -> Iterator[dict[str, Any]]:
    """Run the cells on Ray, playing again (up to `max_retries` times) each one whose ending the env failed; saves
    every play's recording and yields each cell's final row as it comes, with a progress bar and a line per cell."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    remote = ray.remote(play_cell)
    running: dict[Any, tuple[Cell, int, list[dict[str, Any]]]] = {}

    def submit(cell: Cell, play: int, failures: list[dict[str, Any]]) -> None:
        resources, options = plans[cell.env_id]
        task = remote.options(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus,
                              memory=int(resources.memory), max_retries=0)  # a dead worker is played again here
        running[task.remote(cell, options, max_retries)] = (cell, play, failures)

    for cell in todo:
        submit(cell, 1, [])
    console = Console(stderr=True, quiet=not show)
    with Progress(TextColumn("[bold]episodes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("episodes", total=len(todo))
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            cell, play, failures = running.pop(ref)
            row = _outcome(ray, ref, cell)
            _save_recording(out, row)
            failures = failures + [{**failure, "play": play, "recording": row.get("recording")}
                                   for failure in row["infrastructure_failures"]]
            if row["failure_kind"] == "infrastructure" and play <= max_retries:
                bar.console.print(f"[yellow]again[/yellow] {_label(cell)}: {row['failure']}")
                submit(cell, play + 1, failures)
                continue
            row.update(attempts=play, infrastructure_failures=failures)
            bar.console.print(_line(row))
            bar.advance(task)
            yield row


def _outcome(ray: Any, ref: Any, cell: Cell) -> dict[str, Any]:
    """The cell's row, or an invalid one when its code raised (`error`) or its worker or node died."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        kind, message = "error", str(error.cause if error.cause is not None else error).splitlines()[0]
    except ray.exceptions.RayError as error:
        kind, message = "infrastructure", f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return {**dataclasses.asdict(cell), "valid": False, "reward": None, "reward_kind": None, "failure_kind": kind,
            "failure": message, "scores": {},
            "infrastructure_failures": [{"kind": kind, "message": message}] if kind == "infrastructure" else []}


def _save_recording(out: Path, row: dict[str, Any]) -> None:
    """Write the recording a worker shipped into `recordings/` (whole, or not at all)."""
    data = row.pop("recording_data", None)
    if data is not None:
        temporary = out / "recordings" / f".{row['recording']}.part"
        temporary.write_bytes(data)
        temporary.replace(out / "recordings" / row["recording"])


def _append_row(out: Path, row: Mapping[str, Any]) -> None:
    """Append the row to `cells.jsonl`: one write of one line, on disk before the next cell counts as done."""
    with open(out / "cells.jsonl", "a") as file:
        file.write(json.dumps(row) + "\n")
        file.flush()
        os.fsync(file.fileno())


def _cell(row: Mapping[str, Any]) -> Cell:
    return Cell(row["env_id"], row["agent"], int(row["seed"]))


def _label(cell: Cell) -> str:
    return f"{cell.env_id} {cell.agent} seed {cell.seed}"


def _line(row: Mapping[str, Any]) -> str:
    label = _label(_cell(row))
    if not row["valid"]:
        return f"[red]invalid[/red] {label}: {row['failure_kind']}: {row['failure']}"
    failure = f" ({row['failure_kind']})" if row.get("failure_kind") else ""
    met = row["infrastructure_failures"]
    retried = f", {len(met)} infrastructure failure(s) retried" if met else ""
    return (f"[green]done[/green] {label}: reward {row['reward']:+.3f}{failure}, {row['steps']} steps, "
            f"{row['wall_s']:.0f} s on {row['worker']}{retried}")


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _check_batch_file(path: Path, options: Mapping[str, Any]) -> None:
    """Record the batch's env options on its first run; refuse a rerun with others (its cells would not compare)."""
    if not path.exists():
        path.write_text(json.dumps({"format_version": FORMAT_VERSION, "options": dict(options)}, indent=1) + "\n")
        return
    recorded = json.loads(path.read_text())
    if recorded.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer ptb-gym (format {recorded['format_version']}); upgrade")
    if recorded["options"] != json.loads(json.dumps(dict(options))):
        raise ValueError(f"{path.parent} holds a batch run with other env options ({recorded['options']}, now "
                         f"{dict(options)}): its finished cells would not compare; use another out_dir")


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One driver per batch folder: two would play the same cells twice."""
    with open(out / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another ptb-gym batch is running on {out}") from None
        yield


@contextmanager
def _ray(address: str | None, num_cpus: int | None, runtime_env: Mapping[str, Any] | None) -> Iterator[Any]:
    """Ray, connected: to `address`, or to a local instance started here (`address="local"`: never an existing
    one by accident); shut down at the end only if connected here."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"ptb-gym batch runs episodes on Ray, which is not installed ({error}): "
                          "pip install 'ptb-gym[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    local = {"num_cpus": num_cpus, "include_dashboard": False} if address is None else {}
    ray.init(address=address or "local", runtime_env=dict(runtime_env or {}) or None, log_to_driver=False, **local)
    try:
        yield ray
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `batch` subcommand's arguments."""
    parser.add_argument("env_ids", nargs="*", default=["PTB/math-v0"], metavar="ENV_ID",
                        help="tasks of the grid (default: PTB/math-v0)")
    parser.add_argument("--agents", nargs="+", default=["scripted"], metavar="AGENT",
                        help="agents of the grid: NAME[:KEY=VALUE,...], e.g. scripted:recipe=naive random")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="SEED")
    parser.add_argument("--out", default="runs/batch", help="the batch folder; a rerun skips its finished cells")
    parser.add_argument("--address", help="a Ray cluster: auto (the one this machine is a node of), or "
                                          "ray://HEAD:10001 (Ray Client); default: a local Ray instance for this run")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument("--max-retries", type=int, default=2,
                        help="scorings and plays again of a cell the env, not the agent, failed (default: 2)")
    parser.add_argument("--episode-cpus", type=float, help="CPUs per episode (default: the task's tier)")
    parser.add_argument("--episode-gpus", type=float, help="GPUs per episode (default: the task's tier)")
    parser.add_argument("--episode-memory-gb", type=float, help="GiB of RAM per episode (default: the task's tier)")
    parser.add_argument("--runtime-env", type=json.loads, metavar="JSON",
                        help="Ray runtime environment for the workers, e.g. '{\"pip\": [\"ptb-gym\"]}'")
    parser.add_argument("--budget-s", type=float, help="compute budget in seconds")
    parser.add_argument("--sandbox", choices=SANDBOX_KINDS)
    parser.add_argument("--base-model", help="local checkpoint directory or Hugging Face id")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="any other env option (value parsed as JSON when it can be), e.g. -o max_steps=50")


def main(args: argparse.Namespace) -> int:
    """Run the grid, print the summary table; 1 if any cell is invalid, 2 for a bad argument."""
    import gymnasium as gym
    from rich.console import Console

    from ptb_gym.cli import _options
    from ptb_gym.errors import PTBError

    resources = {name: value for name, value in (("num_cpus", args.episode_cpus), ("num_gpus", args.episode_gpus),
                                                 ("memory", args.episode_memory_gb and args.episode_memory_gb * GIB))
                 if value is not None}
    try:
        result = run_batch(args.env_ids, args.agents, args.seeds, out_dir=args.out, address=args.address,
                           options=_options(args), max_retries=args.max_retries, num_cpus=args.num_cpus,
                           resources=resources, runtime_env=args.runtime_env)
    except (PTBError, gym.error.Error, ValueError, ImportError, RuntimeError) as error:
        Console(stderr=True).print(f"[red]error:[/red] {error}")
        return 2
    Console().print(summary_table(result.summary))
    print(f"{result.played} cell(s) played, {len(result.rows) - result.played} finished before; results in "
          f"{result.out_dir}")
    return 1 if any(entry["invalid"] for entry in result.summary) else 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="ptb-gym batch", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
