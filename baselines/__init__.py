"""Baseline agents and reference recipes (installed as `ptb_gym.baselines`)."""

from ptb_gym.baselines.agents import AGENTS, Agent, make_agent, play_episode

__all__ = ["AGENTS", "Agent", "make_agent", "play_episode"]
