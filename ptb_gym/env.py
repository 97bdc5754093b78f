"""`PostTrainEnv`: LLM post-training as a Gymnasium environment, a thin layer over `Episode`.

Observations and actions are text. An action is one tool call; the observation is the tool's output. The
episode ends with `terminated=True` when the agent submits a checkpoint, or `truncated=True` when the budget or
the step limit runs out (then `final_model/` in the workspace, if any, is scored). The reward is 0 on every
step but the last, which carries the normalized uplift of the scored model on the hidden test split.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import gymnasium as gym

from ptb_gym import sandbox as sandbox_module
from ptb_gym.briefing import training_device
from ptb_gym.config import EnvConfig
from ptb_gym.envs import load_task
from ptb_gym.episode import Episode, Step
from ptb_gym.errors import ConfigError, PTBError
from ptb_gym.outcome import Outcome
from ptb_gym.protocol import MAX_ACTION_CHARS
from ptb_gym.snapshots import (
    STORE_DIR,
    Snapshot,
    SnapshotStore,
    Snapshotter,
    find_snapshot,
    fork_notice,
    restore,
)
from ptb_gym.spaces import UnicodeText
from ptb_gym.text import shorten


def resolve_budget(config: EnvConfig, task_budget_s: float) -> EnvConfig:
    """The config with its budget defaults filled in: the task's budget, the meter (`cpu` where training runs on
    the CPU and the sandbox's cgroup counts CPU time), and the wall-clock limit of a `cpu` budget."""
    budget_s = config.budget_s if config.budget_s is not None else task_budget_s
    counts_cpu = sandbox_module.counts_cpu()
    mode = config.budget_mode or ("cpu" if counts_cpu and training_device(config.device) == "cpu" else "compute")
    if mode == "cpu" and not counts_cpu:
        raise ConfigError("budget_mode='cpu' needs a cgroup that counts CPU time, and this process cannot create "
                          "one (it can as root, or in a delegated cgroup v2 subtree); use budget_mode='compute'.")
    wall_limit_s = config.wall_limit_s if config.wall_limit_s is not None or mode != "cpu" else 20 * budget_s
    return dataclasses.replace(config, budget_s=budget_s, budget_mode=mode, wall_limit_s=wall_limit_s)


