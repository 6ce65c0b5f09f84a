"""Recipe checks (trainers/recipe_checks.py): budgets that truncate the system prompt or cut
ground-truth messages are refused; and trajectory SFT trains the per-message pairs."""

from __future__ import annotations

import pytest

from tests.tiny_model import smollm2_tokenizer
from trainers.config import config_from_dict
from trainers.recipe_checks import check, check_rollout, check_sft, report
from trainers.sft import build_samples, play_ground_truth


@pytest.fixture(scope="module")
def demos():
    from toolenv.selection import select_tasks

    tasks = select_tasks(["base"], "train", limit=2, seed=1)
    return tasks, [play_ground_truth(t).messages for t in tasks]


def test_share_keys_are_bounded():
    with pytest.raises(ValueError, match=r"\[sft\] max_truncated_share must be a share"):
        config_from_dict({"sft": {"max_truncated_share": 1.5}}, "x.toml")
    with pytest.raises(ValueError, match="add_call_tokens"):
        config_from_dict({"model": {"add_call_tokens": True}, "rollout": {"engine": "vllm"}}, "x.toml")


def test_check_refuses_and_warns():
    result = report("SFT samples", [10, 20, 30, 40], 25)
    assert (result.over, result.longest, result.share) == (2, 40, 0.5)
    with pytest.raises(ValueError, match=r"x.toml: 2/4 SFT samples \(50.0%\).*raise \[sft\] max_length to 40"):
        check(result, 0.0, "x.toml", "[sft] max_length", "[sft] max_truncated_share")
    with pytest.warns(UserWarning, match="within"):
        check(result, 0.5, "x.toml", "[sft] max_length", "[sft] max_truncated_share")
    check(report("SFT samples", [10], 25), 0.0, "x", "k", "s")  # nothing over: silent


def test_sft_truncating_the_system_prompt_is_refused(demos):
    _, conversations = demos
    tokenizer = smollm2_tokenizer()
    small = config_from_dict({"sft": {"max_length": 256}}, "run.toml")
    with pytest.raises(ValueError, match=r"run.toml: .*SFT samples.*raise \[sft\] max_length to \d+"):
        check_sft(tokenizer, conversations, small)
    fits = config_from_dict({"sft": {"max_length": 8192}}, "run.toml")
    assert check_sft(tokenizer, conversations, fits).over == 0
    # the measured lengths are build_samples' own: every sample over budget is the truncated one
    samples = build_samples(tokenizer, conversations, "per_message", 10**9)
    assert check_sft(tokenizer, conversations, fits).total == len(samples)


def test_rollout_budgets_are_refused(demos):
    tasks, conversations = demos
    tokenizer = smollm2_tokenizer()
    with pytest.raises(ValueError, match=r"first rollout prompts.*raise \[rollout\] max_prompt_tokens"):
        check_rollout(tokenizer, tasks, conversations, config_from_dict({"rollout": {"max_prompt_tokens": 64}}))
    with pytest.raises(ValueError, match=r"ground-truth assistant messages.*raise \[rollout\] max_new_tokens"):
        check_rollout(tokenizer, tasks, conversations, config_from_dict({"rollout": {"max_new_tokens": 4}}))
    prompts, messages = check_rollout(tokenizer, tasks, conversations, config_from_dict({}))
    assert prompts.total == 2 and prompts.over == 0 and messages.over == 0 and prompts.longest > 500


def _pairs(samples):
    """(preceding ids, target id) of every trained token."""
    return {
        (tuple(s.input_ids[:i]), s.input_ids[i])
        for s in samples
        for i in range(1, len(s.input_ids))
        if s.target_mask[i]
    }


def test_trajectory_trains_the_per_message_pairs(demos):
    _, conversations = demos
    tokenizer = smollm2_tokenizer()
    per_message = _pairs(build_samples(tokenizer, conversations, "per_message", 10**9))
    trajectory = _pairs(build_samples(tokenizer, conversations, "trajectory", 10**9))
    assert per_message and per_message == trajectory


def test_bf16_autocast_on_a_cpu_without_bf16_instructions_warns(tmp_path, monkeypatch):
    import warnings

    import torch

    from trainers import recipe_checks
    from trainers.recipe_checks import check_cpu_bf16, cpu_flags
    from trainers.train import autocast_factory

    x86 = tmp_path / "cpuinfo"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 fma\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 sve\n")
    assert cpu_flags(x86) == {"fpu", "sse2", "avx2", "fma"} and "bf16" in cpu_flags(arm)
    assert cpu_flags(tmp_path / "missing") is None
    config = config_from_dict({"model": {"autocast_bf16": True}}, "x.toml")
    with pytest.warns(UserWarning, match=r"^x.toml: \[model\] autocast_bf16 = true on a CPU without bf16.*= false"):
        check_cpu_bf16(config, cpu_flags(x86))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_cpu_bf16(config, cpu_flags(arm))
        check_cpu_bf16(config, {"avx512f", "avx512_bf16"})
        monkeypatch.setattr(recipe_checks, "cpu_flags", lambda: None)  # flags unknown: no guess
        check_cpu_bf16(config)
    # through the trainer's one place for autocast: on the CPU only, and only when asked for
    monkeypatch.setattr(recipe_checks, "cpu_flags", lambda: {"avx2"})
    with pytest.warns(UserWarning, match="autocast_bf16"):
        assert autocast_factory(config, torch.device("cpu")) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert autocast_factory(config_from_dict({}, "x.toml"), torch.device("cpu")) is None
