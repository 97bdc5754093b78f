"""The agent protocol of the baselines, and their registry for `ptb-gym run --agent NAME`."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

AGENTS = {
    "scripted": "ptb_gym.baselines.scripted_agent:ScriptedAgent",
    "naive": "ptb_gym.baselines.scripted_agent:NaiveAgent",
    "random": "ptb_gym.baselines.random_agent:RandomAgent",
}


class Agent(Protocol):
    """Anything that turns an observation (and the step's info) into the next tool call."""

    def reset(self, observation: str, info: dict[str, Any]) -> None: ...

    def act(self, observation: str, info: dict[str, Any]) -> dict[str, Any] | str: ...


def make_agent(name: str, **kwargs: Any) -> Agent:
    if name not in AGENTS:
        from ptb_gym.errors import ConfigError, did_you_mean

        raise ConfigError(f"Unknown agent {name!r}.{did_you_mean(name, AGENTS)} Agents: {', '.join(AGENTS)}.")
    module, cls = AGENTS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


def play_episode(env: Any, agent: Agent, seed: int | None = None) -> dict[str, Any]:
    """Play one whole episode of `env` with `agent`; returns the final info."""
    observation, info = env.reset(seed=seed)
    agent.reset(observation, info)
    while True:
        observation, _, terminated, truncated, info = env.step(agent.act(observation, info))
        if terminated or truncated:
            return info
