"""The memory plan (issue #15 item 3): its estimate against the peak a GRPO update and an SFT
step really allocate on CPU (measured from the profiler's allocation events), the refusal of a
run that cannot fit, and ``toolenv train CONFIG --plan``."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from trainers.config import config_from_dict
from trainers.grpo import GRPOConfig, GRPOUpdater
from trainers.plan import Architecture, architecture, architecture_of_config, estimate
from trainers.train import enable_activation_checkpointing
from trainers.types import Rollout

ROOT = Path(__file__).resolve().parent.parent


def _model(checkpointing: bool) -> Any:
    """A random Qwen2 whose parts are all of a size (a small vocabulary, so the logits do not
    dwarf the rest as with the 49k-entry tokenizer)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=4096,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.train(True)
    if checkpointing:
        enable_activation_checkpointing(model)
    return model


def _bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _allocated_peak(run: Callable[[], Any]) -> int:
    """The most bytes ``run`` holds at once beyond what existed before (CPU allocations, from
    the profiler's memory events in time order)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


BUDGET = 2000


def _rollouts() -> list[Rollout]:
    """One group of 16 samples of a 400-token prompt + 100 trained tokens: micro-batches of
    four rows (2,000 tokens) on the plain path, one of 400 + 16 x 100 with the prompt shared."""
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, 4000, (400,), generator=generator).tolist()
    return [
        Rollout(
            "t",
            0,
            s,
            prompt,
            torch.randint(3, 4000, (100,), generator=generator).tolist(),
            [1] * 100,
            [-1.0] * 100,
            float(s % 2),
            None,
        )  # type: ignore[arg-type]
        for s in range(16)
    ]


@pytest.mark.parametrize("checkpointing", [False, True], ids=["no-checkpointing", "checkpointing"])
@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared-prefix"])
def test_grpo_estimate_is_within_25_percent_of_the_measured_peak(checkpointing: bool, shared: bool) -> None:
    model = _model(checkpointing)
    reference = copy.deepcopy(model).requires_grad_(False)
    update = GRPOConfig(kl_coef=0.1, micro_batch_tokens=BUDGET, logit_chunk_tokens=512, shared_prefix=shared)
    updater = GRPOUpdater(model, torch.optim.AdamW(model.parameters(), lr=1e-4), None, update, 2, reference)
    rollouts = _rollouts()
    updater.step(rollouts)  # the optimizer's moments exist from here on, as in every later step
    moments = [v for state in updater.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    before = _bytes(model.parameters()) + _bytes(reference.parameters()) + _bytes(moments)
    measured = before + _allocated_peak(lambda: updater.step(rollouts))
    config = config_from_dict(
        {
            "run": {"mode": "grpo"},
            "model": {"path": "tiny", "gradient_checkpointing": checkpointing, "logit_chunk_tokens": 512},
            "grpo": {"micro_batch_tokens": BUDGET, "kl_coef": 0.1, "shared_prefix": shared},
        }
    )
    plan = estimate(config, architecture_of_config(model.config), "cpu", None)
    assert plan.parts["reference"] == _bytes(reference.parameters())  # the exact parts are exact
    assert abs(plan.parts["optimizer"] - _bytes(moments)) < 4096  # AdamW also keeps a step count per tensor
    assert abs(plan.update_peak - measured) <= 0.25 * measured, (plan.render(), measured / 2**20)


def test_sft_estimate_is_within_25_percent_of_the_measured_peak() -> None:
    from trainers.sft import SFTSample, sft_step

    model = _model(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(1)
    samples = [
        SFTSample(torch.randint(3, 4000, (500,), generator=generator).tolist(), [0] * 300 + [1] * 200) for _ in range(8)
    ]
    step = lambda: sft_step(model, optimizer, None, samples, 2, BUDGET, 1.0, chunk_tokens=512)  # noqa: E731
    step()
    moments = [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    measured = _bytes(model.parameters()) + _bytes(moments) + _allocated_peak(step)
    config = config_from_dict(
        {
            "run": {"mode": "sft"},
            "model": {"path": "tiny", "logit_chunk_tokens": 512},
            "sft": {"micro_batch_tokens": BUDGET},
        }
    )
    plan = estimate(config, architecture_of_config(model.config), "cpu", None)
    assert abs(plan.update_peak - measured) <= 0.25 * measured, (plan.render(), measured / 2**20)


def _paper_grpo() -> Any:
    from trainers.config import load_config

    return load_config(ROOT / "recipes" / "paper_grpo_qwen2.5_1.5b.toml")


def test_the_paper_recipe_fits_one_80_gib_gpu_and_is_refused_on_a_24_gib_one() -> None:
    config = _paper_grpo()
    arch = architecture(config.model.path)  # the folder is not here: the built-in Qwen2.5-1.5B shapes
    assert "built-in" in arch.source and 1.5e9 < arch.parameters < 1.6e9
    assert estimate(config, arch, "cuda", 80 * 2**30).fits
    small = estimate(config, arch, "cuda", 24 * 2**30)
    reason = small.refusal()
    assert reason is not None and "\n" not in reason and "largest part" in reason
    # vLLM asleep during the update releases its share of the device
    awake = estimate(config, arch, "cuda", 80 * 2**30)
    config.rollout.vllm_sleep = True
    asleep = estimate(config, arch, "cuda", 80 * 2**30)
    assert asleep.update_peak < awake.update_peak - 30 * 2**30


def test_a_run_that_cannot_fit_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch: Any) -> None:
    import trainers.plan
    from trainers.train import train

    config = _paper_grpo()
    config.run.out_dir = str(tmp_path / "run")
    monkeypatch.setattr(trainers.plan, "device_capacity", lambda device: ("cuda", 16 * 2**30, 1))
    monkeypatch.setattr(
        trainers.plan,
        "architecture",
        lambda path: Architecture("test", 1_543_714_304, 1536, 256, 8960, 28, 151936),
    )
    monkeypatch.setattr("trainers.train.resolve_device", lambda spec: torch.device("cuda"))
    from envs._official import select_version

    try:
        with pytest.raises(ValueError, match="needs about .* per cuda device"):
            train(config)
    finally:
        select_version(None)  # train() selected the recipe's release for the process: undo it
    assert not (tmp_path / "run").exists()


def test_train_plan_prints_every_part_and_exits_1_when_it_cannot_fit() -> None:
    recipe = str(ROOT / "recipes" / "paper_grpo_qwen2.5_1.5b.toml")
    command = [sys.executable, "-m", "toolenv.cli", "train", recipe, "--plan", "--gpu-memory"]
    fits = subprocess.run([*command, "80"], capture_output=True, text=True, timeout=300)
    assert fits.returncode == 0, fits.stderr
    for part in ("weights", "gradients", "optimizer", "reference", "activations", "logits chunk", "vLLM", "peak"):
        assert part in fits.stdout
    assert "per-step token budget: 7,864,320" in fits.stdout  # 60 prompts x 8 x 16,384
    refused = subprocess.run([*command, "24"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "DOES NOT FIT" in refused.stdout
    assert refused.stderr.strip().count("\n") == 0 and "largest part" in refused.stderr
