"""Every error ptb-gym raises.

Two kinds matter to users. A `ToolError` is the agent's mistake (a bad path, a malformed tool call, a
crashed training script): the env turns it into an observation and the episode goes on ("a bad rollout is
data, not a crash"). Everything else is a `PTBError` raised to the caller: a misconfigured env, an unreadable
recording, a broken installation.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PTBError(Exception):
    """Base class of every error ptb-gym raises."""


class ConfigError(PTBError, ValueError):
    """The env, a task or a tool was configured with invalid values."""


class ToolError(PTBError):
    """The agent's tool call failed in a way the agent can fix; the message becomes the observation."""


class RecordingError(PTBError):
    """An episode recording is malformed or of a version this ptb-gym cannot read."""


class IntegrityError(PTBError):
    """A submission failed an integrity check (contamination, lineage, tampering)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix for an unknown name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
