"""ptb-gym: LLM post-training as a Gymnasium environment.

    import gymnasium as gym
    import ptb_gym

    gym.register_envs(ptb_gym)
    env = gym.make("PTB/math-v0")

Importing the package registers the `PTB/` ids and nothing heavier: torch and transformers are imported
where a model is trained or scored.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any


def _refuse_an_uninstalled_source_tree() -> None:
    """A source checkout imported as is (the current directory is first on sys.path, or PYTHONPATH names it) has
    no `ptb_gym.envs` of its own: only an install of the tree maps its top-level `envs/` there (an editable install
    of another checkout maps that one's). Say so now, not later as a bare `No module named 'ptb_gym.envs'` or as
    one tree's code scoring another's tasks."""
    tree = Path(__file__).resolve().parent.parent
    if not ((tree / "pyproject.toml").is_file() and (tree / "envs" / "task.py").is_file()):
        return  # an installed package: its envs are its own
    spec = importlib.util.find_spec("ptb_gym.envs")
    if spec is not None and spec.origin is not None and Path(spec.origin).resolve().is_relative_to(tree):
        return
    elsewhere = f" (the installed ptb-gym's are at {Path(spec.origin).parent})" if spec and spec.origin else ""
    raise ImportError(
        f"ptb_gym is imported from the source tree {tree} (first on sys.path: the current directory or "
        f"PYTHONPATH), which is not the installed ptb-gym; its task packages (envs/) are ptb_gym.envs only in an "
        f"install of it{elsewhere}. Install it (`pip install -e {tree}`), or run from another directory to use the "
        f"installed ptb-gym.")


_refuse_an_uninstalled_source_tree()

import gymnasium as gym  # noqa: E402

from ptb_gym.registration import ENVS  # noqa: E402

ENV_IDS = tuple(entry.id for entry in ENVS)

for _entry in ENVS:
    if _entry.id not in gym.registry:
        gym.register(
            id=_entry.id,
            entry_point="ptb_gym.env:PostTrainEnv",
            kwargs={"task": _entry.task, **_entry.kwargs},
            # Training and the secret test split make transitions nondeterministic.
            nondeterministic=True,
        )

# Public names, imported on first use so that `import ptb_gym` stays light.
_LAZY = {
    "PostTrainEnv": "ptb_gym.env",
    "EnvConfig": "ptb_gym.config",
    "Episode": "ptb_gym.episode",
    "Step": "ptb_gym.episode",
    "Tool": "ptb_gym.protocol",
    "ToolCall": "ptb_gym.protocol",
    "ToolResult": "ptb_gym.protocol",
    "tool": "ptb_gym.protocol",
    "parse_action": "ptb_gym.protocol",
    "parse_tool_call": "ptb_gym.tool_calls",
    "TextToolCall": "ptb_gym.tool_calls",
    "RetryInfrastructureFailures": "ptb_gym.wrappers",
    "PostTrainingDecisions": "ptb_gym.wrappers",
    "EpisodeRecorder": "ptb_gym.recording",
    "EpisodeLog": "ptb_gym.recording",
    "read_episode": "ptb_gym.recording",
    "PTBError": "ptb_gym.errors",
    "ToolError": "ptb_gym.errors",
    "ConfigError": "ptb_gym.errors",
    "IntegrityError": "ptb_gym.errors",
    "RecordingError": "ptb_gym.errors",
}

__all__ = ["ENV_IDS", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "__version__":
        # Looked up on first use: importlib.metadata and its scan of the installed packages were about a sixth
        # of `import ptb_gym` (benchmarks/env_latency.py).
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("ptb-gym")
        except PackageNotFoundError:  # running from a source tree that is not installed
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'ptb_gym' has no attribute {name!r}")
