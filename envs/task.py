"""What a task is: data, evaluation harnesses, scoring, and the recorded scores that normalise the reward.

A task declares; the episode, the tools and the verifier do the machinery. A harness fixes everything that
decides a score besides the weights (prompt format, shots, chat or plain text, decoding length, stop sequences,
answer extraction), because PostTrainBench showed results move with the harness; the final info reports every
harness and the reward uses the primary one.

A family subclasses `Task` (and `Harness` where it needs more fields) and implements `records`, `prompt` and
`score`; see `envs/math/__init__.py`, which fits on a screen.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Union

SHARED_MODEL = Path(__file__).parent / "ptb_small"
"""The embedded base model the families share (`baselines/pretrain_small.py` builds it; its model card says how)."""

CHAT_ENDS = ("<|end|>", "<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>")
"""Where a chat reply ends, for the tokenizers of the embedded and the real models (the ones that are special tokens
end decoding; the others cut the text)."""

Message = dict[str, str]
Prompt = Union[str, list[Message]]
"""A prompt is plain text, or chat messages rendered with the base tokenizer's chat template."""


@dataclass(frozen=True)
class Harness:
    """One way of evaluating a model on a task."""

    name: str
    description: str
    shots: int = 0
    """Solved examples put before the item (few-shot)."""
    chat: bool = False
    """The prompt is chat messages (rendered with the base tokenizer's chat template) rather than plain text."""
    max_new_tokens: int = 48
    """Greedy decoding length."""
    stop: tuple[str, ...] = ()
    """The completion ends before the first of these strings."""


@dataclass(frozen=True)
class Recipe:
    """A scripted post-training recipe: a data script run in the sandbox, then the `train` tool on its output."""

    name: str
    data_script: str
    """A Python script that writes `data` from the workspace's files."""
    data: str
    """The JSONL file the script writes, relative to the workspace."""
    train: dict[str, Any]
    """Arguments of the `train` tool beyond `data` and `output_dir` (empty: its defaults)."""


TUNED_SCHEDULE: dict[str, Any] = {"max_steps": 800, "learning_rate": 1e-3, "batch_size": 16}
"""The `train` arguments of every family's `tuned` and `reference` recipes: a better schedule than the defaults."""


@dataclass(frozen=True)
class Task:
    """A post-training task: what to train for, on what data, scored how."""

    name: str
    title: str
    goal: str
    """The task's paragraph of TASK.md: what the agent must achieve and exactly how the model is evaluated."""
    harnesses: tuple[Harness, ...]
    primary_harness: str
    embedded_model: Path
    """The embedded tier's base model directory (real weights and tokenizer, shipped in the package)."""
    scores_file: Path
    """JSON with the recorded base and reference scores, per base model and harness."""
    contamination_any_number: bool = False
    """The contamination check counts every number as the same word: for a benchmark whose test questions are
    rewritten with other numbers in circulating data (GSM8K, by GSM-Symbolic). Only where the public splits do not
    share the test's templates (generated math problems would then match by chance)."""
    budget_s: float = 600.0
    """The default compute budget of an episode: the reference recipe's jobs on 2 CPU cores, with room to spare
    (envs/CALIBRATION.md says what each needs)."""

    def records(self, split: str, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        """The first `n` items of a split as JSON records. `train` and `dev` are fixed (they go to the workspace);
        `test` is drawn from `seed`, the episode's secret, and never overlaps train or dev."""
        raise NotImplementedError

    def prompt(self, item: dict[str, Any], harness: Harness) -> Prompt:
        raise NotImplementedError

    def score(self, items: Sequence[dict[str, Any]], completions: Sequence[str], harness: Harness) -> list[float]:
        """Per item, the score of a completion in [0, 1] (batched: a family may execute code in a sandbox)."""
        raise NotImplementedError

    def question(self, item: dict[str, Any]) -> str:
        """The text that identifies an item, for the contamination check."""
        for key in ("question", "prompt", "problem", "text"):
            if isinstance(item.get(key), str):
                return item[key]
        return " ".join(str(value) for value in item.values() if isinstance(value, str))

    def expected(self, item: dict[str, Any]) -> Any:
        """What a right completion gives for an item, shown to the agent beside a wrong dev completion."""
        return item.get("answer")

    def public_files(self) -> dict[str, bytes]:
        """Files beside the splits that every workspace gets (relative path: content), e.g. `data/functions.json`."""
        return {}

    @property
    def tools(self) -> tuple:
        """Tools this family adds to the common ones (none by default)."""
        return ()

    @property
    def recipes(self) -> dict[str, Recipe]:
        """The family's scripted recipes by name; `reference` is the one its scores are normalised by."""
        return {}

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


def fixed_test_split(items: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The test split of a real benchmark: all its items (copies), or the first `n` of one fixed shuffle when `n` is
    smaller. The items are public, so no secret draws them; a fixed split keeps the base model's cached score valid
    (`ptb_gym.base_scores`) and makes runs on a subset comparable."""
    import random

    chosen = list(range(len(items)))
    if n < len(items):
        chosen = sorted(random.Random(0).sample(chosen, n))
    return [json.loads(json.dumps(items[i])) for i in chosen]
