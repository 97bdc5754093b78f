"""How much a task's verdicts depend on its evaluation harness, the way PostTrainBench found they do.

`ptb-gym harness-study PTB/math-v1` plays every scripted strategy of the task (or reads the strategies' scores
recorded by the last calibration, `--recorded`), then prints each strategy's mean score under every harness,
Kendall's tau between the strategies' rankings under each pair of harnesses (1: the same order, -1: reversed),
and writes a plot of score per harness per strategy (PNG; needs matplotlib, the `plot` extra).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def table(calibration: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{harness: {"base": score, strategy: mean score, ...}} from a calibration's result or recorded entry."""
    harnesses = calibration.get("harnesses", calibration)
    out = {}
    for harness, entry in harnesses.items():
        out[harness] = {"base": entry["base"]}
        out[harness].update({name: value for name, value in entry.items()
                             if isinstance(value, (int, float)) and name != "base"})
    return out


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two score lists (ties allowed); None when one of them is constant."""
    concordant = discordant = ties_x = ties_y = 0
    for (a, b), (c, d) in itertools.combinations(zip(x, y, strict=True), 2):
        dx, dy = a - c, b - d
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif (dx > 0) == (dy > 0):
            concordant += 1
        else:
            discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return None if denominator == 0 else (concordant - discordant) / denominator


def taus(scores: dict[str, dict[str, float]], strategies: Sequence[str]) -> dict[tuple[str, str], float | None]:
    """Kendall's tau of the strategies' rankings for each pair of harnesses."""
    return {(h1, h2): kendall_tau([scores[h1][s] for s in strategies], [scores[h2][s] for s in strategies])
            for h1, h2 in itertools.combinations(scores, 2)}


def report(scores: dict[str, dict[str, float]], primary: str | None = None) -> str:
    """The table and the taus as text."""
    strategies = [s for s in next(iter(scores.values())) if s != "base"]
    columns = ["base", *strategies]
    width = max(len(h) for h in scores) + 2
    lines = [f"{'harness':<{width}}" + "".join(f"{c:>11}" for c in columns)]
    for harness, row in scores.items():
        label = harness + (" *" if harness == primary else "")
        lines.append(f"{label:<{width}}" + "".join(f"{row[c]:>11.1%}" for c in columns))
    if primary:
        lines.append("(* the primary harness)")
    lines.append("")
    lines.append(f"Kendall's tau between the rankings of {len(strategies)} strategies:")
    for (h1, h2), tau in taus(scores, strategies).items():
        lines.append(f"  {h1} vs {h2}: {'undefined (a constant row)' if tau is None else f'{tau:+.2f}'}")
    return "\n".join(lines)


def plot(scores: dict[str, dict[str, float]], path: Path, title: str) -> Path:
    """Score per harness (x) per strategy (one line each), as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise RuntimeError("the plot needs matplotlib: pip install 'ptb-gym[plot]'") from error
    harnesses = list(scores)
    strategies = list(next(iter(scores.values())))
    figure, axes = plt.subplots(figsize=(1.8 + 1.6 * len(harnesses), 4.2), dpi=120)
    for strategy in strategies:
        axes.plot(harnesses, [100 * scores[h][strategy] for h in harnesses], marker="o",
                  linestyle="--" if strategy == "base" else "-", label=strategy)
    axes.set_ylabel("score on the hidden test split (%)")
    axes.set_ylim(0, 100)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def recorded(task) -> dict[str, Any]:
    """The calibration recorded in the task's scores file (for the embedded base model)."""
    from ptb_gym.config import EMBEDDED_MODEL_KEY

    if not task.scores_file.exists():
        raise FileNotFoundError(f"{task.scores_file} does not exist: run `ptb-gym calibrate` first")
    return json.loads(task.scores_file.read_text())["models"][EMBEDDED_MODEL_KEY]
