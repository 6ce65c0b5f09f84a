"""Run configuration, the training loop, checkpoints and exact resume (tiny random Qwen2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.tiny_model import smollm2_tokenizer, tiny_qwen2
from toolenv.cli import main
from toolenv.data import get_task
from trainers.checkpoint import latest_checkpoint
from trainers.config import TrainConfig, config_from_dict, load_config
from trainers.modes import stream_slice
from trainers.monitor import read_metrics
from trainers.train import Trainer

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, message",
    [
        ({"grpo": {"stepz": 3}}, "unknown key [grpo] stepz"),
        ({"grpoo": {}}, "unknown section [grpoo]"),
        ({"grpo": {"steps": "many"}}, "[grpo] steps must be an integer"),
        ({"grpo": {"steps": 0}}, "[grpo] steps must be positive"),
        ({"grpo": {"clip_c": 0.5}}, "clip_c must be > 1"),
        ({"run": {"mode": "dpo"}}, "[run] mode = 'dpo'; valid: sft, grpo"),
        ({"optim": {"betas": [0.9]}}, "betas must hold two numbers"),
        ({"model": {"autocast_bf16": 1}}, "must be true or false"),
        ({"data": {"call_format": "yaml"}}, "unknown call format"),
        ({"sft": {"reply_endpoint": "http://x"}}, "reply_endpoint and reply_model go together"),
    ],
)
def test_bad_configs_get_one_line_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        config_from_dict(data, "run.toml")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_config_files(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[run]\nmode = "sft"\n[model]\npath = "smollm2"\n[optim]\nlr = 1\n')
    config = load_config(path)
    assert config.run.mode == "sft" and config.optim.lr == 1.0 and isinstance(config.optim.lr, float)
    path.write_text("[run\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ValueError, match="no config file"):
        load_config(tmp_path / "missing.toml")


def test_paper_recipes_match_the_methods_table() -> None:
    grpo = load_config(RECIPES / "paper_grpo_qwen2.5_1.5b.toml")
    assert (grpo.grpo.n, grpo.grpo.prompts_per_step, grpo.grpo.mini_batches, grpo.grpo.ppo_epochs, grpo.grpo.steps) == (
        8,
        60,
        3,
        1,
        300,
    )
    assert (grpo.optim.lr, grpo.optim.betas, grpo.optim.weight_decay, grpo.optim.warmup_steps, grpo.optim.schedule) == (
        1e-6,
        [0.9, 0.999],
        0.01,
        10,
        "constant",
    )
    assert (grpo.grpo.clip_low, grpo.grpo.clip_high, grpo.grpo.clip_c, grpo.grpo.kl_coef, grpo.grpo.entropy_coef) == (
        0.2,
        0.2,
        3.0,
        1e-4,
        0.0,
    )
    assert (grpo.grpo.epsilon, grpo.optim.max_grad_norm, grpo.grpo.micro_batch_tokens) == (1e-6, 1.0, 16384)
    assert (grpo.rollout.temperature, grpo.rollout.top_p, grpo.rollout.top_k, grpo.rollout.max_new_tokens) == (
        1.0,
        1.0,
        -1,
        2048,
    )
    assert (grpo.rollout.max_prompt_tokens + grpo.rollout.max_response_tokens, grpo.rollout.max_messages) == (16384, 30)
    assert (grpo.monitor.val_every, grpo.monitor.val_before_train, grpo.checkpoint.save_every) == (5, True, 50)
    assert grpo.data.train_categories == ["base", "miss_param", "miss_func"] and grpo.data.val_split == "test"
    sft = load_config(RECIPES / "paper_sft_qwen2.5_1.5b.toml")
    assert (sft.sft.epochs, sft.sft.batch_size, sft.sft.max_length, sft.sft.samples) == (3, 128, 8192, "per_message")
    assert (sft.optim.lr, sft.optim.betas, sft.optim.weight_decay, sft.optim.schedule, sft.optim.warmup_ratio) == (
        1e-5,
        [0.9, 0.95],
        0.01,
        "cosine",
        0.1,
    )
    for path in RECIPES.glob("*.toml"):
        load_config(path)


def test_data_stream_is_a_function_of_seed_and_step() -> None:
    batches = [stream_slice(5, 3, step, seed=1) for step in (1, 2, 3, 4)]
    flat = [i for b in batches for i in b]
    assert sorted(flat[:5]) == list(range(5)) and sorted(flat[5:10]) == list(range(5))  # epochs are permutations
    assert stream_slice(5, 3, 2, seed=1) == batches[1]
    assert stream_slice(5, 3, 1, seed=2) != batches[0] or stream_slice(5, 3, 2, seed=2) != batches[1]


# -- the loop ------------------------------------------------------------------------------


def _sft_config(out: Path) -> TrainConfig:
    return config_from_dict(
        {
            "run": {"mode": "sft", "out_dir": str(out), "seed": 3, "progress": False},
            "optim": {"lr": 1e-3, "schedule": "cosine", "warmup_steps": 1, "betas": [0.9, 0.95]},
            "sft": {
                "batch_size": 3,
                "max_length": 96,
                "max_truncated_share": 1.0,
                "max_steps": 4,
                "micro_batch_tokens": 200,
            },
            "monitor": {"val_every": 0},
            "checkpoint": {"save_every": 0},
        }
    )


def _grpo_config(out: Path) -> TrainConfig:
    return config_from_dict(
        {
            "run": {"mode": "grpo", "out_dir": str(out), "seed": 5, "progress": False},
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "grpo": {"steps": 2, "prompts_per_step": 2, "n": 2, "mini_batches": 2, "kl_coef": 0.1},
            "rollout": {"max_new_tokens": 5, "max_messages": 3, "max_response_tokens": 256},
            "monitor": {"val_every": 0, "spike_window": 2},
            "checkpoint": {"save_every": 0},
        }
    )


TASKS = ["multi_turn_miss_func_105", "multi_turn_base_100", "multi_turn_miss_param_105"]  # short prompts (~2.2k tokens)


def _run(config: TrainConfig, resume: bool = False, stop_after: int | None = None) -> Trainer:
    trainer = Trainer(
        config, tiny_qwen2(seed=7), smollm2_tokenizer(), tasks=[get_task(t) for t in TASKS], stop_after=stop_after
    )
    trainer.run(resume=resume)
    return trainer


def _metrics(out: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if not k.startswith("time") and k != "time"} for row in read_metrics(out)]


def _check_resume(tmp_path: Path, make: Any, stop: int) -> Trainer:
    """Runs straight through, then interrupted after ``stop`` steps and resumed; both must
    end with the same weights and the same metrics."""
    straight = _run(make(tmp_path / "straight"))
    _run(make(tmp_path / "resumed"), stop_after=stop)
    assert latest_checkpoint(tmp_path / "resumed").name == f"step_{stop:06d}"
    with pytest.raises(ValueError, match="resume it with --resume"):
        _run(make(tmp_path / "resumed"))
    resumed = _run(make(tmp_path / "resumed"), resume=True)
    for (name, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    assert _metrics(tmp_path / "straight") == _metrics(tmp_path / "resumed")
    initial = tiny_qwen2(seed=7)
    assert any(not torch.equal(p, q) for p, q in zip(initial.parameters(), straight.model.parameters()))
    assert (tmp_path / "resumed" / "final" / "config.json").exists()
    return straight


def test_sft_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    _check_resume(tmp_path, _sft_config, stop=2)
    rows = read_metrics(tmp_path / "straight")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[0]["sft/lr"] == 0.0 and rows[1]["sft/lr"] == 1e-3
    assert rows[-1]["sft/loss"] < rows[0]["sft/loss"]


def test_grpo_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    _check_resume(tmp_path, _grpo_config, stop=1)
    rows = read_metrics(tmp_path / "straight")
    assert [r["step"] for r in rows] == [1, 2]
    for key in (
        "reward/mean",
        "train/kl",
        "train/entropy",
        "train/grad_norm",
        "train/lr",
        "state/healthy_call",
        "probe/after_opener_count",
        "rollout/truncated",
        "time/rollout_s",
    ):
        assert key in rows[-1], key
    assert rows[0]["train/optimizer_steps"] == 2
    assert rows[0]["train/lr"] == 0.0 and rows[1]["train/lr"] == 1e-3  # one warmup RL step
    # (no check that train/kl > 0: the random policy earns no reward here, so step 2's policy is
    # its reference; a non-zero KL came only from the plain path's float noise)
    lines = (tmp_path / "straight" / "rollouts" / "step_000001.jsonl").read_text().splitlines()
    assert len(lines) == 4 and {json.loads(line)["task_id"] for line in lines} <= set(TASKS)


def test_rollout_ids_records_what_the_update_trained_on(tmp_path: Path) -> None:
    """[monitor] rollout_ids: each record carries its prompt, its completion and a loss mask of
    the completion's length that trains something (the default writes none: test_probe)."""
    config = _grpo_config(tmp_path / "ids")
    config.grpo.steps = 1
    config.monitor.rollout_ids = True
    _run(config)
    records = [json.loads(line) for line in (tmp_path / "ids" / "rollouts" / "step_000001.jsonl").open()]
    assert len(records) == 4
    for record in records:
        assert len(record["completion_ids"]) == len(record["loss_mask"]) and sum(record["loss_mask"]) > 0
        assert record["prompt_ids"] and set(record["loss_mask"]) <= {0, 1}


