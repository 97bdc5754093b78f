"""What every benchmark script shares: its config from the command line, summary statistics, the printed table,
and the results file with the machine it ran on.

Not a benchmark itself; each script in this folder imports it (`python benchmarks/<script>.py` puts this folder on
`sys.path`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
# Dense bf16 peaks from the vendors' datasheets (SXM parts), for model FLOPs utilisation.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
PACKAGES = ("ptb-gym", "torch", "transformers", "trl", "datasets", "accelerate", "peft", "gymnasium", "numpy")


def parse_config(cls: type, argv: Sequence[str] | None = None, quick: dict[str, Any] | None = None,
                 description: str | None = None):
    """A `cls` (a config dataclass) from `--field value` options; `--quick` first applies the `quick` overrides
    (a tiny run for smoke tests), and options given explicitly win over both."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test); its results file ends in -quick")
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else None
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif isinstance(default, int):
            parser.add_argument(flag, type=int, default=None)
        elif isinstance(default, float):
            parser.add_argument(flag, type=float, default=None)
        else:
            parser.add_argument(flag, type=str, default=None)
    args = vars(parser.parse_args(argv))
    quick_run = args.pop("quick")
    values = dict(quick or {}) if quick_run else {}
    values.update({key: value for key, value in args.items() if value is not None})
    return cls(**values), quick_run


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, 10th and 90th percentiles, min, max and count of repeated measurements."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def percentile(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {"median": statistics.median(ordered), "p10": percentile(0.1), "p90": percentile(0.9),
            "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


def machine() -> dict[str, Any]:
    """Where and when the benchmark ran: CPU, cores, load, GPU, package versions, commit."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    if "torch" in sys.modules or versions.get("torch"):
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
            info["cuda"] = torch.version.cuda
    return info


def make_model(name: str, directory: Path) -> Path:
    """The model to benchmark: the embedded base model, a random model of a known shape (`SHAPES`), or a local
    checkpoint."""
    from ptb_gym.envs import load_task

    embedded = load_task("math-v0").embedded_model
    if name == "embedded":
        return embedded
    if name not in SHAPES:
        return Path(name)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    target = directory / f"{name}-random"
    if (target / "model.safetensors").exists():  # made by an earlier run in the same directory
        return target
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**SHAPES[name]), dtype=torch.float32)
    model.save_pretrained(target)
    # The embedded tokenizer: its ids are a subset of the vocabulary, and the data stay the same.
    for file in embedded.glob("tokenizer*"):
        shutil.copy(file, target / file.name)
    return target


# The config.json of real checkpoints; throughput does not depend on the weights, so `make_model` makes them random.
SHAPES = {
    "qwen2.5-0.5b": dict(  # Qwen/Qwen2.5-0.5B: 494M parameters
        model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151_936, max_position_embeddings=32_768, rope_theta=1_000_000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0),
    "gemma-3-270m": dict(  # google/gemma-3-270m: 268M parameters, 168M of them the 262k-token embedding
        model_type="gemma3_text", hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, vocab_size=262_144, sliding_window=512,
        max_position_embeddings=32_768, query_pre_attn_scalar=256, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=0),
}


def matmul_parameters(model_dir: Path) -> tuple[int, int, int, int]:
    """Parameters in matrix products (every nn.Linear, the LM head included even when tied), all parameters,
    layers and hidden size of a checkpoint's architecture (built on the meta device: no memory, no time)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return matmul, sum(p.numel() for p in model.parameters()), config.num_hidden_layers, config.hidden_size


def head_parameters(model_dir: Path) -> int:
    """Parameters of the LM head (vocabulary x hidden size), tied to the embeddings or not."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    config = getattr(config, "text_config", config)
    return config.vocab_size * config.hidden_size


def train_flops_per_token(model_dir: Path, mean_example_tokens: float, head_token_share: float) -> float:
    """Training FLOPs per token: 6 x the parameters of the matrix products plus attention (12 x layers x hidden
    size x the tokens a token attends to), as in the PaLM paper's appendix B, with the LM head's only on the share
    of tokens that take a loss (the train tool's loop applies it nowhere else: work it skips is not counted)."""
    matmul, _, layers, hidden = matmul_parameters(model_dir)
    head = head_parameters(model_dir)
    return 6 * (matmul - head) + 12 * layers * hidden * mean_example_tokens + 6 * head * head_token_share


def peak_flops(info: dict[str, Any], device: str) -> float | None:
    """The GPU's dense bf16 peak from `machine()`'s description, None on a CPU or an unknown GPU."""
    if device != "cuda":
        return None
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in info.get("gpu", "")), None)


def write_results(name: str, config: Any, results: dict[str, Any], *, quick: bool = False,
                  results_dir: str | os.PathLike | None = None, machine_info: dict[str, Any] | None = None) -> Path:
    """Write `results/<name>.json` (`<name>-quick.json` for a quick run) with the config and the machine."""
    directory = Path(results_dir) if results_dir else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{'-quick' if quick else ''}.json"
    payload = {"benchmark": name, "command": " ".join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
               "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config,
               "machine": machine_info or machine(), "results": results}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table (no dependency, so that it also prints where rich is missing)."""
    cells = [[_fmt(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    print(line)
    for row in cells:
        print("  ".join(value.rjust(w) if i else value.ljust(w) for i, (value, w) in enumerate(zip(row, widths))))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    return str(value)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
