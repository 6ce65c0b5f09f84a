"""Data parallelism on CPU: two gloo ranks (``torchrun``) against one process, same global batch.

``tests/dist_train.py`` trains the tiny model for three GRPO steps (validation before step 1
and after step 3) and two SFT steps with unequal shards: rank 0 packs twice as many
micro-batches as rank 1. Checked: both ranks hold bit-identical weights after every step,
equal to the single process's to float tolerance; the metrics (reward, structure, probes,
update statistics, validation, SFT loss) and ``rollouts/step_N.jsonl`` cover every episode of
the global batch and equal the single process's. The same for FSDP2 (``[model] parallel =
"fsdp"``). About 90 s on two CPU cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(args: list[str], out: Path, parallel: str = "ddp") -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, *args, "-m", "tests.dist_train", str(out), parallel],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


def _lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _metrics(path: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if not k.startswith("time")} for row in _lines(path)]


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-5 * max(1.0, abs(float(b)))
    return a == b


def _single(tmp_path: Path, parallel: str) -> Path:
    """The single-process run of the same configuration."""
    out = tmp_path / "single"
    _launch([], out, parallel)
    return out


def _torchrun(out: Path, parallel: str) -> None:
    torchrun = ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
    _launch([*torchrun, "--master-port", str(_free_port())], out, parallel)


def test_two_gloo_ranks_equal_one_process(tmp_path: Path) -> None:
    dist, single = tmp_path / "dist", _single(tmp_path, "ddp")
    _torchrun(dist, "ddp")
    # the shards really are unequal: rank 1 packs fewer micro-batches and pads with zero-loss
    # backwards up to the largest count (GRPO steps 1-3: one group a micro-batch, its prompt
    # computed once; then SFT steps 1-2)
    counts = [_lines(dist / f"counts_rank{rank}.jsonl") for rank in (0, 1)]
    assert counts[0] == [[2, 2]] * 3 + [[2, 2]] * 2
    assert counts[1] == [[1, 2]] * 3 + [[1, 2]] * 2
    _same_as_one_process(dist, single)


def test_two_fsdp_ranks_equal_one_process(tmp_path: Path) -> None:
    """FSDP2 (gloo on CPU): parameters, gradients and AdamW state sharded over the ranks; the
    gathered weights after every step equal the single process's, and so do the metrics."""
    dist, single = tmp_path / "fsdp", _single(tmp_path, "fsdp")
    _torchrun(dist, "fsdp")
    # unequal shards here too: rank 1 pads its no-grad passes and its backwards (the prompt is
    # not shared under FSDP: one rollout a micro-batch)
    counts = [_lines(dist / f"counts_rank{rank}.jsonl") for rank in (0, 1)]
    assert any(mine < largest for mine, largest in counts[1]) and all(mine == largest for mine, largest in counts[0])
    _same_as_one_process(dist, single)
    # the final model is written from the gathered shards: it loads into a plain model
    from safetensors.torch import load_file

    final = load_file(str(dist / "sft" / "final" / "model.safetensors"))
    last = torch.load(dist / "params_sft_2.pt")
    assert final.keys() <= last.keys() and all(torch.equal(final[k], last[k]) for k in final)


def _same_as_one_process(dist: Path, single: Path) -> None:
    # bit-identical weights on both ranks after every step
    hashes = [_lines(dist / f"hashes_rank{rank}.jsonl") for rank in (0, 1)]
    steps = [("grpo", 1), ("grpo", 2), ("grpo", 3), ("sft", 1), ("sft", 2)]
    assert [(h["mode"], h["step"]) for h in hashes[0]] == steps
    assert hashes[0] == hashes[1]
    # ... and equal to one process's on the same global batch
    for label, step in steps:
        ours = torch.load(dist / f"params_{label}_{step}.pt")
        theirs = torch.load(single / f"params_{label}_{step}.pt")
        for name, value in ours.items():
            assert torch.allclose(value, theirs[name], rtol=1e-5, atol=1e-6), (label, step, name)
    initial = torch.load(single / "params_grpo_1.pt")
    assert any(not torch.equal(initial[k], v) for k, v in torch.load(single / "params_sft_2.pt").items())

    # metrics over the global batch: the same numbers as one process
    for run in ("grpo", "sft"):
        ours, theirs = _metrics(dist / run / "metrics.jsonl"), _metrics(single / run / "metrics.jsonl")
        assert [row["step"] for row in ours] == [row["step"] for row in theirs]
        for mine, other in zip(ours, theirs):
            assert mine.keys() == other.keys()
            for key in mine:
                assert _close(mine[key], other[key]), (run, mine["step"], key, mine[key], other[key])
    grpo = _metrics(dist / "grpo" / "metrics.jsonl")
    assert [row["step"] for row in grpo if "val/mean" in row] == [0, 3]  # sharded validation
    for row in grpo[1:]:
        assert row["train/trained_tokens"] > 0 and row["state/messages"] > 0
    sft = _metrics(dist / "sft" / "metrics.jsonl")
    assert all(row["sft/trained_tokens"] > 0 for row in sft)

    # every episode of the global batch is recorded, in the single process's order
    for step in (1, 2, 3):
        name = f"rollouts/step_{step:06d}.jsonl"
        ours, theirs = _lines(dist / "grpo" / name), _lines(single / "grpo" / name)
        assert [(r["group"], r["sample"]) for r in ours] == [(g, s) for g in range(3) for s in range(2)]
        assert [(r["task_id"], r["group"], r["sample"], r["reward"]) for r in ours] == [
            (r["task_id"], r["group"], r["sample"], r["reward"]) for r in theirs
        ]
        assert [r["messages"] for r in ours] == [r["messages"] for r in theirs]