def test_resume_refuses_a_changed_config(tmp_path: Path) -> None:
    config = _sft_config(tmp_path)
    _run(config, stop_after=1)
    config.optim.lr = 5e-4
    with pytest.raises(ValueError, match=r"changed: \[optim\] lr"):
        _run(config, resume=True)


def test_cli_trains_a_saved_model_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = tmp_path / "tiny"
    tiny_qwen2(seed=1).save_pretrained(model_dir)
    smollm2_tokenizer().save_pretrained(model_dir)
    config = tmp_path / "run.toml"
    config.write_text(f"""
[run]
mode = "sft"
out_dir = "{tmp_path / "run"}"
progress = false
[model]
path = "{model_dir}"
[data]
train_categories = ["base"]
train_limit = 1
[sft]
batch_size = 2
max_length = 64
max_truncated_share = 1.0
max_steps = 2
[monitor]
val_every = 0
""")
    assert main(["train", str(config)]) == 0
    assert main(["plot", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "optimisation.png" in out and (tmp_path / "run" / "final" / "model.safetensors").exists()
    config.write_text("[sft]\nbatch = 2\n")
    assert main(["train", str(config)]) == 2
    assert "unknown key [sft] batch" in capsys.readouterr().err


@pytest.mark.parametrize("make", [_sft_config, _grpo_config], ids=["sft", "grpo"])
def test_validation_runs_through_the_rollout_engine_with_training_budgets(tmp_path: Path, make: Any) -> None:
    """Validation before step 1 and after each step: greedy episodes on the mode's engine
    (GRPO's, synced after every update; SFT's a transformers engine over the model) within
    training's budgets. With a context budget below the prompts every episode is cut, and
    validation says so (val/truncated) instead of counting collapsed messages."""
    for budget, cut in ((16384, 0.0), (512, 1.0)):
        config = make(tmp_path / f"run{budget}")
        config.monitor.val_every, config.monitor.val_before_train, config.monitor.val_max_new_tokens = 1, True, 4
        config.rollout.max_prompt_tokens, config.rollout.max_response_tokens = budget - 64, 64
        tasks = [get_task(t) for t in TASKS]
        Trainer(config, tiny_qwen2(seed=7), smollm2_tokenizer(), tasks=tasks, validation=tasks[:2]).run()
        rows = [row for row in read_metrics(tmp_path / f"run{budget}") if "val/mean" in row]
        assert [row["step"] for row in rows][:2] == [0, 1]
        for row in rows:
            assert row["val/truncated"] == cut
            assert (row["val_state/messages"] == 0.0) == (cut == 1.0)
            assert row["val_state/full_collapse"] <= 1.0 - cut


def test_training_shows_a_progress_bar_of_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _sft_config(tmp_path / "run")
    config.run.progress = True
    _run(config)
    err = capsys.readouterr().err
    assert "4/4" in err and "step/s" in err and "loss " in err


def test_a_bf16_reference_halves_its_memory_and_keeps_the_kl_near_zero_at_the_start(tmp_path: Path) -> None:
    from trainers.modes import MODES

    kls = {}
    for dtype in ("model", "bfloat16"):
        config = _grpo_config(tmp_path / dtype)
        config.grpo.reference_dtype = dtype
        trainer = Trainer(config, tiny_qwen2(seed=7), smollm2_tokenizer(), tasks=[get_task(t) for t in TASKS])
        mode = MODES["grpo"](trainer, tmp_path / dtype)
        assert {p.dtype for p in mode.reference.parameters()} == {torch.float32 if dtype == "model" else torch.bfloat16}
        trainer.run()
        kls[dtype] = read_metrics(tmp_path / dtype)[0]["train/kl"]
    assert kls["model"] < 1e-6  # the reference is the initial policy: the first update's KL is 0
    assert 0 <= kls["bfloat16"] < 1e-2  # bf16 rounding of the same weights
    off = _grpo_config(tmp_path / "off")
    off.grpo.kl_coef = 0.0
    no_reference = Trainer(off, tiny_qwen2(seed=7), smollm2_tokenizer(), tasks=[get_task(t) for t in TASKS])
    assert MODES["grpo"](no_reference, tmp_path / "off").reference is None
