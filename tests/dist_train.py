"""The training run of ``tests/test_distributed.py``: ``python -m tests.dist_train OUT [ddp|fsdp]``
(one process) or under ``torchrun --nproc-per-node 2`` (gloo on CPU), with ``[model] parallel``
set to the second argument (default ddp).

Three GRPO steps (validation after the last) and then two SFT steps on the tiny model, with
shards of unequal size: 3 tasks a GRPO step and 3 samples an SFT step over 2 ranks, and
micro-batch budgets that hold one GRPO group (its prompt computed once for both samples: the
shared-prefix path under DDP) or one SFT sequence, so rank 0 packs twice as many micro-batches
as rank 1. After every step each rank writes a hash of its parameters to ``OUT/hashes_rank{R}.jsonl``;
rank 0 (or the single process) also saves the parameters (``OUT/params_{mode}_{step}.pt``).
Each rank logs its (local, largest) micro-batch counts to ``OUT/counts_rank{R}.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch

from tests.tiny_model import smollm2_tokenizer, tiny_qwen2
from toolenv.data import get_task
from trainers.checkpoint import full_state_dict
from trainers.config import config_from_dict
from trainers.modes import Dist
from trainers.train import Trainer

TASKS = ["multi_turn_miss_func_105", "multi_turn_base_100", "multi_turn_miss_param_105"]


def parameter_hash(state: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name, parameter in state.items():
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RecordingTrainer(Trainer):
    """Writes the parameter hash (and, on rank 0, the parameters) after every step."""

    def __init__(self, *args: Any, out: Path, label: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out, self.label = out, label

    def _log(self, writer: Any, step: int, metrics: dict[str, Any]) -> None:
        super()._log(writer, step, metrics)
        if step == 0:
            return
        state = {k: v.detach().clone() for k, v in full_state_dict(self.model).items()}  # FSDP: gathered
        with open(self.out / f"hashes_rank{self.dist.rank}.jsonl", "a") as handle:
            handle.write(json.dumps({"mode": self.label, "step": step, "hash": parameter_hash(state)}) + "\n")
        if self.dist.main:
            torch.save(state, self.out / f"params_{self.label}_{step}.pt")


def configs(out: Path, parallel: str = "ddp") -> tuple[Any, Any]:
    grpo = config_from_dict(
        {
            "run": {"mode": "grpo", "out_dir": str(out / "grpo"), "seed": 5, "progress": False},
            "model": {"path": "tiny", "parallel": parallel},
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "grpo": {
                "steps": 3,
                "prompts_per_step": 3,
                "n": 2,
                "mini_batches": 1,
                "kl_coef": 0.1,
                "micro_batch_tokens": 3000,  # one group (a ~2.1k-token prompt + 2 x ~100) per micro-batch
                # FSDP does not share the prompt: the single-process run it is compared with
                # (the same arguments) does not either, since float noise differs between the two
                # paths and AdamW turns a zero gradient's noise into a full-size step
                "shared_prefix": parallel != "fsdp",
            },
            "rollout": {"max_new_tokens": 5, "max_messages": 3, "max_response_tokens": 256},
            "monitor": {"val_every": 3, "val_max_new_tokens": 4, "spike_window": 2, "rollouts_file": True},
            "checkpoint": {"save_every": 0},
        }
    )
    sft = config_from_dict(
        {
            "run": {"mode": "sft", "out_dir": str(out / "sft"), "seed": 3, "progress": False},
            "model": {"path": "tiny", "parallel": parallel},
            "optim": {"lr": 1e-3, "schedule": "cosine", "warmup_steps": 1, "betas": [0.9, 0.95]},
            "sft": {"batch_size": 3, "max_length": 96, "max_steps": 2, "micro_batch_tokens": 100},
            "monitor": {"val_every": 0},
            "checkpoint": {"save_every": 0},
        }
    )
    return grpo, sft


def main(out: Path, parallel: str = "ddp") -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    original = Dist.max_count

    def logged(self: Dist, value: int) -> int:
        largest = original(self, value)
        with open(out / f"counts_rank{self.rank}.jsonl", "a") as handle:
            handle.write(json.dumps([value, largest]) + "\n")
        return largest

    Dist.max_count = logged  # type: ignore[method-assign]
    tokenizer = smollm2_tokenizer()
    tasks = [get_task(t) for t in TASKS]
    grpo, sft = configs(out, parallel)
    for label, config in (("grpo", grpo), ("sft", sft)):
        trainer = RecordingTrainer(
            config, tiny_qwen2(seed=7), tokenizer, tasks=tasks, validation=tasks, out=out, label=label
        )
        trainer.run()
        trainer.dist.barrier()
    if trainer.dist.world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:3])
