"""Exact replay: re-run a recorded episode's actions on a fresh env and find the first step that differs.

`rerun(recording)` makes the env the recording's header describes (its id and config, the episode's seed, and
the hidden test split's seed from the footer, so the final scores compare), or, for a fork, forks it again from
its parent's snapshot; then it sends every recorded action and compares what comes back with what was recorded.

Training is seeded (data order, initialisation, dropout) and decoding is greedy, so on the same machine and
software the files, losses, dev scores and the final score repeat. What may still differ, and why:

- **timings** (durations, the budget used, a progress bar's rate): the machine's speed. They are masked before
  comparing, and do not count as a difference.
- **the progress of a running job** when a `wait` or `job_status` returns (which training step it reached): the
  machine's speed again. Such a step is reported as `timing` (`~`), not as a difference. A `wait` that saw its
  job end is replayed until the job ends here too, so the steps after it see the same finished job.
- **anything an agent command makes from time, randomness or the host** (`date`, an unseeded shuffle, `nproc`).
- **numbers on other hardware or software** (another CPU, a GPU, another torch): float reductions run in another
  order, so losses and then scores can drift; the report gives both values.
- **the hidden test split** of an interrupted recording (no footer, so no seed recorded): a fresh one is drawn
  and the final scores are not compared.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptb_gym.errors import PTBError
from ptb_gym.protocol import parse_action
from ptb_gym.recording import read_episode

_TIMING = [
    (re.compile(r"/[\w./-]*ptb-episode-[\w]+"), "<episode dir>"),   # the episode's directory on the host
    (re.compile(r"\b\d+(\.\d+)?( ?(s|ms|it/s|s/it)\b)"), r"<n>\2"),  # durations and rates
    (re.compile(r"\[\d\d:\d\d(<[\d:?]+)?"), "[<time>"),                   # a progress bar's elapsed<remaining
    (re.compile(r'("\w*(?:_s|runtime|_per_second)"): -?[\d.]+(?:e-?\d+)?'), r"\1: <n>"),  # timings in JSON metrics
]
_ENDED = ("succeeded", "failed", "killed", "timed_out")


def normalize(observation: str) -> str:
    """An observation with what depends on the machine's speed or the episode's directory masked."""
    for pattern, replacement in _TIMING:
        observation = pattern.sub(replacement, observation)
    return observation


@dataclass
class StepComparison:
    index: int
    tool: str | None
    status: str
    """`same`, `timing` (only a running job's progress differs) or `differs`."""
    detail: str = ""


@dataclass
class RerunReport:
    recording: Path
    rerun: Path | None
    """The new run's recording (None when it was not recorded)."""
    steps: list[StepComparison] = field(default_factory=list)
    recorded_reward: float | None = None
    reward: float | None = None
    scores_compared: bool = False
    scores_differ: list[str] = field(default_factory=list)
    """Harnesses whose final score differs (when the scores were compared)."""

    @property
    def first_difference(self) -> StepComparison | None:
        return next((step for step in self.steps if step.status == "differs"), None)

    @property
    def exact(self) -> bool:
        return self.first_difference is None and not self.scores_differ

    def text(self) -> str:
        marks = {"same": "=", "timing": "~", "differs": "x"}
        lines = [f"{marks[s.status]} step {s.index:>3} {s.tool or '?':<12} {s.status}" for s in self.steps]
        first = self.first_difference
        if first is not None:
            lines += ["", f"first difference: step {first.index} ({first.tool})", first.detail]
        if self.scores_compared:
            lines.append(f"final reward: recorded {_num(self.recorded_reward)}, now {_num(self.reward)}"
                         + (f"; scores differ under {', '.join(self.scores_differ)}" if self.scores_differ else
                            "; the same scores under every harness"))
        else:
            lines.append("final scores not compared: the recording has no footer (so no test split's seed), or the "
                         "re-run did not end")
        timing = sum(s.status == "timing" for s in self.steps)
        lines.append(("exact replay" if self.exact else "the replay differs")
                     + f": {len(self.steps)} steps, {timing} differing only in a running job's progress")
        return "\n".join(lines)


def rerun(recording: str | Path, **overrides: Any) -> RerunReport:
    """Re-run `recording`'s actions on a fresh env (`overrides`: env options, e.g. record_dir=None)."""
    import gymnasium as gym

    import ptb_gym  # noqa: F401 - registers the ids

    log = read_episode(recording)
    header, footer = log.header, log.footer
    config = {**(header.get("config") or {}), **overrides}
    seeded = footer is not None and footer.get("test_seed") is not None
    if seeded:
        config["test_seed"] = footer["test_seed"]
    parent = (header.get("info") or {}).get("forked_from")
    env = gym.make(header["env_id"], **config)
    report = RerunReport(Path(recording), None)
    try:
        if parent is not None:
            observation, info = env.reset(options={"fork": {"recording": parent["recording"], "step": parent["step"]}})
        else:
            observation, info = env.reset(seed=header["seed"])
        report.rerun = Path(info["recording"]) if info.get("recording") else None
        if normalize(observation) != normalize(header.get("observation", "")):
            report.steps.append(StepComparison(-1, "reset", "differs", _diff(header.get("observation", ""), observation)))
        ended = False
        for record in log.steps:
            observation, reward, terminated, truncated, info = env.step(_replayed_action(record, env))
            report.steps.append(_compare(record, observation, terminated, truncated, info))
            if terminated or truncated:
                ended = True
                report.reward = reward
                break
        if ended and seeded:
            report.scores_compared = True
            report.recorded_reward = footer.get("reward")
            recorded = {name: entry.get("score") for name, entry in (footer.get("scores") or {}).items()}
            now = {name: entry.get("score") for name, entry in (info.get("scores") or {}).items()}
            report.scores_differ = sorted(name for name in recorded.keys() | now.keys() if recorded.get(name) != now.get(name))
    finally:
        env.close()
    return report


class RecordedActions:
    """Tool calls played in order, as an agent (`ptb-gym fork` plays a parent's next actions, or a file's);
    None when they are used up."""

    def __init__(self, actions: list[Any]):
        self.actions = list(actions)

    @classmethod
    def from_file(cls, path: str | Path) -> RecordedActions:
        """One action per line: a tool call as JSON ({"tool": ..., "arguments": {...}})."""
        actions = []
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if line.strip():
                try:
                    actions.append(json.loads(line))
                except json.JSONDecodeError:
                    raise PTBError(f"{path}, line {number}: not JSON; write one tool call per line") from None
        return cls(actions)

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        self._next = iter(self.actions)

    def act(self, observation: str, info: dict[str, Any]) -> Any:
        return next(self._next, None)


def _replayed_action(record: dict[str, Any], env: Any) -> Any:
    """The recorded action; a `wait` that saw its job end waits here until it ends too (within the budget)."""
    action, job = record.get("action"), (record.get("info") or {}).get("job") or {}
    if record.get("tool") == "wait" and job.get("state") in _ENDED:
        try:
            call = parse_action(action)
        except Exception:  # noqa: BLE001 - an unparsable action is replayed as it was
            return action
        budget = env.unwrapped.episode.budget
        return {"tool": "wait", "arguments": {**call.arguments, "timeout_s": int(min(budget.wall_remaining_s, 86_400)) + 1}}
    return action


def _compare(record: dict[str, Any], observation: str, terminated: bool, truncated: bool,
             info: dict[str, Any]) -> StepComparison:
    index, tool = record.get("index", -1), record.get("tool")
    if (terminated, truncated) != (bool(record.get("terminated")), bool(record.get("truncated"))):
        return StepComparison(index, tool, "differs", f"recorded terminated={record.get('terminated')}, "
                              f"truncated={record.get('truncated')}; now terminated={terminated}, truncated={truncated}")
    recorded = record.get("observation", "")
    if normalize(recorded) == normalize(observation):
        return StepComparison(index, tool, "same")
    recorded_job = (record.get("info") or {}).get("job") or {}
    if tool in ("wait", "job_status") and recorded_job.get("state") == "running":
        return StepComparison(index, tool, "timing", _diff(recorded, observation))
    return StepComparison(index, tool, "differs", _diff(recorded, observation))


def _diff(recorded: str, now: str, max_lines: int = 20) -> str:
    lines = list(difflib.unified_diff(normalize(recorded).splitlines(), normalize(now).splitlines(),
                                      "recorded", "re-run", lineterm="", n=1))
    return "\n".join(lines[:max_lines] + ([f"... ({len(lines) - max_lines} more lines)"] if len(lines) > max_lines else []))


def _num(value: Any) -> str:
    return f"{value:+.4f}" if isinstance(value, (int, float)) else "none"
