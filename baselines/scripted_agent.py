"""The scripted agent: plays one of the task's recipes (`Task.recipes`, next to the task in `envs/<family>/`)
through tool calls only. `scripted` plays the reference recipe, `naive` the obvious one:

    ptb-gym run PTB/math-v0 --agent scripted
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ptb_gym.envs import load_task


@dataclass
class ScriptedAgent:
    """Write the recipe's data script, run it, train, wait, evaluate on dev, submit."""

    recipe: str = "reference"
    """Which of the task's recipes to play."""
    max_steps: int | None = None
    """Override of the recipe's training steps (short runs in tests)."""
    train_overrides: dict[str, Any] | None = None
    """More `train` arguments over the recipe's, e.g. a smaller `batch_size` for a real model on a CPU."""
    wait_chunk_s: int = 20
    """Seconds per `wait` call, so that progress shows while training runs."""
    evaluate_on_dev: bool = True

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        recipes = load_task(info["task"]["name"]).recipes
        if self.recipe not in recipes:
            raise ValueError(f"task {info['task']['name']!r} has no recipe {self.recipe!r}: {sorted(recipes)}")
        self._plan = self._actions(recipes[self.recipe])
        self._last: dict[str, Any] = info

    def act(self, observation: str, info: dict[str, Any]) -> dict[str, Any]:
        self._last, self._observation = info, observation
        return next(self._plan)

    def _actions(self, recipe) -> Iterator[dict[str, Any]]:
        train = {**recipe.train, **({"max_steps": self.max_steps} if self.max_steps else {}),
                 **(self.train_overrides or {})}
        yield call("list_files")
        yield call("write_file", path="make_data.py", content=recipe.data_script)
        yield call("run", command="python make_data.py")
        yield call("train", data=recipe.data, output_dir="final_model", **train)
        job_id = self._last["job"]["id"]
        while True:
            yield call("wait", job_id=job_id, timeout_s=self.wait_chunk_s)
            state = self._last.get("job", {}).get("state")
            if state == "failed":  # a recipe's bug: say so, rather than submit nothing until the step limit
                raise RuntimeError(f"the {recipe.name} recipe's training job {job_id} failed:\n{self._observation}")
            if state != "running":
                break
        if self.evaluate_on_dev:
            yield call("evaluate", checkpoint="final_model", limit=200)
        while True:  # submit until the env ends the episode (a failed submit says why and goes on)
            yield call("submit", checkpoint="final_model")


@dataclass
class NaiveAgent(ScriptedAgent):
    """The task's obvious recipe."""

    recipe: str = "naive"


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}
