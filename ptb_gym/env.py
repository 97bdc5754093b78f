"""`PostTrainEnv`: LLM post-training as a Gymnasium environment.

Observations and actions are text. An action is one tool call; the observation is the tool's output. The
episode ends with `terminated=True` when the agent submits a checkpoint, or `truncated=True` when the budget or
the step limit runs out (then `final_model/` in the workspace, if any, is scored). The reward is 0 on every
step but the last, which carries the normalized uplift of the scored model on the hidden test split.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from ptb_gym.budget import Budget
from ptb_gym.config import EnvConfig
from ptb_gym.envs import load_task
from ptb_gym.episode import Episode, truncate_middle
from ptb_gym.errors import PTBError, ToolError, did_you_mean
from ptb_gym.protocol import ToolResult, parse_action
from ptb_gym.sandbox import make_sandbox
from ptb_gym.scoring import score_episode
from ptb_gym.spaces import UnicodeText
from ptb_gym.workspace import Workspace

logger = logging.getLogger("ptb_gym")

MAX_ACTION_CHARS = 200_000  # a tool call may carry a whole script or a batch of data records
SUMMARY_CHARS = 4_000  # room for the final score summary after the last tool output


class PostTrainEnv(gym.Env[str, str]):
    """A post-training episode: base model, task, data and budget in; a post-trained model out."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, render_mode: str | None = None, **options: Any):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise PTBError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}.")
        from ptb_gym.tools import ALL_TOOLS, TOOLS_BY_NAME

        self.render_mode = render_mode
        self.config = EnvConfig.from_kwargs(**options)
        self.task = load_task(self.config.task)
        self.tools = TOOLS_BY_NAME
        self.tool_schemas = [t.schema for t in ALL_TOOLS]
        self.max_observation_chars = self.config.max_observation_chars + SUMMARY_CHARS
        self.observation_space = UnicodeText(self.max_observation_chars)
        self.action_space = UnicodeText(MAX_ACTION_CHARS)
        self.episode: Episode | None = None
        self._transcript: list[str] = []
        self._recorder = None
        self._steps = 0
        self._done = False
        self._split_files: dict[tuple[str, int], bytes] = {}

    # ------------------------------------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._end_episode()
        episode_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is None else int(seed)
        config, task = self.config, self.task
        base_model = Path(config.base_model) if config.base_model else task.embedded_model
        if not (base_model / "config.json").exists():
            raise PTBError(f"Base model {str(base_model)!r} is not a local checkpoint directory (no config.json).")
        workspace = Workspace(config.workdir)
        workspace.install_readonly(base_model, "base_model")
        (workspace.root / "data").mkdir()
        (workspace.root / "data" / "train.jsonl").write_bytes(self._split_file("train", config.train_size))
        (workspace.root / "data" / "dev.jsonl").write_bytes(self._split_file("dev", config.dev_size))
        observation = self._task_prompt()
        (workspace.root / "TASK.md").write_text(observation)
        self.episode = Episode(task, config, episode_seed, workspace, make_sandbox(config.sandbox),
                               Budget(config.budget_s, config.budget_mode), base_model)
        self._steps, self._done = 0, False
        self._transcript = [f"# reset (seed {episode_seed})\n{observation}"]
        info = {"tools": self.tool_schemas, "budget": self.episode.budget.snapshot(), "task": self._task_facts(),
                "workspace": str(workspace.root), "sandbox": self.episode.sandbox.name, "seed": episode_seed}
        if config.record_dir:
            from ptb_gym.recording import EpisodeRecorder

            spec = self.spec.to_json() if self.spec is not None and _json_ok(self.spec) else None
            self._recorder = EpisodeRecorder(config.record_dir, {
                "env_id": self.spec.id if self.spec else "PostTrainEnv", "seed": episode_seed,
                "spec": json.loads(spec) if spec else None, "config": config.to_dict(),
                "task": {"name": task.name, "description": task.title}, "observation": observation, "info": info})
            info["recording"] = str(self._recorder.path)
        return observation, info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.episode is None:
            raise PTBError("Call reset() before step().")
        if self._done:
            raise PTBError("The episode is over (it was submitted or truncated): call reset() to start a new one.")
        episode = self.episode
        started, started_wall = time.monotonic(), time.time()
        self._steps += 1
        name = arguments = None
        info: dict[str, Any] = {"step": self._steps}
        try:
            call = parse_action(action)
            name, arguments = call.name, call.arguments
            if call.name not in self.tools:
                raise ToolError(f"Unknown tool {call.name!r}.{did_you_mean(call.name, self.tools)} "
                                f"Tools: {', '.join(self.tools)}.")
            if episode.budget.exhausted:
                raise ToolError("The budget is used up.")
            with episode.budget.metered():
                result = self.tools[call.name](episode, call.arguments)
        except ToolError as error:
            result = ToolResult(f"Error: {error}")
            info["error"] = str(error)
        info.update(result.info, tool=name, budget=episode.budget.snapshot())
        observation = truncate_middle(result.text, self.config.max_observation_chars)

        terminated = episode.submission is not None
        truncated = not terminated and (episode.budget.exhausted or self._steps >= self.config.max_steps)
        reward = 0.0
        if terminated or truncated:
            reason = None if terminated else ("budget" if episode.budget.exhausted else "step limit")
            outcome = score_episode(episode, truncated_by=reason)
            reward = outcome.reward
            info.update(outcome.info)
            observation = truncate_middle(observation + "\n\n" + outcome.summary, self.max_observation_chars)
            self._done = True
        self._transcript.append(f"# step {self._steps}: {name or 'invalid action'}({_short_args(arguments)})\n"
                                f"{observation}")
        if self._recorder is not None:
            self._recorder.step({
                "action": action if isinstance(action, (str, dict)) else repr(action), "tool": name,
                "arguments": arguments, "observation": observation, "reward": reward, "terminated": terminated,
                "truncated": truncated, "info": info, "started_at": started_wall,
                "duration_s": round(time.monotonic() - started, 4)})
            if self._done:
                info["recording"] = str(self._recorder.path)
                self._recorder.footer({**outcome.footer, "steps": self._steps})
        return observation, float(reward), bool(terminated), bool(truncated), info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "\n\n".join(self._transcript) + "\n"
        return None

    def close(self) -> None:
        """Kill every process of the episode and delete its workspace; safe to call any number of times."""
        self._end_episode()
        super().close()

    # -------------------------------------------------------------------------------------------- internals

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

    def _task_facts(self) -> dict[str, Any]:
        task = self.task
        return {"name": task.name, "title": task.title, "primary_harness": task.primary_harness,
                "harnesses": {h.name: h.description for h in task.harnesses}}

    def _task_prompt(self) -> str:
        config, task = self.config, self.task
        tools = "\n".join(f"- `{s['function']['name']}`: {s['function']['description'].splitlines()[0]}"
                          for s in self.tool_schemas)
        budget = f"{config.budget_s:.0f} s of {'compute (tool calls and running jobs)' if config.budget_mode == 'compute' else 'wall-clock time'}"
        return f"""# Task: {task.title}

{task.goal}

## Workspace
- `base_model/`: the base model to post-train (read-only; load it with transformers `from_pretrained`).
- `data/train.jsonl` ({config.train_size} items) and `data/dev.jsonl` ({config.dev_size} items).
- Write anything else anywhere in the workspace. Save your final model to `final_model/` with
  `save_pretrained` (safetensors), or a LoRA adapter there, then call `submit`.

## Budget and rules
- Budget: {budget}; at most {config.max_steps} tool calls. When the budget runs out, `final_model/` is scored.
- The score is the accuracy on a hidden test split (never in the workspace) under the harness above,
  normalized: 0 = the base model, 1 = the reference post-training.
- Commands run offline in a sandbox. The submission must be the base model post-trained (same architecture
  and tokenizer), saved with safetensors; training on test items is detected and scores 0.

## Tools
{tools}

An action is one tool call: {{"tool": "<name>", "arguments": {{...}}}}, its JSON string, or an OpenAI tool call.
"""


def _short_args(arguments: dict[str, Any] | None) -> str:
    if not arguments:
        return ""
    return ", ".join(f"{k}={truncate_middle(repr(v), 80)}" for k, v in arguments.items())


def _json_ok(spec: Any) -> bool:
    try:
        spec.to_json()
        return True
    except Exception:  # noqa: BLE001 - a spec with non-JSON kwargs is simply not recorded
        return False