class PostTrainEnv(gym.Env[str, str]):
    """A post-training episode: base model, task, data and budget in; a post-trained model out."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, render_mode: str | None = None, **options: Any):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise PTBError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}.")
        from ptb_gym.tools import tools_for

        self.render_mode = render_mode
        config = EnvConfig.from_kwargs(**options)
        self.task = load_task(config.task)
        self.config = resolve_budget(config, self.task.budget_s)
        self.tools = tools_for(self.task)
        self.tool_schemas = [tool.schema for tool in self.tools.values()]
        self.observation_space = UnicodeText(self.config.max_observation_chars + 4_000)
        self.action_space = UnicodeText(MAX_ACTION_CHARS)
        self.episode: Episode | None = None
        self._transcript = _Transcript()
        self._recorder = None
        self._snapshotter: Snapshotter | None = None
        self._own_store: SnapshotStore | None = None
        self._forked_from: dict[str, Any] | None = None
        self._split_files: dict[tuple[str, int], bytes] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode. `options={"fork": snapshot}` starts it from a `Snapshot` (or from `{"recording": path,
        "step": K}`, the snapshot recorded after step K of that episode) instead: see `restore`."""
        super().reset(seed=seed)
        self._end_episode()
        fork = _fork_of(options)
        if fork is not None:
            episode_seed = fork.state["seed"]
        else:
            episode_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is None else int(seed)
        self.episode = episode = Episode.start(self.task, self.config, episode_seed, self.tools, self._split_file)
        observation = episode.briefing
        if fork is not None:
            try:
                restore(fork, episode)
            except BaseException:
                self._end_episode()
                raise
            observation += fork_notice(fork, episode)
        info = {"tools": self.tool_schemas, "budget": episode.budget.snapshot(), "task": episode.facts(),
                "workspace": str(episode.root), "sandbox": episode.sandbox.name, "seed": episode_seed,
                "disk_quota": episode.disk.quota}
        self._forked_from = fork.describe() if fork is not None else None
        if fork is not None:
            info["forked_from"] = self._forked_from
        self._transcript.start(episode_seed, observation)
        episode.observers.append(self._transcript)
        self._snapshotter = None
        if self.config.record_dir:
            from ptb_gym.recording import EpisodeRecorder

            header = {"env_id": self.spec.id if self.spec else "PostTrainEnv", "seed": episode_seed,
                      "spec": _spec_json(self.spec), "config": self.config.to_dict(),
                      "task": {"name": self.task.name, "description": self.task.title}, "observation": observation,
                      "info": info}
            self._recorder = EpisodeRecorder(self.config.record_dir, header, first_index=episode.steps)
            if self.config.snapshot_max_bytes:  # before the recorder: a step's line says what its snapshot is
                self._snapshotter = Snapshotter(SnapshotStore(Path(self.config.record_dir) / STORE_DIR),
                                                self.config.snapshot_max_bytes, str(self._recorder.path),
                                                self._forked_from)
                episode.observers.append(self._snapshotter)
            episode.observers.append(self._recorder)
            info["recording"] = str(self._recorder.path)
        return observation, info

    def snapshot(self) -> Snapshot:
        """The episode as it stands now (workspace, budget, steps, seeds), for `restore` or `reset(options={"fork":
        ...})`. Its files are in the recording directory's store when recording, else in a store of this env's
        that `close` deletes."""
        if self.episode is None or self.episode.outcome is not None:
            raise PTBError("There is no running episode to snapshot: call reset() first (an ended one cannot be "
                           "continued).")
        if self._snapshotter is None:  # not recording: a store of the env's own, no cap but the disk's
            if self._own_store is None:
                self._own_store = SnapshotStore.temporary(self.config.workdir)
            self._snapshotter = Snapshotter(self._own_store, 2**62, parent=self._forked_from)
        snapshot = self._snapshotter.capture(self.episode, self.episode.steps - 1)
        if self._snapshotter.recording is not None:
            snapshot = self._snapshotter.store.save(snapshot, Path(self._snapshotter.recording).name, snapshot.step)
        return snapshot

    def restore(self, snapshot: Snapshot) -> tuple[str, dict[str, Any]]:
        """End the current episode and start a new one from `snapshot`: its workspace (files and checkpoints),
        budget used, step count and hidden test split are the snapshot's; jobs that were running are not (the
        observation names them). Recorded under a new recording whose header names its parent."""
        return self.reset(options={"fork": snapshot})

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.episode is None:
            raise PTBError("Call reset() before step().")
        if self.episode.outcome is not None:
            raise PTBError("The episode is over (it was submitted or truncated): call reset() to start a new one.")
        step = self.episode.call(action)
        if self.episode.outcome is not None and self._recorder is not None:
            step.info["recording"] = str(self._recorder.path)
        return step.observation, float(step.reward), bool(step.terminated), bool(step.truncated), step.info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._transcript.text()
        return None

    def close(self) -> None:
        """Kill every process of the episode and delete its workspace; safe to call any number of times."""
        self._end_episode()
        if self._own_store is not None:
            self._own_store.remove()
            self._own_store = None
        super().close()

    def _end_episode(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        if self.episode is not None:
            self.episode.close()
            self.episode = None

    def _split_file(self, split: str, n: int) -> bytes:
        # Serialised once per env: encoding 5,200 records as JSON took most of a reset (about 45 ms of 70).
        if (split, n) not in self._split_files:
            records = self.task.records(split, n)
            self._split_files[split, n] = "".join(json.dumps(record) + "\n" for record in records).encode()
        return self._split_files[split, n]


class _Transcript:
    """The episode as text, for `render_mode="ansi"`."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def start(self, seed: int, observation: str) -> None:
        self.parts = [f"# reset (seed {seed})\n{observation}"]

    def on_step(self, episode: Episode, step: Step) -> None:
        arguments = ", ".join(f"{k}={shorten(repr(v), 80)}" for k, v in (step.arguments or {}).items())
        self.parts.append(f"# step {step.index}: {step.tool or 'invalid action'}({arguments})\n{step.observation}")

    def on_finish(self, episode: Episode, outcome: Outcome) -> None:
        pass

    def text(self) -> str:
        return "\n\n".join(self.parts) + "\n"


def _fork_of(options: dict[str, Any] | None) -> Snapshot | None:
    fork = (options or {}).get("fork")
    if fork is None or isinstance(fork, Snapshot):
        return fork
    if isinstance(fork, dict) and set(fork) == {"recording", "step"}:
        return find_snapshot(fork["recording"], int(fork["step"]))
    raise PTBError(f"options['fork'] must be a Snapshot (env.unwrapped.snapshot()) or {{'recording': path, 'step': K}}, "
                   f"got {fork!r}.")


def _spec_json(spec: Any) -> dict | None:
    if spec is None:
        return None
    try:
        return json.loads(spec.to_json())
    except Exception:  # noqa: BLE001 - a spec with non-JSON kwargs is simply not recorded
        return None
