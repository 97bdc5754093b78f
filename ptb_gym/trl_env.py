"""ptb-gym episodes as TRL environments: `GRPOTrainer(environment_factory=PostTrainEnvironments("PTB/math-v0"))`.

TRL's contract (`GRPOTrainer`, TRL 1.16): the factory is called with no arguments, once per concurrent rollout,
and its instances are pooled and reused from batch to batch. Before each rollout TRL calls `reset(**row)` with
the dataset row and appends the string it returns to the prompt's last user message. Every public method of the
instance's class is a tool: transformers' `get_json_schema` reads its schema from the signature and the
Google-style docstring, the chat template shows it to the model, and TRL calls the method with the arguments
the model wrote. Once the rollout is over, TRL calls `get_reward()`.

Here `reset` starts an episode (as `gym.make(env_id, **options).reset()` does) and returns its briefing (TASK.md);
the methods are the episode's tools, made from its schemas, so the model is shown what `info["tools"]` says:
the same names, descriptions, parameter types, enums and required parameters, with each default written into its
parameter's description (`get_json_schema` has no other place for it). Each call goes through `env.step`, so
`Episode.call` stays the one dispatch path, and returns the observation. `get_reward` returns the episode's reward;
a rollout that ended without `submit` is ended as a truncated episode is (`final_model/` scored if there is one,
else 0), and an episode whose scoring failed for a reason the agent cannot cause (`info["valid"]` False) gives
None, which TRL leaves out of the advantages rather than learning from a false 0.

The policy's chat template must render tool calls, in a form TRL can parse: `use_tool_calling_template` gives a
tokenizer whose template cannot (SmolLM2-Instruct's) the Hermes-style one of Qwen2.5, which TRL parses.
"""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym

from ptb_gym.errors import PTBError

if TYPE_CHECKING:
    from ptb_gym.episode import Episode

ROLLOUT_END = "rollout"
"""`info["truncated_by"]` of an episode whose rollout ended before the policy submitted."""

_PYTHON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict}


class PostTrainEnvironment:
    """One rollout's episode, driven by TRL. Made by `PostTrainEnvironments`, whose class adds the task's tools."""

    def __init__(self, env_id: str, options: dict[str, Any]) -> None:
        self.env = gym.make(env_id, **options)
        self.info: dict[str, Any] = {}
        """The info of the reset, then of the last step (the final one, with `scores`, once the episode is over)."""

    def reset(self, seed: int | None = None, **row: Any) -> str:
        """Start a new episode (the previous one is closed); TRL appends the briefing to the prompt.

        `seed` may come from a dataset column; the other columns of the row are not used.
        """
        observation, self.info = self.env.reset(seed=seed)
        return observation

    def get_reward(self) -> float | None:
        """The episode's reward, ending it first if the rollout ended without a submission."""
        episode = self._episode()
        if episode.outcome is None:
            self.info = {**self.info, **episode.end(ROLLOUT_END).info}
        if not episode.outcome.info["valid"]:
            return None
        return float(episode.outcome.reward)

    def _call(self, tool: str, arguments: dict[str, Any]) -> str:
        if self._episode().outcome is not None:
            return "Error: the episode is over (submitted, or out of budget or steps): make no more tool calls."
        observation, _, _, _, self.info = self.env.step({"tool": tool, "arguments": arguments})
        return observation

    def _episode(self) -> Episode:
        episode = self.env.unwrapped.episode
        if episode is None:
            raise PTBError("No episode is running: TRL calls reset() before the tools and get_reward().")
        return episode

    def _close(self) -> None:
        self.env.close()


class PostTrainEnvironments:
    """The `environment_factory` of TRL's `GRPOTrainer`: one `PostTrainEnvironment` per call, closed by `close()`.

    `PostTrainEnvironments("PTB/math-v0", budget_s=120, test_size=32)` takes `gym.make`'s id and options; they are
    checked here, so a wrong one fails before training starts.
    """

    def __init__(self, env_id: str = "PTB/math-v0", **options: Any) -> None:
        self.env_id, self.options = env_id, options
        probe = gym.make(env_id, **options)
        try:
            self.tool_schemas: list[dict[str, Any]] = probe.unwrapped.tool_schemas
        finally:
            probe.close()
        methods = {schema["function"]["name"]: tool_method(schema) for schema in self.tool_schemas}
        clash = {"reset", "get_reward"} & set(methods)
        if clash:
            raise PTBError(f"The task has a tool named {min(clash)!r}, which TRL reserves for its own use.")
        self.environment_class = type("PostTrainEnvironment", (PostTrainEnvironment,),
                                      {**methods, "__doc__": f"A {env_id} episode; its tools are its methods."})
        self.environments: list[PostTrainEnvironment] = []

    def __call__(self) -> PostTrainEnvironment:
        environment = self.environment_class(self.env_id, self.options)
        self.environments.append(environment)
        return environment

    def close(self) -> None:
        """Close every environment made: their processes are killed and their workspaces deleted."""
        while self.environments:
            self.environments.pop()._close()

    def __enter__(self) -> PostTrainEnvironments:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def tool_method(schema: dict[str, Any]):
    """A method whose signature and Google-style docstring give `get_json_schema` the tool's OpenAI schema.

    The arguments are collected as they come and handed to the episode, which checks them against the schema (an
    unknown or mistyped argument is an observation that says how to fix the call, not a Python TypeError).
    """
    function = schema["function"]
    name, parameters = function["name"], function["parameters"]
    required = set(parameters.get("required", []))

    def method(self: PostTrainEnvironment, /, **arguments: Any) -> str:
        return self._call(name, arguments)

    signature, annotations, lines = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)], {}, []
    for argument, spec in parameters["properties"].items():
        annotations[argument] = _annotation(spec)
        default = inspect.Parameter.empty if argument in required else spec.get("default")
        signature.append(inspect.Parameter(argument, inspect.Parameter.KEYWORD_ONLY, default=default,
                                           annotation=annotations[argument]))
        note = f" (default: {json.dumps(spec['default'])})" if "default" in spec else ""
        lines.append(f"    {argument}: {spec.get('description', argument)}{note}")
    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(signature)
    method.__annotations__ = annotations
    method.__doc__ = function["description"] + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")
    return method


def _annotation(spec: dict[str, Any]) -> Any:
    """The Python type that `get_json_schema` turns back into the parameter's JSON schema type."""
    if "enum" in spec:
        return Literal[tuple(spec["enum"])]
    kind = spec.get("type")
    if kind is None:
        return Any
    if kind == "array":
        return list[_annotation(spec["items"])] if "items" in spec else list
    if kind not in _PYTHON_TYPES:
        raise PTBError(f"A tool parameter has JSON schema type {kind!r}, which has no Python type here: {spec}")
    return _PYTHON_TYPES[kind]


def use_tool_calling_template(tokenizer):
    """Give a tokenizer whose chat template cannot render tool calls the Hermes-style template of Qwen2.5, which TRL
    knows how to parse: the tools' schemas in the system message, each call
    `<tool_call>{"name": ..., "arguments": ...}</tool_call>`. It is ChatML (`<|im_start|>role ... <|im_end|>`), so it
    fits ChatML models such as SmolLM2-Instruct, whose own template has no tools; a tokenizer whose template renders
    tool calls is returned as it is.
    """
    from trl.chat_template_utils import qwen2_5_chat_template, supports_tool_calling

    if not supports_tool_calling(tokenizer):
        tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer
