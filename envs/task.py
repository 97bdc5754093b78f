"""What a task is: data, evaluation harnesses, and the recorded scores that normalise the reward.

A task declares; the env, the tools and the evaluator do the machinery. A harness fixes everything that
decides a score besides the weights (prompt format, shots, decoding length, answer extraction), because
PostTrainBench showed results move with the harness; the final info reports every harness and the reward
uses the primary one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Harness:
    """One way of evaluating a model on a task."""

    name: str
    description: str
    shots: int = 0
    """Solved train examples put before the question."""
    extraction: str = "strict"
    """How the answer is read from the completion: `strict` (`#### N`) or `last_number`."""
    max_new_tokens: int = 48
    """Greedy decoding length."""


@dataclass(frozen=True)
class Task:
    """A post-training task: what to train for, on what data, scored how."""

    name: str
    title: str
    goal: str
    """The task's paragraph of TASK.md: what the agent must achieve and in which format answers count."""
    harnesses: tuple[Harness, ...]
    primary_harness: str
    embedded_model: Path
    """The embedded tier's base model directory (real weights and tokenizer, shipped in the package)."""
    scores_file: Path
    """JSON with the recorded base and reference scores, per base model and harness."""

    def records(self, split: str, n: int) -> list[dict[str, Any]]:
        """The first `n` items of a split as JSON records (`train` and `dev` go to the workspace)."""
        raise NotImplementedError

    def prompt(self, item: dict[str, Any], harness: Harness) -> str:
        raise NotImplementedError

    def is_correct(self, item: dict[str, Any], completion: str, harness: Harness) -> bool:
        raise NotImplementedError

    def harness(self, name: str) -> Harness:
        for harness in self.harnesses:
            if harness.name == name:
                return harness
        raise KeyError(name)

    @cached_property
    def recorded_scores(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{base model key: {harness: {"base": score, "reference": score, ...}}}."""
        if not self.scores_file.exists():
            return {}
        return json.loads(self.scores_file.read_text())["models"]

    def scores_for(self, model_key: str) -> dict[str, dict[str, Any]] | None:
        return self.recorded_scores.get(model_key)
