"""The TRL adapter (`ptb_gym.trl_env`): the tools TRL shows the policy are the env's, its calls reach the episode,
the reward is the episode's, and GRPO runs over it on CPU (`examples/grpo_meta_agent.py`)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import SMALL

pytest.importorskip("trl", minversion="1.16", reason="environment_factory with get_reward needs trl>=1.16")

from transformers import AutoTokenizer
from transformers.utils import get_json_schema
from trl.chat_template_utils import add_response_schema, parse_response

from ptb_gym.trl_env import ROLLOUT_END, PostTrainEnvironments, use_tool_calling_template

REPO = Path(__file__).resolve().parents[1]
PTB_SMALL = REPO / "envs" / "ptb_small"


@pytest.fixture
def environments(tmp_path):
    with PostTrainEnvironments("PTB/math-v0", **SMALL, workdir=str(tmp_path / "episodes")) as made:
        yield made
    assert not any((tmp_path / "episodes").iterdir()), "a workspace outlived close()"


def trl_tools(environment) -> dict:
    """The methods GRPOTrainer makes tools of (its rule: the class's public functions but reset and get_reward)."""
    return {name: getattr(environment, name) for name, _ in inspect.getmembers(type(environment), inspect.isfunction)
            if name not in ("reset", "get_reward") and not name.startswith("_")}


def test_the_policy_is_shown_the_envs_tools(environments):
    environment = environments()
    environment.reset(seed=0)
    tools = trl_tools(environment)
    assert sorted(tools) == sorted(schema["function"]["name"] for schema in environment.info["tools"])
    for schema in environment.info["tools"]:
        # What get_json_schema can say is the env's schema; a default goes into its parameter's description.
        function = json.loads(json.dumps(schema["function"]))
        parameters = function["parameters"]
        del parameters["additionalProperties"]
        if not parameters["required"]:
            del parameters["required"]
        for spec in parameters["properties"].values():
            if "default" in spec:
                spec["description"] += f" (default: {json.dumps(spec.pop('default'))})"
        assert get_json_schema(tools[function["name"]]) == {"type": "function", "function": function}


def test_a_scripted_rollout_reaches_the_reward(environments):
    environment = environments()
    briefing = environment.reset(seed=0, prompt=[{"role": "user", "content": ""}])  # TRL passes the dataset row
    assert briefing.startswith("# Task") and "submit" in briefing
    workspace = Path(environment.info["workspace"])
    assert "TASK.md" in environment.list_files()
    wrong = environment.read_file(path="TASK.md", lines=3)  # a mistake is an observation, not a TypeError
    assert wrong.startswith("Error:") and "max_lines" in wrong and environment.info["error"]
    assert "config.json" in environment.run(command="cp -r base_model final_model && ls final_model")
    reward = environment.get_reward()  # no submit: the rollout's end scores final_model/, as a truncation would
    assert isinstance(reward, float) and environment.info["truncated_by"] == ROLLOUT_END
    assert environment.info["checkpoint"] == "final_model" and "zero_shot_strict" in environment.info["scores"]
    assert environment.get_reward() == reward

    environment.reset(seed=1)  # TRL reuses its instances: the next rollout is a new episode
    assert not workspace.exists()
    over = environment.submit(checkpoint="base_model")
    assert "Episode over." in over and environment.info["submitted"]
    assert environment.get_reward() == environment.info["uplift"]
    assert "episode is over" in environment.write_file(path="late.txt", content="x")


def test_a_tool_call_as_trl_parses_it_runs_in_the_episode(environments):
    tokenizer = add_response_schema(use_tool_calling_template(AutoTokenizer.from_pretrained(PTB_SMALL)))
    environment = environments()
    tools = list(trl_tools(environment).values())
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": environment.reset(seed=0)}], tools=tools,
                                           add_generation_prompt=True, tokenize=True, return_dict=False)
    assert '"name": "list_files"' in tokenizer.decode(prompt)
    reply = tokenizer.encode('<tool_call>\n{"name": "list_files", "arguments": {"depth": "1"}}\n</tool_call><|im_end|>')
    message = parse_response(tokenizer, reply, prefix=prompt, tools=tools)
    call = message["tool_calls"][0]["function"]
    assert call == {"name": "list_files", "arguments": {"depth": 1}}  # typed by the schema TRL was shown
    observation = getattr(environment, call["name"])(**call["arguments"])
    assert "TASK.md" in observation and "error" not in environment.info


def test_grpo_runs_optimisation_steps_over_episodes(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("grpo_meta_agent", REPO / "examples" / "grpo_meta_agent.py")
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, example)  # a dataclass looks its module up while it is made
    spec.loader.exec_module(example)
    config = example.Config(model=str(PTB_SMALL), steps=2, generations=2, max_completion_length=24,
                            output_dir=str(tmp_path / "out"), workdir=str(tmp_path / "episodes"), env_options=SMALL)
    history = example.main(config)
    assert [entry["step"] for entry in history] == [1, 2]
    for entry in history:  # the reward came from the episodes (get_reward), logged under the environment's class
        assert entry["rewards/PostTrainEnvironment/mean"] == entry["reward"]
        assert entry["completions/mean_length"] > 0
    assert not any((tmp_path / "episodes").iterdir())
