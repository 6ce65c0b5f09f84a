"""Per-rank work done once under data parallelism (PRS's judge calls, ETS's failed-task
selection): rank 0 runs first and caches, the other ranks read the cache; and the OPS
off-policy fraction counts every rank's tokens."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainers.supervision.run import rank_zero_first


def _rank(rank: int, store: str, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    cache = Path(folder) / "reflections.jsonl"

    def work() -> str:
        if cache.exists():  # what a resumed build_reflections does: reuse, no judge call
            found = "cached"
        else:
            found = "computed"
            cache.write_text(json.dumps({"by": rank}) + "\n")
        with open(Path(folder) / "log.jsonl", "a") as log:
            log.write(json.dumps([rank, found]) + "\n")
        return found

    result = rank_zero_first(work)
    (Path(folder) / f"result{rank}").write_text(result)
    dist.destroy_process_group()


def test_rank_zero_computes_and_the_other_ranks_read_its_cache(tmp_path: Path) -> None:
    mp.start_processes(_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, start_method="spawn")
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log == [[0, "computed"], [1, "cached"]]
    assert json.loads((tmp_path / "reflections.jsonl").read_text()) == {"by": 0}
    assert (tmp_path / "result1").read_text() == "cached"


def test_a_single_process_just_runs_the_work() -> None:
    assert rank_zero_first(lambda: 7) == 7


def test_the_off_policy_fraction_counts_every_ranks_tokens() -> None:
    from tests.tiny_model import tiny_qwen2
    from trainers.grpo import GRPOConfig
    from trainers.supervision.updaters import ShapedOPSUpdater
    from trainers.types import Rollout

    model = tiny_qwen2(seed=3)
    prompt = [1, 9690, 198, 1530, 314, 2, 198]
    rows = [
        Rollout(
            "t", 0, 0, prompt, [300, 301, 302, 2], [1, 1, 1, 1], [0.0] * 4, 1.0, None, meta={"replaced_spans": [(0, 4)]}
        ),  # type: ignore[arg-type]
        Rollout("t", 0, 1, prompt, [400, 401, 402, 2], [1, 1, 1, 1], [-1.0] * 4, 0.0, None),  # type: ignore[arg-type]
    ]
    # as rank 0 of two ranks with identical shards: every sum over the ranks doubles, so 8 of
    # the step's 16 trained tokens are off-policy (counting rank 0's alone gave 4 / 16)
    updater = ShapedOPSUpdater(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        None,
        GRPOConfig(kl_coef=0.0),
        pad_id=2,
        token_sum=lambda value: 2 * value,
        world=2,
    )
    stats = updater.step(rows)
    assert stats.trained_tokens == 16
    assert stats.extra["ops/off_policy_token_fraction"] == 8 / 16
