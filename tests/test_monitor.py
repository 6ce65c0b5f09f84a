"""Monitoring: probe positions and probabilities, structural rates, spikes, metrics files, plots."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from tests.tiny_model import smollm2_tokenizer, tiny_qwen2
from toolenv.data import get_task
from toolenv.trajectory import Step, Trajectory, TurnRecord
from trainers.grpo import GRPOConfig, GRPOUpdater
from trainers.monitor import (
    MetricsWriter,
    ProbeAccumulator,
    ProbeSpec,
    SpikeDetector,
    after_opener_positions,
    message_starts,
    read_metrics,
    reward_metrics,
    structure_rates,
    validate,
)
from trainers.plots import plot_run
from trainers.types import Rollout

O = (44, 19324, 79, 4350, 46, 198)  # noqa: E741 (the opener, as in the paper) — SmolLM2: "<", "tool", "_", "call", ">", "\n"


def test_probe_spec_for_smollm2() -> None:
    spec = ProbeSpec.build(smollm2_tokenizer(), "hermes")
    assert spec is not None
    assert spec.opener == O and spec.healthy == 39428 and spec.end_of_turn == 2 and spec.repeat == 44
    assert ProbeSpec.build(smollm2_tokenizer(), "python") is None
    custom = ProbeSpec.build(smollm2_tokenizer(), "python", opener_text="[", healthy_text="ls")
    assert custom is not None and custom.opener == tuple(smollm2_tokenizer().encode("[", add_special_tokens=False))


def test_positions_after_a_sampled_opener_only() -> None:
    completion = [7, *O, 39428, 9, 2] + [5, *O, 8] + [*O, 2]
    mask = [1] * 10 + [0] * 8 + [1] * 7
    # first opener is sampled (followed by {" at 7); the second lies in an observation; the
    # third is sampled and followed by end-of-turn at 24
    assert after_opener_positions(completion, mask, O) == [7, 24]
    # a position whose opener straddles an observation boundary is not a probe position
    assert after_opener_positions([*O, 3], [0, 1, 1, 1, 1, 1, 1], O) == []
    assert message_starts([0, 1, 1, 0, 0, 1, 0, 1]) == [1, 5, 7]
    assert message_starts([1, 1, 0]) == [0]


def _rollout(completion: list[int], mask: list[int], prompt: list[int]) -> Rollout:
    return Rollout("t", 0, 0, prompt, completion, mask, [0.0] * len(completion), 1.0, None)  # type: ignore[arg-type]


def test_probe_probabilities_are_read_at_the_right_positions() -> None:
    tokenizer = smollm2_tokenizer()
    spec = ProbeSpec.build(tokenizer, "hermes")
    assert spec is not None
    model = tiny_qwen2(seed=1)
    rollouts = [
        _rollout(
            [*O, 39428, 9, 2, 198, 1, 520, 9531, 198, *O, 2],
            [1] * 9 + [0] * 5 + [1] * 7,
            [1, 9690, 198, 314, 2, 198, 1, 520, 9531, 198],
        ),
        _rollout(
            [300, 2, 198, 1, 520, 9531, 198, *O, *O, 2],
            [1, 1] + [0] * 5 + [1] * 13,
            [1, 9690, 198, 2, 198, 1, 520, 9531, 198, 5, 6, 7],
        ),
    ]
    probes = ProbeAccumulator(spec, rollouts)
    updater = GRPOUpdater(model, torch.optim.SGD(model.parameters(), lr=0.0), None, GRPOConfig(kl_coef=0.0), pad_id=2)
    updater.precompute(rollouts, probe=probes)
    # expected: a full forward of each sequence on its own, read by hand
    expected: dict[str, list[float]] = {"p_healthy": [], "p_eot": [], "p_repeat": [], "p_opener_start": []}
    for rollout in rollouts:
        ids = torch.tensor([rollout.input_ids])
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids).logits[0].float(), -1)
        p = len(rollout.prompt_ids)
        for j in after_opener_positions(rollout.completion_ids, rollout.loss_mask, O):
            expected["p_healthy"].append(float(probs[p + j - 1, 39428]))
            expected["p_eot"].append(float(probs[p + j - 1, 2]))
            expected["p_repeat"].append(float(probs[p + j - 1, 44]))
        for j in message_starts(rollout.loss_mask):
            expected["p_opener_start"].append(float(probs[p + j - 1, 44]))
    assert len(expected["p_healthy"]) == 4  # 2 in the first rollout, 2 (the repeated tag) in the second
    for name, values in expected.items():
        assert probes.values[name] == pytest.approx(values, rel=1e-4, abs=1e-7)
    # the on-policy update (no separate no-grad pass) reads the probes from its own forward
    assert updater.on_policy
    again = ProbeAccumulator(spec, rollouts)
    updater.step(rollouts, probe=again)
    for name, values in expected.items():
        assert again.values[name] == pytest.approx(values, rel=1e-4, abs=1e-7)
    metrics = probes.metrics()
    assert metrics["probe/after_opener_count"] == 4 and metrics["probe/message_starts"] == 4
    assert metrics["probe/p_eot"] == pytest.approx(sum(expected["p_eot"]) / 4, rel=1e-4)


def _trajectory(states: list[list[str]], reward: float = 0.0, category: str = "base") -> Trajectory:
    trajectory = Trajectory("multi_turn_base_0", category, "v", "hermes", reward=reward)
    for index, turn in enumerate(states):
        trajectory.turns.append(TurnRecord(index, [], [Step("x", "text", structure=s) for s in turn]))
    return trajectory


def test_structure_rates() -> None:
    rates = structure_rates(
        [_trajectory([["healthy_call", "healthy_response"], ["full_collapse"]]), _trajectory([["healthy_call"]])]
    )
    assert rates == {
        "state/healthy_call": 0.5,
        "state/healthy_response": 0.25,
        "state/text_pollution": 0.0,
        "state/full_collapse": 0.25,
        "state/messages": 4.0,
    }
    assert structure_rates([])["state/messages"] == 0.0


def test_reward_metrics() -> None:
    metrics = reward_metrics([1, 0, 0, 0, 1, 1], ["a", "a", "b", "b", "c", "c"])
    assert metrics == {"reward/mean": 0.5, "reward/solved_groups": 2 / 3, "reward/flat_groups": 2 / 3}


def test_spike_detector() -> None:
    detector = SpikeDetector(window=3, spike_abs=0.1, spike_ratio=2.0)
    calm = {"probe/p_eot": 0.02, "probe/p_repeat": 0.01, "probe/p_healthy": 0.95}
    for _ in range(3):
        assert detector.check(calm) == []
    assert detector.check({**calm, "probe/p_eot": 0.08}) == []  # doubled but tiny in absolute terms
    reasons = detector.check({**calm, "probe/p_eot": 0.6, "probe/p_healthy": 0.3})
    assert len(reasons) == 2 and reasons[0].startswith("p_eot 0.600") and "fell" in reasons[1]
    restored = SpikeDetector(window=3)
    restored.load_state_dict(json.loads(json.dumps(detector.state_dict())))
    assert restored.check({**calm, "probe/p_repeat": 0.5}) == detector.check({**calm, "probe/p_repeat": 0.5})


def test_metrics_writer_truncates_on_resume(tmp_path: Any) -> None:
    writer = MetricsWriter(tmp_path)
    for step in range(5):
        writer.write(step, {"x": float(step)})
    MetricsWriter(tmp_path, resume_step=2).write(3, {"x": 30.0})
    assert [(r["step"], r["x"]) for r in read_metrics(tmp_path)] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0)]
    MetricsWriter(tmp_path)  # a fresh run starts a fresh file
    assert not (tmp_path / "metrics.jsonl").exists()


def test_plots(tmp_path: Any) -> None:
    writer = MetricsWriter(tmp_path)
    for step in range(4):
        writer.write(
            step,
            {
                "reward/mean": 0.1 * step,
                "val/base": 0.2,
                "state/healthy_call": 0.5,
                "probe/p_eot": 0.01 * step,
                "train/kl": 0.001,
                "train/lr": 1e-6,
                **({"warning": "p_eot"} if step == 3 else {}),
            },
        )
    written = plot_run(tmp_path)
    assert {p.name for p in written} == {"reward.png", "structure.png", "probes.png", "optimisation.png", "lr.png"}
    assert all(p.stat().st_size > 1000 for p in written)
    with pytest.raises(ValueError, match="no metrics.jsonl"):
        plot_run(tmp_path / "missing")


def _validation_driver(model: Any, max_total_tokens: int = 16384, max_new_tokens: int = 3) -> Any:
    from toolenv.inference import SamplingParams, make_engine
    from trainers.rollout import Budgets, RolloutDriver, default_env_factory

    engine = make_engine("transformers", model, smollm2_tokenizer())
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    return RolloutDriver(
        engine, smollm2_tokenizer(), default_env_factory("hermes"), sampling, Budgets(max_total_tokens, 8)
    )


def test_validation_runs_greedy_episodes_per_category_through_the_rollout_engine() -> None:
    model = tiny_qwen2(seed=2)
    tasks = [get_task("multi_turn_base_4"), get_task("multi_turn_miss_param_4")]
    metrics, rollouts = validate(_validation_driver(model), tasks)
    assert [r.task_id for r in rollouts] == [t.id for t in tasks]
    assert set(metrics) >= {"val/base", "val/miss_param", "val/mean", "val/truncated", "val_state/messages"}
    assert metrics["val/mean"] == (metrics["val/base"] + metrics["val/miss_param"]) / 2
    assert metrics["val_state/messages"] >= 2
    assert metrics["val/length_stops"] == 1.0  # 3 tokens a message: every message hits the limit
    again, _ = validate(_validation_driver(model), tasks)
    assert again == metrics  # greedy: the same episodes


def test_an_over_long_conversation_is_counted_as_truncated_not_as_a_structural_state() -> None:
    """A context budget smaller than the first prompt cuts every episode before the policy
    writes anything: validation reports them truncated (scored 0), and no message is counted,
    so none becomes a full_collapse (the old harness replied "" to an over-long prompt, and
    that empty message was counted as the collapse the paper is about)."""
    model = tiny_qwen2(seed=2)
    tasks = [get_task("multi_turn_base_4"), get_task("multi_turn_base_5")]
    metrics, rollouts = validate(_validation_driver(model, max_total_tokens=64), tasks)
    assert metrics["val/truncated"] == 1.0 and all(r.meta["truncation"] == "max_total_tokens" for r in rollouts)
    assert metrics["val/mean"] == 0.0
    assert metrics["val_state/messages"] == 0.0 and metrics["val_state/full_collapse"] == 0.0
