"""Background jobs: launch a long command, follow it, wait for it, kill it."""

from __future__ import annotations

from ptb_gym.episode import Episode, truncate_middle
from ptb_gym.errors import ToolError
from ptb_gym.jobs import Job
from ptb_gym.protocol import ToolResult, tool


@tool
def launch(episode: Episode, command: str) -> ToolResult:
    """Start a shell command in the background (e.g. a training script); returns a job id at once.

    Args:
        command: A bash command, e.g. "python train.py". Its output goes to logs/<job id>.log.
    """
    if not command.strip():
        raise ToolError("command is empty.")
    job = episode.jobs.launch(["bash", "-c", command], meta={"command": command})
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
    episode.jobs.wait(job, min(max(0, timeout_s), episode.budget.remaining_s))
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
    metrics = [m for m in job.metrics() if "loss" in m]
    if metrics:
        last = metrics[-1]
        text += f", step {last['step']}/{last.get('max_steps', '?')}, loss {last['loss']:.4f}"
    if job.state == "timed_out":
        text += " - killed: the budget ran out"
    if "output_dir" in job.meta and job.state == "succeeded":
        text += f", saved to {job.meta['output_dir']}"
    return text


def last_lines(job: Job, lines: int, limit: int) -> str:
    text = job.log_path.read_text(errors="replace") if job.log_path.exists() else ""
    shown = "\n".join(text.splitlines()[-max(1, lines):])
    return truncate_middle(shown, limit - 300, job.meta.get("log_name", ""))


def _curve(job: Job | None) -> dict:
    if job is None:
        return {}
    curve = [{"step": m["step"], "loss": m["loss"]} for m in job.metrics() if "loss" in m]
    return {"loss_curve": curve} if curve else {}
