"""Loading and scoring models in the env process."""

from __future__ import annotations

import subprocess
import sys


def test_preloading_in_the_background_never_breaks_the_first_import():
    # The train tool starts importing torch and transformers in a thread; an evaluation right after must wait
    # for it rather than import them concurrently (which leaves transformers half-initialised for good).
    code = """
from ptb_gym.envs import load_task
from ptb_gym.evaluation import load_model, load_tokenizer, preload_evaluation, resolve_device
base = load_task("math").embedded_model
preload_evaluation()
model = load_model(base, base, resolve_device("cpu"))
print(type(model).__name__, type(load_tokenizer(base)).__name__)
"""
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split()[0] == "LlamaForCausalLM"
