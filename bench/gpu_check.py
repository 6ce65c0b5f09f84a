"""A prepared GPU check of the trainer (issue #15 item 6): SFT and GRPO steps on CUDA with a tiny
random Qwen2 built from a config (no download), rollouts from the HF engine's batched mode, peak
memory, tokens/s and the memory plan's estimate beside the measured peak.

What it measures, phase by phase (each on a fresh copy of the same initial weights, with
``torch.cuda.max_memory_allocated`` reset before the measured step; ``memory_allocated`` before
each phase is recorded in the JSON as ``allocated_before_bytes``, to show nothing leaked):

* **generate**: :class:`toolenv.inference.hf_engine.HFEngine` in ``mode="batched"`` plays
  synthetic multi-turn rollouts — one shared prompt per group, ``turns`` sampled assistant
  messages (``loss_mask`` 1, the engine's log-probs), separated by observation chunks
  (``loss_mask`` 0: the message closing when it stopped on length, a user header, random
  "tool result" ids, the assistant header). Generated tokens/s and the peak, with fp32 weights
  (the rollouts every later phase trains on) and with bf16 weights.
* **sft**: :func:`trainers.sft.sft_step` on the rollouts as trajectory samples; **grpo**:
  :meth:`trainers.grpo.GRPOUpdater.step` (k3 KL to a bf16 reference, as the paper recipe),
  each for fp32 master weights under bf16 autocast (the paper recipe) and for bf16 weights,
  gradient checkpointing off/on, and for GRPO ``shared_prefix`` on/off. Two steps each (the
  first creates AdamW's moments and warms the kernels); the second is timed and its peak is
  printed beside :func:`trainers.plan.estimate` for a :func:`trainers.config.config_from_dict`
  configuration that matches what ran, with their ratio. Update tokens/s count every token of
  every sequence (prompt included), so shared-prefix and plain rows compare directly.
  The plain/shared-prefix ratio of the GRPO step time is printed per dtype and checkpointing.
* **equality**: the shared-prefix update against the plain one in fp32 (no autocast, SGD, so
  the weight change is the clipped gradient), checkpointing off and on: relative difference of
  the accumulated gradients and of the weight changes; above :data:`EQUALITY_TOLERANCE` the
  check fails.

The exit status is non-zero when a phase failed (an exception, out of memory) or the equality
check did not hold, or the time budget ran out before every phase ran.

Imports. The target machine has torch, transformers, accelerate and numpy only. The project's
packages import more at module level (``toolenv/__init__.py`` registers Gymnasium ids, the
environments validate JSON Schema, ...): packages in :data:`STUBBABLE` that are *not installed*
get an empty stand-in module (:class:`_StubFinder`) so that the imports succeed; the stand-ins
are sealed once the project modules are imported, so any use of one while the check runs raises
instead of silently doing nothing. The report lists every stand-in and the names imported from
it, and the project modules that were loaded. Today only ``gymnasium`` is needed (``import
toolenv`` → ``toolenv.registration`` registers the ids; ``toolenv.spaces`` and ``toolenv.env``,
reached through ``trainers.sft``, subclass its classes). ``--hide all`` replaces the stubbable
packages by stand-ins even where they are installed (those torch/transformers imported first stay
real), which reproduces the bare machine's imports on a full environment.

How to run it. Tokenizer files (SmolLM2's, 3.4 MiB; only small files may travel to the GPU
machine) go into an ignored folder first, on this machine::

    python bench/gpu_check.py --prepare-assets        # copies them to .toolenv-cache/gpu_check_tokenizer

then on the GPU machine (the ``run`` tool, ``carry=[".toolenv-cache/gpu_check_tokenizer"]``)::

    bash bench/gpu_check.sh .toolenv-cache/gpu_check_tokenizer

(``$OUT/gpu_check.json`` holds every number when ``$OUT`` is set). Without a tokenizer folder
(``--tokenizer none``) the check runs on random ids with fixed stand-in special ids and a
49,152-entry vocabulary. On a machine without a GPU, ``--device cpu`` runs the same code path at
toy sizes (``--size cpu``, about 20-30 s on one core; tests/test_gpu_check.py runs it);
``--size small`` is the brief's 50 M-parameter shape with a smaller workload, for a quicker GPU run.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
import traceback
import types
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
#: where ``--prepare-assets`` puts the tokenizer files (``.toolenv-cache/`` is git-ignored)
DEFAULT_ASSETS = ROOT / ".toolenv-cache" / "gpu_check_tokenizer"
#: the embedded default model's folder (toolenv.inference.smollm2), the source of the files
SMOLLM2_FOLDER = Path.home() / ".cache" / "toolenv" / "models" / "smollm2-135m-instruct-0.1.2"
#: the tokenizer's files; anything larger than :data:`ASSET_LIMIT` is refused (weights never travel)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "config.json",
)
ASSET_LIMIT = 16 * 2**20
#: relative difference (gradient and weight change) allowed between shared-prefix and plain updates
EQUALITY_TOLERANCE = 1e-3
#: packages the project imports at module level that this check never uses (see the docstring)
STUBBABLE = ("gymnasium", "jsonschema", "httpx", "matplotlib", "mpmath", "tqdm", "bfcl_eval")


# -- stand-ins for packages that are imported but not used on this path ---------------------------

#: stubbed top-level package -> the names imported or used from it while the project was imported
STUB_USES: dict[str, list[str]] = {}
_STUB_CLASSES: dict[str, type] = {}
_SEALED = False


def _note(path: str) -> None:
    if _SEALED:
        raise RuntimeError(
            f"gpu_check: {path} belongs to a package that is not installed (a stand-in was imported in its "
            "place) and it was used while the check ran"
        )
    uses = STUB_USES.setdefault(path.split(".")[0], [])
    if path not in uses:
        uses.append(path)


class _StubMeta(type):
    """The metaclass of stand-in names: any attribute is another stand-in; membership is false."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(f"{cls._stub_path}.{name}")  # type: ignore[attr-defined]

    def __contains__(cls, item: object) -> bool:
        _note(f"{cls._stub_path} (in)")  # type: ignore[attr-defined]
        return False

    def __iter__(cls) -> Any:
        _note(f"{cls._stub_path} (iter)")  # type: ignore[attr-defined]
        return iter(())


