"""Background jobs: launch a long command, follow it, wait for it, kill it."""

from __future__ import annotations

from ptb_gym.episode import Episode
from ptb_gym.jobs import TAIL_BYTES, Job
from ptb_gym.protocol import ToolResult, tool
from ptb_gym.tools.shell import bash
from ptb_gym.text import shorten


@tool
def launch(episode: Episode, command: str) -> ToolResult:
    """Start a shell command in the background (e.g. a training script); returns a job id at once.

    Args:
        command: A bash command, e.g. "python train.py". Its output goes to logs/<job id>.log.
    """
    job = episode.jobs.launch(bash(command), meta={"command": command})
    return ToolResult(f"Started {job.id}: {command}\nLog: logs/{job.id}.log. Follow it with job_status, tail or wait.",
                      {"job": job.summary()})


@tool
def job_status(episode: Episode, job_id: str = "") -> ToolResult:
    """Show the state of one job, or of all jobs, with the latest training metrics.

    Args:
        job_id: The job to show, e.g. "job-1"; empty for all jobs.
    """
    jobs = [episode.jobs.get(job_id)] if job_id else list(episode.jobs.jobs.values())
    if not jobs:
        return ToolResult("No jobs yet. Start one with launch or train.", {"jobs": []})
    episode.jobs.poll()
    return ToolResult("\n".join(describe(job) for job in jobs), {"jobs": [job.summary() for job in jobs],
                                                                   **_curve(jobs[0] if job_id else None)})


@tool
def tail(episode: Episode, job_id: str, lines: int = 40) -> ToolResult:
    """Show the last lines of a job's log.

    Args:
        job_id: The job, e.g. "job-1".
        lines: How many lines.
    """
    job = episode.jobs.get(job_id)
    return ToolResult(f"{describe(job)}\n{last_lines(job, lines, episode.config.max_observation_chars)}",
                      {"job": job.summary()})


@tool
def wait(episode: Episode, job_id: str, timeout_s: int = 300) -> ToolResult:
    """Wait until a job ends (or the timeout passes), then show its state and the end of its log.

    Args:
        job_id: The job, e.g. "job-1".
        timeout_s: Longest wait in seconds (capped by the budget left).
    """
    job = episode.jobs.get(job_id)
    episode.jobs.wait(job, min(max(0, timeout_s), episode.budget.wall_remaining_s))
    return ToolResult(f"{describe(job)}\n{last_lines(job, 15, episode.config.max_observation_chars)}",
                      {"job": job.summary(), **_curve(job)})


@tool
def kill(episode: Episode, job_id: str) -> ToolResult:
    """Stop a running job and every process it started.

    Args:
        job_id: The job, e.g. "job-1".
    """
    job = episode.jobs.kill(job_id)
    return ToolResult(describe(job), {"job": job.summary()})


def describe(job: Job) -> str:
    text = f"{job.id} [{job.kind}] {job.state}"
    if job.exit_code is not None and job.state != "succeeded":
        text += f" (exit code {job.exit_code})"
    text += f", {job.runtime_s:.1f} s"
    metrics = _losses(job)
    if metrics:
        last = metrics[-1]
        text += f", step {last.get('step', '?')}/{last.get('max_steps', '?')}, loss {last['loss']:.4f}"
    if job.state == "timed_out":
        text += " - killed: the budget ran out"
    if "output_dir" in job.meta and job.state == "succeeded":
        text += f", saved to {job.meta['output_dir']}"
    return text


def last_lines(job: Job, lines: int, limit: int) -> str:
    """The last `lines` lines of the job's log, from at most its last TAIL_BYTES (read by seeking)."""
    data, start = job.log.tail(TAIL_BYTES)
    text = data.decode(errors="replace")
    if start > 0:
        text = text.partition("\n")[2]  # the first line read is probably cut
    shown = "\n".join(text.splitlines()[-max(1, min(lines, 10_000)):])
    if start > 0 and lines > shown.count("\n") + 1:
        shown = f"[showing the end of a {start + len(data)}-byte log]\n{shown}"
    return shorten(shown, limit - 300, where=job.meta.get("log_name", ""))


def _curve(job: Job | None) -> dict:
    if job is None:
        return {}
    curve = [{"step": m.get("step"), "loss": m["loss"]} for m in _losses(job)]
    return {"loss_curve": curve} if curve else {}


def _losses(job: Job) -> list[dict]:
    """Metric records with a numeric loss (a job's script may print any PTB_METRICS line)."""
    return [m for m in job.metrics()
            if isinstance(m.get("loss"), (int, float)) and not isinstance(m.get("loss"), bool)]
