"""Score a candidate base model, as it is, under every harness of the tasks that share the embedded base model.

Usage (from the repository root, with ptb-gym installed):

    python baselines/probe_base.py /tmp/ptb_small_candidate --items 300 --device cuda

A new base model changes every recorded score, so it is probed before it replaces one: the embedded tier wants a
base that is weak zero-shot (at most 10% on each task's primary harness) yet able to copy a format from the shots
of a few-shot prompt, as PostTrainBench's base models do. Prints a table and, per task, the first completions of
the few-shot harness (what the model writes after the shots is the diagnosis when it scores nothing), and for
math how likely the model finds the answer marker `####` of a worked solution with and without the shots, and
whether the model can copy at all: how much likelier random tokens are when they repeat a run earlier in the
context (an induction head's work).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def probe(model_dir: Path, items: int, device: str, tasks: list[str], show: int) -> dict[str, dict[str, float]]:
    from ptb_gym import checkpoints
    from ptb_gym.envs import load_task
    from ptb_gym.evaluation import evaluate_model

    device = checkpoints.resolve_device(device)
    model = checkpoints.load_model(model_dir, model_dir, device)
    tokenizer = checkpoints.load_tokenizer(model_dir)
    table: dict[str, dict[str, float]] = {}
    for name in tasks:
        task = load_task(name)
        test = task.records("test", items, seed=12345)
        scores = evaluate_model(model, tokenizer, task, test, batch_size=256 if device == "cuda" else 64)
        table[name] = {harness: round(score.score, 4) for harness, score in scores.items()}
        print(f"{name}: " + ", ".join(f"{h} {100 * s:.1f}%" for h, s in table[name].items()), flush=True)
        few_shot = next((h.name for h in task.harnesses if h.shots), None)
        for completion in scores[few_shot].completions[:show] if few_shot else ():
            print(f"    few-shot completion: {completion[:160]!r}")
        print("    right completion's tokens the model ranks first, teacher-forced: " + ", ".join(
            f"{h.name} {100 * ranked_first(model, tokenizer, task, h, test[:40]):.0f}%" for h in task.harnesses
            if not h.chat and getattr(h, "syntax", "json") == "json"))  # the calls it writes are JSON
    math = load_task("math-v1")
    print("math-v1: log-probability of `####` in a worked solution, teacher-forced, per harness: " + ", ".join(
        f"{h.name} {marker_logprob(model, tokenizer, math, h, math.records('test', 40, seed=12345)):.1f}"
        for h in math.harnesses if h.extraction == "strict"))
    prompts = [math.prompt(item, math.harness(math.primary_harness)) for item in math.records("test", 40)]
    print(f"copying: random runs of a prompt's tokens, repeated, are {copy_gain(model, tokenizer, prompts):.2f} "
          "nats/token likelier the second time")
    return table


def copy_gain(model, tokenizer, texts: list[str], runs: int = 16, length: int = 50) -> float:
    """Mean log-likelihood gain (nats/token) of a run's second occurrence over its first, for random runs of the
    tokens `texts` are made of (a task's prompts: what a few-shot prompt needs copied), a newline between."""
    import torch

    generator = torch.Generator().manual_seed(0)
    pool = torch.tensor(sorted(set(tokenizer("\n".join(texts)).input_ids)))
    run = pool[torch.randint(0, len(pool), (runs, length), generator=generator)]
    newline = torch.tensor(tokenizer("\n").input_ids).repeat(runs, 1)
    ids = torch.cat([run, newline, run], 1).to(model.device)
    with torch.no_grad():
        logprobs = model(ids).logits[:, :-1].float().log_softmax(-1)
    taken = logprobs.gather(2, ids[:, 1:, None]).squeeze(2)
    return (taken[:, -(length - 1):].mean() - taken[:, 1:length - 1].mean()).item()


def right_completion(item: dict) -> str:
    """What a right completion of an item of math, code or tools writes (its worked steps, body or call)."""
    if "canonical_solution" in item:
        return item["canonical_solution"]
    if "call" in item:
        return " " + json.dumps(item["call"])
    return f" {item['solution']} #### {item['answer']}"


def ranked_first(model, tokenizer, task, harness, items) -> float:
    """The share of a right completion's tokens that the model ranks first after the prompt and the tokens before
    them: greedy decoding writes the right completion only where it ranks every one first, so this tells how far
    a model that scores nothing is from scoring (the format copied from the shots, but not the content, say)."""
    import torch

    first = total = 0
    for item in items:
        prompt = task.prompt(item, harness)
        start = len(tokenizer(prompt).input_ids)
        ids = tokenizer(prompt + right_completion(item), return_tensors="pt").input_ids.to(model.device)
        with torch.no_grad():
            best = model(ids).logits[0, start - 1:-1].argmax(-1)
        first += (best == ids[0, start:]).sum().item()
        total += ids.shape[1] - start
    return first / total


def marker_logprob(model, tokenizer, task, harness, items) -> float:
    """Mean log-probability of the tokens of ` ####` after the prompt and the item's worked steps."""
    import torch

    total = 0.0
    for item in items:
        context = task.prompt(item, harness) + f" {item['solution']}"
        start = len(tokenizer(context).input_ids)
        ids = tokenizer(context + f" #### {item['answer']}", return_tensors="pt").input_ids.to(model.device)
        end = len(tokenizer(context + " ####").input_ids)
        with torch.no_grad():
            logprobs = model(ids).logits[0, :-1].float().log_softmax(-1)
        total += logprobs[start - 1:end - 1].gather(1, ids[0, start:end, None]).sum().item()
    return total / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--items", type=int, default=300, help="test items per task")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tasks", nargs="+", default=["math-v1", "code-v0", "tools-v0"])
    parser.add_argument("--show", type=int, default=3, help="few-shot completions to print per task")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    table = probe(args.model_dir, args.items, args.device, args.tasks, args.show)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model_dir), "items": args.items, "scores": table}, indent=1))


if __name__ == "__main__":
    main()