class _StubBase(metaclass=_StubMeta):
    """A stand-in name: a class (so that ``class Env(gym.Env)`` works), callable with anything."""

    _stub_path = "stub"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _note(f"{type(self)._stub_path}()")

    def __class_getitem__(cls, item: Any) -> Any:  # Space[str]
        return cls

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(f"{type(self)._stub_path}().{name}")


def _stub_class(path: str) -> type:
    _note(path)
    if path not in _STUB_CLASSES:
        module, _, name = path.rpartition(".")
        _STUB_CLASSES[path] = _StubMeta(name, (_StubBase,), {"_stub_path": path, "__module__": module})
    return _STUB_CLASSES[path]


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub_class(f"{self.__name__}.{name}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on ``sys.meta_path``: serves the packages in ``missing`` (and their submodules),
    which no real finder found, with :class:`_StubModule`."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = set(missing)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".")[0] not in self.missing:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> Any:
        _note(spec.name)
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: Any) -> None:
        pass


def install_stubs(hide: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Stand-ins for the packages of :data:`STUBBABLE` that are not installed, and for those of
    ``hide`` that are installed but not yet imported (``--hide``: the bare machine's imports,
    reproduced where everything is installed). Returns (stubbed, hidden); the ones the project
    then imports are the keys of :data:`STUB_USES`."""
    missing = [name for name in STUBBABLE if importlib.util.find_spec(name) is None]
    hidden = [name for name in hide if name not in missing and name not in sys.modules]
    if missing or hidden:
        sys.meta_path.insert(0, _StubFinder(missing + hidden))  # first: a hidden package's real finder never runs
    return missing + hidden, hidden


def seal_stubs() -> None:
    global _SEALED
    _SEALED = True


# -- sizes and the environment ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """The model's shape and the workload's."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    groups: int  # prompts (GRPO groups)
    n: int  # samples per group
    prompt: int  # tokens of each group's prompt
    turns: int  # assistant messages per rollout
    new_tokens: int  # max_new_tokens per message
    observation: int  # tokens of each observation chunk between messages
    micro_batch_tokens: int
    logit_chunk_tokens: int
    vocab: int  # tokenizer-free vocabulary (with a tokenizer: its length)


SIZES = {
    # ~185 M parameters (vocabulary 49,152, tied), 32 rollouts of ~2,100 tokens, the paper's
    # micro-batch: activations dominate the update's memory, as at the paper's scale
    "gpu": Sizes(1024, 2816, 12, 16, 4, 4, 8, 1536, 3, 128, 96, 16384, 1024, 49152),
    # the brief's shape (~50 M parameters), a smaller workload: a quick smoke run on a GPU
    "small": Sizes(512, 1536, 8, 8, 2, 2, 8, 512, 3, 64, 48, 8192, 1024, 49152),
    # toy sizes for --device cpu (the same code path in seconds)
    "cpu": Sizes(64, 128, 2, 4, 2, 2, 3, 40, 2, 6, 5, 160, 64, 4096),
}


def environment(device: Any) -> dict[str, Any]:
    import torch
    import transformers

    try:
        import accelerate

        accelerate_version = accelerate.__version__
    except ImportError:
        accelerate_version = "not installed"
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate_version,
        "cpu_count": os.cpu_count(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            device=torch.cuda.get_device_name(device),
            capacity_gib=round(props.total_memory / 2**30, 2),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    else:
        info.update(device=f"cpu ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads")
    return info


# -- the tokenizer ------------------------------------------------------------------------------------


@dataclass
class Markers:
    """The ids that give the synthetic rollouts their shape."""

    pad: int
    eom: int  # closes an assistant message (the engine's stop id)
    prompt_head: list[int]  # before the prompt's body
    prompt_tail: list[int]  # after it, ending with the assistant header
    observation_head: list[int]  # after a message's closing: the next user turn's header
    observation_tail: list[int]  # ending with the assistant header
    low: int  # random ids are drawn from [low, vocab)
    vocab: int
    specials: frozenset[int]
    source: str


def load_markers(tokenizer_dir: str | None, vocab: int) -> tuple[Any, Markers]:
    """The tokenizer (or a stand-in with ``pad_token_id``/``eos_token_id``) and the markers."""
    if tokenizer_dir is None:
        tokenizer = types.SimpleNamespace(pad_token_id=2, eos_token_id=2)
        return tokenizer, Markers(
            2, 2, [1, 5], [2, 1, 6, 3, 2, 1, 7], [1, 6], [2, 1, 7], 16, vocab, frozenset(range(16)), "none (random ids)"
        )
    from transformers import AutoTokenizer

    from toolenv.inference.template import end_of_message_id

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eom = end_of_message_id(tokenizer)
    pad = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else eom  # trainers.train.pad_id_of

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    specials = frozenset(int(i) for i in tokenizer.all_special_ids) | {eom, pad}
    if "<|im_start|>" in tokenizer.get_vocab():  # ChatML (SmolLM2, Qwen)
        head = encode("<|im_start|>system\n")
        tail = encode("<|im_end|>\n<|im_start|>user\nPlease help.<|im_end|>\n<|im_start|>assistant\n")
        obs_head, obs_tail = encode("\n<|im_start|>user\n"), encode("<|im_end|>\n<|im_start|>assistant\n")
    else:
        head, tail, obs_head, obs_tail = [], [], [], []
    low = min(max(specials) + 1, len(tokenizer) // 2) if specials else 0
    return tokenizer, Markers(
        pad, eom, head, tail, obs_head, obs_tail, low, len(tokenizer), specials, str(tokenizer_dir)
    )


def find_tokenizer(given: str | None) -> str | None:
    """``--tokenizer``: a folder, ``none``, or (unset) the prepared assets, else SmolLM2's folder."""
    if given is not None:
        if given.lower() == "none":
            return None
        if not (Path(given) / "tokenizer_config.json").is_file():
            raise SystemExit(f"gpu_check: no tokenizer_config.json in {given}")
        return given
    for folder in (DEFAULT_ASSETS, SMOLLM2_FOLDER):
        if (folder / "tokenizer_config.json").is_file():
            return str(folder)
    print("gpu_check: no tokenizer folder found; running tokenizer-free (random ids)", flush=True)
    return None


def prepare_assets(source: Path, target: Path) -> int:
    """Copy the tokenizer's small files from ``source`` to ``target``; their total size."""
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in TOKENIZER_FILES:
        path = source / name
        if not path.is_file():
            continue
        if path.stat().st_size > ASSET_LIMIT:
            raise SystemExit(f"gpu_check: {path} is {path.stat().st_size / 2**20:.1f} MiB; only small files travel")
        shutil.copy2(path, target / name)
        total += path.stat().st_size
    if not (target / "tokenizer_config.json").is_file():
        raise SystemExit(f"gpu_check: {source} has no tokenizer_config.json")
    return total


# -- measuring ----------------------------------------------------------------------------------------


class Meter:
    """Wall time with device synchronisation and the allocator's peak (CUDA only)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.cuda = device.type == "cuda"
        self.device = device

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        self.sync()
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int | None:
        return int(self.torch.cuda.max_memory_allocated(self.device)) if self.cuda else None

    def allocated(self) -> int | None:
        return int(self.torch.cuda.memory_allocated(self.device)) if self.cuda else None

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()


def gib(value: int | float | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f}"


# -- the model and the rollouts -----------------------------------------------------------------------


def build_base(sizes: Sizes, markers: Markers, device: Any, seed: int) -> Any:
    """The initial weights, fp32, on the CPU (every phase copies them to the device)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=markers.vocab,
        hidden_size=sizes.hidden,
        intermediate_size=sizes.intermediate,
        num_hidden_layers=sizes.layers,
        num_attention_heads=sizes.heads,
        num_key_value_heads=sizes.kv_heads,
        max_position_embeddings=max(8192, 2 * sequence_length(sizes, markers)),
        tie_word_embeddings=True,
        bos_token_id=markers.prompt_head[0] if markers.prompt_head else None,
        eos_token_id=markers.eom,
        pad_token_id=markers.pad,
    )
    torch.manual_seed(seed)
    with torch.device(device):  # random init on the device is fast
        model = Qwen2ForCausalLM(config)
    return model.to("cpu", torch.float32).train(False)


def sequence_length(sizes: Sizes, markers: Markers) -> int:
    return sizes.prompt + sizes.turns * sizes.new_tokens + (sizes.turns - 1) * sizes.observation


@dataclass
class Variant:
    """One way of running the trainer."""

    dtype: str  # "float32" (master weights, with autocast_bf16) or "bfloat16"
    autocast: bool
    checkpointing: bool
    shared_prefix: bool = True

    @property
    def label(self) -> str:
        kind = "fp32+autocast" if self.dtype == "float32" and self.autocast else self.dtype
        return f"{kind:<13} ckpt={'on ' if self.checkpointing else 'off'}"


def fresh_model(base: Any, device: Any, dtype: str, checkpointing: bool) -> Any:
    import torch

    model = copy.deepcopy(base).to(device, getattr(torch, dtype))
    if checkpointing:
        model.gradient_checkpointing_enable()  # as trainers/train.py does
    return model.train(True)


def random_ids(generator: Any, count: int, markers: Markers) -> list[int]:
    import torch

    ids = torch.randint(markers.low, markers.vocab, (max(0, count),), generator=generator).tolist()
    return [markers.low if i in markers.specials else i for i in ids]


def _below(generator: Any, bound: int) -> int:
    """A random integer in ``[0, bound]``."""
    import torch

    return int(torch.randint(0, max(0, bound) + 1, (1,), generator=generator))


def make_rollouts(engine: Any, sizes: Sizes, markers: Markers, meter: Meter, seed: int) -> tuple[list[Any], dict]:
    """Synthetic multi-turn rollouts played by ``engine`` (see the module docstring) and the
    generation's numbers."""
    import torch

    from toolenv.inference.types import SamplingParams
    from trainers.types import Rollout

    generator = torch.Generator().manual_seed(seed)
    body = sizes.prompt - len(markers.prompt_head) - len(markers.prompt_tail)
    prompts = [
        markers.prompt_head + random_ids(generator, body, markers) + markers.prompt_tail for _ in range(sizes.groups)
    ]
    rows = [(g, s) for g in range(sizes.groups) for s in range(sizes.n)]
    completions: list[list[int]] = [[] for _ in rows]
    masks: list[list[int]] = [[] for _ in rows]
    logprobs: list[list[float]] = [[] for _ in rows]
    generated = calls = 0
    seconds = 0.0
    meter.reset()
    for turn in range(sizes.turns):
        batch = [prompts[g] + completions[i] for i, (g, _) in enumerate(rows)]
        # unequal message budgets and observation lengths: rows of unequal length, as real episodes
        budgets = [sizes.new_tokens - _below(generator, sizes.new_tokens // 2) for _ in rows]
        params = [
            SamplingParams(max_new_tokens=budgets[i], temperature=1.0, seed=seed * 100_000 + i * 100 + turn)
            for i in range(len(rows))
        ]
        meter.sync()
        start = time.perf_counter()
        outputs = engine.generate(batch, params)
        meter.sync()
        seconds += time.perf_counter() - start
        calls += 1
        for i, out in enumerate(outputs):
            generated += len(out.token_ids)
            completions[i] += out.token_ids
            masks[i] += [1] * len(out.token_ids)
            logprobs[i] += out.logprobs
            if turn < sizes.turns - 1:  # the tool result / next user turn, never trained
                closing = [] if out.finish_reason == "stop" else [markers.eom]
                fixed = closing + markers.observation_head + markers.observation_tail
                chunk = (
                    closing
                    + markers.observation_head
                    + random_ids(
                        generator, sizes.observation - _below(generator, sizes.observation // 2) - len(fixed), markers
                    )
                    + markers.observation_tail
                )
                completions[i] += chunk
                masks[i] += [0] * len(chunk)
                logprobs[i] += [0.0] * len(chunk)
    rollouts = [
        Rollout(
            f"task{g}",
            g,
            s,
            list(prompts[g]),
            completions[i],
            masks[i],
            logprobs[i],
            float((g + s) % 3 == 0) + 0.1 * s,  # unequal rewards: non-zero advantages
            None,  # type: ignore[arg-type]
        )
        for i, (g, s) in enumerate(rows)
    ]
    stats = {
        "rows": len(rows),
        "calls": calls,
        "generated_tokens": generated,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(generated / max(seconds, 1e-9), 1),
        "peak_bytes": meter.peak(),
    }
    return rollouts, stats


# -- the plan -----------------------------------------------------------------------------------------


def plan_config(mode: str, variant: Variant, sizes: Sizes, samples: int, max_length: int, kl_coef: float) -> Any:
    from trainers.config import config_from_dict

    data: dict[str, Any] = {
        "run": {"mode": mode},
        "model": {
            "path": "tiny-random-qwen2",
            "dtype": variant.dtype,
            "autocast_bf16": variant.autocast,
            "gradient_checkpointing": variant.checkpointing,
            "logit_chunk_tokens": sizes.logit_chunk_tokens,
        },
    }
    if mode == "grpo":
        data["grpo"] = {
            "micro_batch_tokens": sizes.micro_batch_tokens,
            "kl_coef": kl_coef,
            "reference_dtype": "bfloat16",
            "shared_prefix": variant.shared_prefix,
            "prompts_per_step": sizes.groups,
            "n": sizes.n,
            "mini_batches": 1,
        }
        data["rollout"] = {
            "engine": "transformers",
            "max_prompt_tokens": sizes.prompt,
            "max_response_tokens": max_length - sizes.prompt,
            "max_new_tokens": sizes.new_tokens,
        }
    else:
        data["sft"] = {"micro_batch_tokens": sizes.micro_batch_tokens, "batch_size": samples, "max_length": max_length}
    return config_from_dict(data, "gpu_check")


# -- the phases ---------------------------------------------------------------------------------------


@dataclass
class Context:
    base: Any
    rollouts: list[Any]
    sizes: Sizes
    markers: Markers
    device: Any
    meter: Meter
    arch: Any
    capacity: int | None
    kl_coef: float = 1e-4
    steps: int = 2


def _autocast(variant: Variant, device: Any) -> Callable[[], Any] | None:
    import torch

    if not variant.autocast:
        return None
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # trainers/train.py autocast_factory


def _with_plan(record: dict[str, Any], plan: Any) -> dict[str, Any]:
    record["plan_update_bytes"] = plan.update_peak
    record["plan_parts"] = dict(plan.parts)
    peak = record.get("peak_bytes")
    record["plan_over_measured"] = round(plan.update_peak / peak, 3) if peak else None
    return record


def run_sft(ctx: Context, variant: Variant) -> dict[str, Any]:
    from trainers.optim import make_optimizer
    from trainers.plan import estimate
    from trainers.sft import SFTSample, sft_step

    samples = [SFTSample(r.input_ids, [0] * len(r.prompt_ids) + list(r.loss_mask)) for r in ctx.rollouts]
    tokens = sum(len(s.input_ids) for s in samples)
    model = fresh_model(ctx.base, ctx.device, variant.dtype, variant.checkpointing)
    optimizer = make_optimizer(model, 1e-5, (0.9, 0.999), 0.01)
    autocast = _autocast(variant, ctx.device)
    seconds = 0.0
    out: dict[str, float] = {}
    for _ in range(ctx.steps):
        ctx.meter.reset()
        start = time.perf_counter()
        out = sft_step(
            model,
            optimizer,
            None,
            samples,
            ctx.markers.pad,
            ctx.sizes.micro_batch_tokens,
            1.0,
            autocast,
            chunk_tokens=ctx.sizes.logit_chunk_tokens,
        )
        ctx.meter.sync()
        seconds = time.perf_counter() - start
    record = {
        "phase": "sft",
        "variant": asdict(variant),
        "label": variant.label,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
        "peak_bytes": ctx.meter.peak(),
        "loss": out.get("loss"),
        "grad_norm": out.get("grad_norm"),
    }
    config = plan_config("sft", variant, ctx.sizes, len(samples), max(len(s.input_ids) for s in samples), 0.0)
    plan = estimate(config, ctx.arch, ctx.device.type, ctx.capacity)
    del model, optimizer
    return _with_plan(record, plan)


def run_grpo(ctx: Context, variant: Variant) -> dict[str, Any]:
    import torch

    from trainers.grpo import GRPOConfig, GRPOUpdater
    from trainers.optim import make_optimizer
    from trainers.plan import estimate

    tokens = sum(len(r.input_ids) for r in ctx.rollouts)
    model = fresh_model(ctx.base, ctx.device, variant.dtype, variant.checkpointing)
    reference = copy.deepcopy(model).to(torch.bfloat16).requires_grad_(False).train(False)  # trainers/modes.py
    optimizer = make_optimizer(model, 1e-5, (0.9, 0.999), 0.01)
    config = GRPOConfig(
        kl_coef=ctx.kl_coef,
        micro_batch_tokens=ctx.sizes.micro_batch_tokens,
        logit_chunk_tokens=ctx.sizes.logit_chunk_tokens,
        shared_prefix=variant.shared_prefix,
    )
    updater = GRPOUpdater(model, optimizer, None, config, ctx.markers.pad, reference, _autocast(variant, ctx.device))
    seconds = 0.0
    stats: Any = None
    for _ in range(ctx.steps):
        ctx.meter.reset()
        start = time.perf_counter()
        stats = updater.step(ctx.rollouts)
        ctx.meter.sync()
        seconds = time.perf_counter() - start
    record = {
        "phase": "grpo",
        "variant": asdict(variant),
        "label": f"{variant.label} shared={'on ' if variant.shared_prefix else 'off'}",
        "tokens": tokens,
        "trained_tokens": stats.trained_tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
        "peak_bytes": ctx.meter.peak(),
        "pg_loss": stats.pg_loss,
        "kl": stats.kl,
        "grad_norm": stats.grad_norm,
        "mismatch_logp_diff": stats.extra.get("mismatch_logp_diff"),
        "mismatch_k3": stats.extra.get("mismatch_k3"),
    }
    config_ = plan_config(
        "grpo", variant, ctx.sizes, len(ctx.rollouts), max(len(r.input_ids) for r in ctx.rollouts), ctx.kl_coef
    )
    plan = estimate(config_, ctx.arch, ctx.device.type, ctx.capacity)
    del model, reference, optimizer, updater
    return _with_plan(record, plan)


def run_equality(ctx: Context, checkpointing: bool) -> dict[str, Any]:
    """The shared-prefix update against the plain one in fp32 (see the module docstring)."""
    import torch

    from trainers.grpo import GRPOConfig, GRPOUpdater

    class Capture(GRPOUpdater):
        """Keeps the accumulated gradient of the (only) optimizer step, before clipping."""

        grads: list[Any] = []

        def before_clip(self, mini: Sequence[int], sums: dict[str, float]) -> None:
            super().before_clip(mini, sums)
            self.grads = [
                (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                for p in self.model.parameters()
            ]

    initial = [p.detach().to(ctx.device) for p in ctx.base.parameters()]
    results: dict[bool, tuple[Any, list[Any], list[Any]]] = {}
    for shared in (False, True):
        model = fresh_model(ctx.base, ctx.device, "float32", checkpointing)
        reference = copy.deepcopy(model).requires_grad_(False).train(False)
        config = GRPOConfig(
            kl_coef=ctx.kl_coef,
            micro_batch_tokens=ctx.sizes.micro_batch_tokens,
            logit_chunk_tokens=ctx.sizes.logit_chunk_tokens,
            shared_prefix=shared,
        )
        updater = Capture(model, torch.optim.SGD(model.parameters(), lr=1e-2), None, config, ctx.markers.pad, reference)
        stats = updater.step(ctx.rollouts)
        results[shared] = (stats, updater.grads, [p.detach().clone() for p in model.parameters()])
        del model, reference, updater
        ctx.meter.free()

    def norm(tensors: Sequence[Any]) -> float:
        return float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)))

    (plain_stats, plain_grads, plain_w), (shared_stats, shared_grads, shared_w) = results[False], results[True]
    grad_rel = norm([a - b for a, b in zip(shared_grads, plain_grads)]) / max(norm(plain_grads), 1e-30)
    moved = norm([b - w for b, w in zip(plain_w, initial)])
    weight_rel = norm([a - b for a, b in zip(shared_w, plain_w)]) / max(moved, 1e-30)
    record = {
        "phase": "equality",
        "label": f"float32 ckpt={'on ' if checkpointing else 'off'} shared vs plain",
        "checkpointing": checkpointing,
        "grad_rel_diff": grad_rel,
        "weight_rel_diff": weight_rel,
        "weight_change_norm": moved,
        "pg_loss": [plain_stats.pg_loss, shared_stats.pg_loss],
        "entropy": [plain_stats.entropy, shared_stats.entropy],
        "grad_norm": [plain_stats.grad_norm, shared_stats.grad_norm],
        "mismatch_logp_diff": plain_stats.extra.get("mismatch_logp_diff"),
        "ok": grad_rel <= EQUALITY_TOLERANCE and weight_rel <= EQUALITY_TOLERANCE and moved > 0,
    }
    del results, initial
    return record


# -- output -------------------------------------------------------------------------------------------


def print_record(record: dict[str, Any]) -> None:
    phase = record["phase"]
    if "error" in record:
        print(f"  {phase:<8} {record.get('label', ''):<34} FAILED: {record['error']}", flush=True)
        return
    if phase == "generate":
        print(
            f"  {phase:<8} {record['label']:<34} {record['generated_tokens']:>7} new tokens "
            f"{record['seconds']:>7.2f} s {record['tokens_per_s']:>10,.0f} tok/s   peak {gib(record['peak_bytes'])} GiB "
            f"(weights {gib(record['weight_bytes'])} GiB)",
            flush=True,
        )
    elif phase in ("sft", "grpo"):
        ratio = record["plan_over_measured"]
        extra = ""
        if phase == "grpo":
            extra = f"  mismatch k3 {record['mismatch_k3']:.2e}"
        print(
            f"  {phase:<8} {record['label']:<34} {record['tokens']:>7} tokens {record['seconds']:>7.2f} s "
            f"{record['tokens_per_s']:>10,.0f} tok/s   peak {gib(record['peak_bytes']):>6} GiB   "
            f"plan {gib(record['plan_update_bytes']):>6} GiB   plan/peak {ratio if ratio is not None else 'n/a'}{extra}",
            flush=True,
        )
    elif phase == "equality":
        verdict = "ok" if record["ok"] else f"MISMATCH (tolerance {EQUALITY_TOLERANCE:g})"
        print(
            f"  {phase:<8} {record['label']:<34} gradient rel. diff {record['grad_rel_diff']:.2e}   "
            f"weight-change rel. diff {record['weight_rel_diff']:.2e}   {verdict}",
            flush=True,
        )


def shared_prefix_speedups(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Plain over shared-prefix GRPO step time, per dtype and checkpointing."""
    times: dict[tuple[str, bool], dict[bool, float]] = {}
    for record in records:
        if record["phase"] == "grpo" and "error" not in record:
            variant = record["variant"]
            key = (Variant(**variant).label, variant["checkpointing"])
            times.setdefault(key, {})[variant["shared_prefix"]] = record["seconds"]
    return {
        " ".join(label.split()): pair[False] / pair[True]
        for (label, _), pair in times.items()
        if len(pair) == 2 and pair[True] > 0
    }


def project_modules() -> list[str]:
    tops = ("toolenv", "trainers", "envs", "evaluators", "ood_variants", "integrations")
    return sorted(name for name in sys.modules if name.split(".")[0] in tops)


# -- main ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (cuda when available)")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder, or 'none' (default: prepared assets)")
    parser.add_argument("--size", choices=sorted(SIZES), default=None, help="default: gpu on CUDA, cpu on CPU")
    parser.add_argument("--groups", type=int, default=None, help="override the size's number of groups")
    parser.add_argument("--steps", type=int, default=2, help="steps per variant; the last is measured")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip phases that would start after this")
    parser.add_argument("--json", default=None, help="write every number to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--hide",
        default="",
        help="comma-separated packages of STUBBABLE (or 'all') to replace by stand-ins even when installed\n"
        "(those torch/transformers already imported stay real); tests/test_gpu_check.py uses 'all'",
    )
    parser.add_argument(
        "--prepare-assets",
        nargs="?",
        const=str(DEFAULT_ASSETS),
        default=None,
        metavar="DIR",
        help=f"copy the tokenizer's small files from {SMOLLM2_FOLDER} (or --tokenizer) to DIR and exit",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare_assets is not None:
        source = Path(args.tokenizer) if args.tokenizer else SMOLLM2_FOLDER
        total = prepare_assets(source, Path(args.prepare_assets))
        print(f"gpu_check: copied {total / 2**20:.2f} MiB of tokenizer files from {source} to {args.prepare_assets}")
        return 0
    began = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub (the GPU machine has no network)
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    # third-party imports first, before any stand-in exists (transformers probes optional packages)
    import torch
    import transformers  # noqa: F401
    import transformers.modeling_layers  # noqa: F401  (trainers/logprobs.py, lazily)
    from transformers import AutoTokenizer, DynamicCache, Qwen2ForCausalLM  # noqa: F401

    hide = list(STUBBABLE) if args.hide == "all" else [name for name in args.hide.split(",") if name]
    unknown = sorted(set(hide) - set(STUBBABLE))
    if unknown:
        print(f"gpu_check: --hide {', '.join(unknown)}: not stubbable (valid: {', '.join(STUBBABLE)})", flush=True)
        return 1
    stubbed, hidden = install_stubs(hide)
    import toolenv.inference.hf_engine  # noqa: F401
    import toolenv.inference.template  # noqa: F401
    import toolenv.inference.types  # noqa: F401
    import trainers.config  # noqa: F401
    import trainers.grpo  # noqa: F401
    import trainers.optim  # noqa: F401
    import trainers.plan  # noqa: F401
    import trainers.sft  # noqa: F401
    import trainers.types  # noqa: F401

    seal_stubs()
    from toolenv.inference.hf_engine import HFEngine, set_threads
    from trainers.plan import architecture_of_config, device_capacity

    device_name = args.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device", flush=True)
        return 1
    device = torch.device(device_name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    if device.type == "cpu":
        set_threads(torch)  # one thread on a 2-core machine, as the project's CPU paths
    torch.set_float32_matmul_precision("highest")  # no TF32: the fp32 equality check is exact fp32
    sizes = SIZES[args.size or ("gpu" if device.type == "cuda" else "cpu")]
    if args.groups:
        sizes = replace(sizes, groups=args.groups)

    info = environment(device)
    print("== gpu_check: environment", flush=True)
    for key, value in info.items():
        print(f"  {key}: {value}")
    print(
        "  stand-ins (not installed or --hide, imported by the project, unused by this check): "
        + (", ".join(STUB_USES) or "none needed")
    )
    for top, uses in STUB_USES.items():
        print(f"    {top}: {', '.join(uses)}")
    idle = [name for name in stubbed if name not in STUB_USES]
    if idle:
        print(f"  stand-ins ready but not imported: {', '.join(idle)}")
    if hidden:
        print(f"  installed but hidden by --hide: {', '.join(hidden)}")
    modules = project_modules()
    print(f"  project modules imported ({len(modules)}): {', '.join(modules)}", flush=True)

    tokenizer_dir = find_tokenizer(args.tokenizer)
    tokenizer, markers = load_markers(tokenizer_dir, sizes.vocab)
    meter = Meter(device)
    base = build_base(sizes, markers, device, args.seed)
    arch = architecture_of_config(base.config, "gpu_check's random Qwen2")
    _, capacity, _ = device_capacity(device.type if device.type == "cpu" else str(device))
    parameters = sum(p.numel() for p in base.parameters())
    print(
        f"== model: random Qwen2, {parameters / 1e6:.1f} M parameters, hidden {sizes.hidden}, {sizes.layers} layers, "
        f"vocabulary {markers.vocab}; tokenizer: {markers.source}; pad {markers.pad}, end of message {markers.eom}",
        flush=True,
    )
    print(
        f"== workload: {sizes.groups} groups x {sizes.n} samples, prompt {sizes.prompt} tokens, {sizes.turns} messages "
        f"of <= {sizes.new_tokens} tokens, observations of {sizes.observation}; micro-batch {sizes.micro_batch_tokens} "
        f"tokens, logit chunk {sizes.logit_chunk_tokens}",
        flush=True,
    )

    records: list[dict[str, Any]] = []
    failed = False
    skipped: list[str] = []

    def attempt(label: str, phase: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        nonlocal failed
        if time.perf_counter() - began > args.budget_s:
            skipped.append(f"{phase} {label}")
            return None
        meter.free()
        before = meter.allocated()
        try:
            record = run()
        except Exception as exc:  # noqa: BLE001 - one phase's failure must not hide the others
            failed = True
            if not isinstance(exc, torch.cuda.OutOfMemoryError):
                traceback.print_exc()
            record = {"phase": phase, "label": label, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        record["allocated_before_bytes"] = before
        meter.free()
        records.append(record)
        print_record(record)
        return record

    print("== phases (the last of --steps steps measured; peak = torch.cuda.max_memory_allocated)", flush=True)
    rollouts: list[Any] = []

    def generate(dtype: str) -> dict[str, Any]:
        nonlocal rollouts
        model = copy.deepcopy(base).to(device, getattr(torch, dtype))
        engine = HFEngine(model, tokenizer, mode="batched", stop_ids=[markers.eom])
        made, stats = make_rollouts(engine, sizes, markers, meter, args.seed)
        if dtype == "float32":
            rollouts = made
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        del engine, model
        return {"phase": "generate", "label": f"{dtype} weights, batched", "weight_bytes": weights, **stats}

    attempt("float32 weights, batched", "generate", lambda: generate("float32"))
    attempt("bfloat16 weights, batched", "generate", lambda: generate("bfloat16"))
    if not rollouts:
        print("gpu_check: no rollouts, nothing to train on", flush=True)
        return 1
    lengths = [len(r.input_ids) for r in rollouts]
    print(
        f"  rollouts: {len(rollouts)}, {sum(lengths)} tokens ({min(lengths)}-{max(lengths)} each), "
        f"{sum(r.num_trained_tokens for r in rollouts)} trained",
        flush=True,
    )
    ctx = Context(base, rollouts, sizes, markers, device, meter, arch, capacity, steps=max(1, args.steps))
    variants = [
        Variant("float32", True, False),
        Variant("float32", True, True),
        Variant("bfloat16", False, False),
        Variant("bfloat16", False, True),
    ]
    for variant in variants:
        attempt(variant.label, "sft", lambda v=variant: run_sft(ctx, v))
    for variant in variants:
        for shared in (True, False):
            v = replace(variant, shared_prefix=shared)
            attempt(v.label, "grpo", lambda v=v: run_grpo(ctx, v))
    for checkpointing in (False, True):
        record = attempt(f"equality ckpt={checkpointing}", "equality", lambda c=checkpointing: run_equality(ctx, c))
        if record is not None and not record.get("ok", False):
            failed = True

    speedups = shared_prefix_speedups(records)
    for label, ratio in speedups.items():
        print(f"  shared-prefix update speed-up, {label}: {ratio:.2f}x (plain seconds / shared seconds)")
    elapsed = time.perf_counter() - began
    summary = {
        "environment": info,
        "stubbed": dict(STUB_USES),
        "stubbed_not_imported": [name for name in stubbed if name not in STUB_USES],
        "hidden": hidden,
        "project_modules": modules,
        "sizes": asdict(sizes),
        "parameters": parameters,
        "tokenizer": markers.source,
        "records": records,
        "shared_prefix_speedups": speedups,
        "skipped": skipped,
        "seconds": round(elapsed, 1),
        "ok": not failed and not skipped,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    if skipped:
        print(f"gpu_check: the {args.budget_s:.0f} s budget ran out; not run: {', '.join(skipped)}", flush=True)
    print(f"== gpu_check: {'ok' if summary['ok'] else 'FAILED'} in {elapsed:.1f} s", flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
