"""A training run's folder and its checkpoints: RNG states, atomic save, resume, ``keep_last``.

``checkpoints/step_N/`` holds ``policy/`` (``save_pretrained``: model and tokenizer) and
``trainer.pt`` (optimizer, scheduler, the Python/NumPy/torch/CUDA RNG states, the step, and
whatever the training mode adds, e.g. the spike detector). Restoring all of it is what makes a
resumed run take exactly the steps an uninterrupted one would.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy
import torch

from toolenv.inference import canonical_engine
from trainers.config import TrainConfig

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer.pt"
CONFIG_FILE = "config.json"


# -- RNG -------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": numpy.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- weights ---------------------------------------------------------------------------------


def unwrap(model: Any) -> Any:
    """The module inside a DDP wrapper (the model itself otherwise; FSDP2 shards in place)."""
    return getattr(model, "module", model)


def is_sharded(model: Any) -> bool:
    """Whether ``model`` is sharded by FSDP2 (its parameters are DTensor shards)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(unwrap(model), FSDPModule)


def full_state_dict(model: Any) -> dict[str, Any]:
    """The model's state with every FSDP2 shard gathered into a full tensor (under FSDP every
    rank must call it, in the same order: gathering is a collective)."""
    from torch.distributed.tensor import DTensor

    state = unwrap(model).state_dict()
    return {name: value.full_tensor() if isinstance(value, DTensor) else value for name, value in state.items()}


def save_policy(model: Any, tokenizer: Any, folder: Path, state: dict[str, Any] | None = None) -> None:
    """``save_pretrained`` of the model (with ``state``: those full weights, for a sharded one)."""
    folder.mkdir(parents=True, exist_ok=True)
    unwrap(model).save_pretrained(folder, state_dict=state)
    tokenizer.save_pretrained(folder)


def load_policy_weights(model: Any, folder: Path) -> None:
    """Load weights written by :func:`save_policy` into ``model`` (tied weights allowed)."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(file)))
    if not state:
        raise ValueError(f"{folder} holds no *.safetensors weights")
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or []) | {"lm_head.weight"}
    if unexpected or any(key not in tied for key in missing):
        raise ValueError(f"{folder}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


# -- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    extra: dict[str, Any],
    keep_last: int,
    weights: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``checkpoints/step_N`` atomically (a temporary folder renamed at the end), then
    delete all but the ``keep_last`` newest (0 keeps every one). A sharded model's full
    ``weights`` and ``optimizer_state`` are gathered by the caller on every rank."""
    root = run_dir / CHECKPOINTS
    final = root / f"step_{step:06d}"
    scratch = root / f".step_{step:06d}.partial"
    if scratch.exists():
        shutil.rmtree(scratch)
    save_policy(model, tokenizer, scratch / "policy", weights)
    torch.save(
        {
            "step": step,
            "optimizer": optimizer_state if optimizer_state is not None else optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            **extra,
        },
        scratch / TRAINER_STATE,
    )
    if final.exists():
        shutil.rmtree(final)
    scratch.rename(final)
    if keep_last > 0:
        for old in sorted(root.glob("step_*"))[:-keep_last]:
            shutil.rmtree(old)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / CHECKPOINTS).glob("step_*"))
    return found[-1] if found else None


def load_checkpoint(run_dir: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any] | None:
    """Restore the latest checkpoint (weights, optimizer, scheduler, RNG states) and return its
    saved state (``step`` and the mode's extras); None when the run has none yet."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return None
    load_policy_weights(unwrap(model), checkpoint / "policy")
    state = torch.load(checkpoint / TRAINER_STATE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state


# -- the run folder --------------------------------------------------------------------------


def prepare_train_dir(config: TrainConfig, resume: bool) -> Path:
    """The run folder ``[run] out_dir`` with the configuration saved in ``config.json``. A
    resumed run must have been started with the same configuration; a new run refuses a
    folder that already holds checkpoints (one-line ``ValueError``s)."""
    run_dir = Path(config.run.out_dir)
    saved = run_dir / CONFIG_FILE
    current = config.to_dict()
    if resume:
        if not saved.exists():
            raise ValueError(f"nothing to resume in {run_dir} (no config.json)")
        _check_same_config(run_dir, json.loads(saved.read_text()), current)
        return run_dir
    if (run_dir / CHECKPOINTS).exists() and any((run_dir / CHECKPOINTS).glob("step_*")):
        raise ValueError(
            f"{run_dir} already holds checkpoints: resume it with --resume or choose another [run] out_dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(current, indent=2))
    return run_dir


def _check_same_config(run_dir: Path, previous: dict[str, Any], current: dict[str, Any]) -> None:
    # compared through JSON: the saved file has lists where the config may hold tuples
    previous = json.loads(json.dumps(previous))
    rollout = previous.get("rollout", {})
    if "engine" in rollout:  # runs saved before the engine names were unified said "hf"
        rollout["engine"] = canonical_engine(rollout["engine"])
    if previous != json.loads(json.dumps(current)):
        changed = sorted(
            f"[{s}] {k}"
            for s in current
            for k in current[s]
            if previous.get(s, {}).get(k) != json.loads(json.dumps(current[s][k]))
        )
        raise ValueError(
            f"{run_dir} was started with another configuration (changed: {', '.join(changed) or 'sections'})"
        )
