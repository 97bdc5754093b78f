"""One post-training episode: its state, and `Episode.call`, the single path every front-end acts through.

`Episode.start` builds the episode (its directories and disk quota, the workspace with the task's data and the
read-only base model, TASK.md, the sandbox, the budget, the verifier) and draws the hidden test split's seed in
secret. `Episode.call(action)` runs one tool call and returns a `Step`: it parses the action, enforces the step
limit and the budget, dispatches to the tool, meters it, turns an agent's mistake (`ToolError`) into the
observation and any other exception into an observation that says the env failed, and ends the episode (scoring
its model in the verifier) when the agent submits or a limit runs out. It never raises on agent input. The
Gymnasium env, and every other front-end, is a thin layer over it; observers (the recording, a transcript)
receive each `Step` and the final `Outcome`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ptb_gym import integrity
from ptb_gym import sandbox as sandbox_module
from ptb_gym.briefing import task_md
from ptb_gym.budget import Budget
from ptb_gym.config import EnvConfig
from ptb_gym.disk import EpisodeDisk
from ptb_gym.envs.task import Task
from ptb_gym.errors import ToolError, did_you_mean
from ptb_gym.jobs import JobManager
from ptb_gym.models import resolve_base_model
from ptb_gym.outcome import Outcome, build_outcome, failure
from ptb_gym.protocol import Tool, ToolResult, action_for_record, parse_action
from ptb_gym.sandbox import Sandbox
from ptb_gym.text import shorten
from ptb_gym.verifier import Verifier, VerifierFailure
from ptb_gym.workspace import Workspace

logger = logging.getLogger("ptb_gym")

SUMMARY_CHARS = 4_000
"""Room for the final score summary after the last tool output."""
CHECKPOINT_MAX_FILES = 256
SCORING_TIMEOUT_S = 600.0
"""Time the verifier may take for a request, plus SCORING_S_PER_ITEM per item it scores."""
SCORING_S_PER_ITEM = 2.0

# The evaluation code and the task's data as they are when the env is imported, before any agent acts;
# verified again by the verifier before every final evaluation (integrity.check_tampering).
_SEAL = integrity.seal()


@dataclass
class Step:
    """One tool call as every front-end and observer sees it."""

    index: int
    """1 for the first call of the episode."""
    action: Any
    tool: str | None
    arguments: dict[str, Any] | None
    observation: str
    info: dict[str, Any]
    reward: float = 0.0
    terminated: bool = False
    """The agent submitted."""
    truncated: bool = False
    """The budget or the step limit ran out."""
    started_at: float = 0.0
    duration_s: float = 0.0

    def to_record(self) -> dict[str, Any]:
        return {"action": action_for_record(self.action), "tool": self.tool, "arguments": self.arguments, "observation": self.observation,
                "reward": self.reward, "terminated": self.terminated, "truncated": self.truncated, "info": self.info,
                "started_at": self.started_at, "duration_s": round(self.duration_s, 4)}


class Observer(Protocol):
    """Anything that follows an episode: `on_step` after every call, `on_finish` once at its end."""

    def on_step(self, episode: Episode, step: Step) -> None: ...

    def on_finish(self, episode: Episode, outcome: Outcome) -> None: ...


def sandbox_environment(config: EnvConfig) -> dict[str, str]:
    """What the env sets in its commands' environment: under a `cpu` budget, one OpenMP thread (torch's) per
    process unless the env's own environment says otherwise. A job's CPU time per training step is then the same
    alone and among other episodes: with two threads per job, four episodes on two cores paid 16% more per step
    (benchmarks/budget_invariance.py). A command may set its own, and is charged what it uses."""
    if config.budget_mode == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        return {"OMP_NUM_THREADS": "1"}
    return {}


@dataclass
class Episode:
    """Everything a tool may act on, and the one entry that acts: `call`."""

    task: Task
    config: EnvConfig
    seed: int
    disk: EpisodeDisk
    workspace: Workspace
    sandbox: Sandbox
    budget: Budget
    base_model_dir: Path
    """The base model as the env reads it (the trusted copy, outside the workspace)."""
    tools: dict[str, Tool]
    test_seed: int = field(repr=False)
    """The hidden test split's seed: secret, in this process's memory only, handed to the verifier at the end."""
    jobs: JobManager = field(init=False)
    verifier: Verifier = field(init=False)
    steps: int = 0
    submission: str | None = None
    """Set by `submit`: the checkpoint to score (relative to the workspace); the episode then ends."""
    outcome: Outcome | None = None
    observers: list[Observer] = field(default_factory=list)
    train_inputs: list[Path] = field(default_factory=list)
    """The data files the train tool gave its jobs (snapshots outside the workspace; scanned at the end)."""
    train_runs: int = 0
    """Train tool calls so far, refused ones included (each has its own inputs directory)."""
    public_digests: list[str] = field(default_factory=list)
    """sha256 of the public files written at reset (the splits): the contamination scan skips exact copies."""
    scoring_retries: int = 0
    """Times the final scoring runs again after an infrastructure failure, on the same checkpoint and test split
    (`ptb_gym.wrappers.RetryInfrastructureFailures` sets it); the failures retried are in `info["retried_failures"]`."""

    def __post_init__(self) -> None:
        self.jobs = JobManager(self.workspace, self.sandbox, self.budget)
        self.verifier = Verifier(self.disk.private / "verifier.log", warm_model=self.base_model_dir)
        self.budget.tool_cpu_clock = self.verifier.cpu_seconds  # what an `evaluate` costs in the cpu budget

    @classmethod
    def start(cls, task: Task, config: EnvConfig, seed: int, tools: dict[str, Tool],
              split_file: Callable[[str, int], bytes]) -> Episode:
        base_model = resolve_base_model(config.base_model or None, task)
        uid, gid = sandbox_module.host_identity()
        disk = EpisodeDisk.create(config.workdir, quota_bytes=config.disk_quota_bytes, owner_uid=uid, owner_gid=gid)
        try:
            workspace = Workspace(disk.workspace)
            workspace.install_readonly(base_model, "base_model")
            files = {"data/train.jsonl": split_file("train", config.train_size),
                     "data/dev.jsonl": split_file("dev", config.dev_size), **task.public_files()}
            for path, content in files.items():
                workspace.write_bytes(path, content)
            public = list(files.values())
            inputs = disk.root / "inputs"
            inputs.mkdir(mode=0o755)
            sandbox = sandbox_module.make_sandbox(config.sandbox, sandbox_environment(config), readonly_paths=[inputs])
            sandbox.watch_quota(disk.over_quota)  # the quota's guard where no quota'd file system could be mounted
            budget = Budget(config.budget_s, config.budget_mode, cpu_clock=sandbox.cpu_seconds,
                            cpu_cores=config.budget_cpu_cores, wall_limit_s=config.wall_limit_s)
            episode = cls(task, config, seed, disk, workspace, sandbox, budget, base_model, tools,
                          test_seed=config.test_seed if config.test_seed is not None else secrets.randbits(62),
                          public_digests=[hashlib.sha256(b).hexdigest() for b in public])
            workspace.write_bytes("TASK.md", episode.briefing.encode())
            return episode
        except BaseException:
            disk.remove()
            raise

    # ------------------------------------------------------------------------------------------- the entry

    def call(self, action: Any) -> Step:
        """Run one tool call; never raises on agent input. Ends the episode when the agent submits or a limit
        runs out (then the Step carries the reward and the final info)."""
        started, started_wall = time.monotonic(), time.time()
        if self.outcome is not None:
            return Step(self.steps, action, None, None, "Error: the episode is over; start a new one.",
                        {"error": "the episode is over"}, started_at=started_wall)
        self.steps += 1
        name = arguments = None
        info: dict[str, Any] = {"step": self.steps}
        try:
            call = parse_action(action)
            name, arguments = call.name, call.arguments
            tool = self.tools.get(call.name)
            if tool is None:
                raise ToolError(f"Unknown tool {call.name!r}.{did_you_mean(call.name, self.tools)} "
                                f"Tools: {', '.join(self.tools)}.")
            if self.budget.exhausted:
                raise ToolError(f"{self.budget.exhausted_by.capitalize()} is used up.")
            with self.budget.metered():
                result = tool(self, call.arguments)
        except ToolError as error:
            result = ToolResult(f"Error: {error}")
            info["error"] = str(error)
        except Exception as error:  # noqa: BLE001 - our bug, not the agent's: say so, record it, go on
            logger.exception("tool %s failed", name)
            message = (f"the env failed while running {name or 'the action'} ({type(error).__name__}: "
                       f"{shorten(str(error), 500)}). This is a bug in ptb-gym, not your mistake; the episode goes on.")
            result = ToolResult(f"Error: {message}")
            info.update(error=message, internal_error=traceback.format_exc(limit=8))
        info.update(result.info, tool=name, budget=self.budget.snapshot())
        step = Step(self.steps, action, name, arguments, shorten(result.text, self.config.max_observation_chars), info,
                    started_at=started_wall)
        step.terminated = self.submission is not None
        step.truncated = not step.terminated and (self.budget.exhausted or self.steps >= self.config.max_steps)
        if step.terminated or step.truncated:
            outcome = self.finish(None if step.terminated else ("budget" if self.budget.exhausted else "step limit"))
            step.reward = outcome.reward
            info.update(outcome.info)
            step.observation = shorten(step.observation + "\n\n" + outcome.summary, self.max_observation_chars)
        step.duration_s = time.monotonic() - started
        self._notify("on_step", step)
        if self.outcome is not None:
            self._notify("on_finish", self.outcome)
        return step

    def finish(self, truncated_by: str | None = None) -> Outcome:
        """End the episode: stop every job, and score the submission (or `final_model/`) in the verifier."""
        if self.outcome is not None:
            return self.outcome
        self.jobs.close()  # nothing of the agent's runs while its model is scored
        checkpoint = self.submission
        if checkpoint is None and os.path.lexists(self.workspace.root / "final_model"):  # a link fails in copy_out
            checkpoint = "final_model"
        answer = failed = None
        retried: list[dict[str, Any]] = []
        if checkpoint is None:
            why = "the budget ran out" if truncated_by == "budget" else f"the {truncated_by or 'episode'} ended it"
            failed = failure("budget", f"{why} before a model was submitted, and there is no final_model/ in the "
                                       "workspace")
        else:
            answer, failed = self._score_final(checkpoint)
            # Only what the agent cannot cause is infrastructure, so a retry is no second chance for the agent:
            # the same snapshot source, the same secret test split, greedy decoding.
            while failed is not None and failed["kind"] == "infrastructure" and len(retried) < self.scoring_retries:
                logger.warning("final scoring failed (%s); scoring again", failed["message"])
                retried.append(failed)
                answer, failed = self._score_final(checkpoint)
        self.verifier.close()
        self.outcome = build_outcome(
            self.task.primary_harness, submitted=self.submission is not None, truncated_by=truncated_by,
            checkpoint=checkpoint, answer=answer, failed=failed, retried=retried,
            extra={"budget": self.budget.snapshot(), "steps": self.steps, "test_seed": self.test_seed})
        return self.outcome

    def end(self, reason: str) -> Outcome:
        """End the episode between steps (a front-end whose rollout is over: `reason` says which), scoring
        `final_model/` if there is one, and tell the observers (the recording gets its footer)."""
        if self.outcome is not None:
            return self.outcome
        outcome = self.finish(reason)
        self._notify("on_finish", outcome)
        return outcome

    def _score_final(self, checkpoint: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The verifier's answer on the checkpoint, or the failure (classified) that kept it from answering."""
        try:
            return self.verify_final(checkpoint), None
        except ToolError as error:
            return None, failure("agent", f"the model could not be scored: {error}")
        except VerifierFailure as error:
            return None, failure("agent" if error.agent_caused else "infrastructure",
                                 f"the model could not be scored: {error}", stage=error.stage)
        except Exception as error:  # noqa: BLE001 - an env failure is reported as such, never as a plain 0
            logger.exception("final scoring failed")
            self.verifier.close()  # a retry starts from a fresh process, not one left mid-request
            return None, failure("infrastructure", f"{type(error).__name__}: {error}",
                                 traceback=traceback.format_exc(limit=5))

    def warm_verifier(self) -> None:
        """Start the verifier now (the train tool calls this): its imports and its preparation of the final
        scoring (the secret test split's contamination index) then overlap the training."""
        config = self.config
        self.verifier.warm(prepare={"op": "prepare", "task": self.task.name, "test_seed": self.test_seed,
                                    "test_size": config.test_size, "train_size": config.train_size,
                                    "dev_size": config.dev_size})

    def verify_final(self, checkpoint: str) -> dict[str, Any]:
        """The verifier's verdict on a checkpoint of the workspace: integrity checks, then the hidden test."""
        config = self.config
        snapshot = self.copy_checkpoint(checkpoint, "final")
        return self.verifier.request({
            "op": "final", "task": self.task.name, "base_model": str(self.base_model_dir),
            "checkpoint": str(snapshot), "workspace": str(self.workspace.root),
            "scan_files": [str(path) for path in self.train_inputs], "public_digests": self.public_digests,
            "test_seed": self.test_seed,
            "test_size": config.test_size, "train_size": config.train_size, "dev_size": config.dev_size,
            "device": config.device, "batch_size": config.eval_batch_size, "model_key": config.model_key,
            "sealed": integrity.of_task(_SEAL, self.task.name)}, timeout_s=SCORING_TIMEOUT_S + SCORING_S_PER_ITEM * config.test_size)

    def copy_checkpoint(self, checkpoint: str, name: str) -> Path:
        """Copy a checkpoint out of the workspace (through the path gate, bounded) for the verifier to read."""
        destination = self.disk.private / "snapshots" / name
        if destination.exists():
            import shutil

            shutil.rmtree(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        return self.workspace.copy_out(checkpoint, destination, max_bytes=self.max_checkpoint_bytes,
                                       max_files=CHECKPOINT_MAX_FILES)

    def close(self) -> None:
        """Kill every process of the episode and delete its directories; idempotent."""
        self.jobs.close()
        self.verifier.close()
        if self.config.keep_workspace:
            self.disk.keep()  # unmounted, the image and the directory left for debugging
        else:
            self.disk.remove()

    # ---------------------------------------------------------------------------------------------- facts

    @property
    def root(self) -> Path:
        return self.workspace.root

    @property
    def briefing(self) -> str:
        return task_md(self.task, self.config, [tool.schema for tool in self.tools.values()], self.base_model_dir)

    @property
    def max_observation_chars(self) -> int:
        return self.config.max_observation_chars + SUMMARY_CHARS

    @property
    def max_checkpoint_bytes(self) -> int:
        """A checkpoint may be up to 4 times the base model (an fp32 copy of a bf16 model, with room) + 64 MiB."""
        size = sum(entry.stat().st_size for entry in self.base_model_dir.iterdir() if entry.is_file())
        return 4 * size + 64 * 1024**2

    def facts(self) -> dict[str, Any]:
        """What `reset` tells about the task in `info`."""
        task = self.task
        return {"name": task.name, "title": task.title, "primary_harness": task.primary_harness,
                "harnesses": {h.name: h.description for h in task.harnesses}}

    def _notify(self, event: str, payload: Any) -> None:
        for observer in list(self.observers):
            handler = getattr(observer, event, None)
            if handler is None:
                continue
            try:
                handler(self, payload)
            except Exception:  # noqa: BLE001 - an observer's failure must not end the episode
                logger.exception("episode observer %r failed in %s", observer, event)
