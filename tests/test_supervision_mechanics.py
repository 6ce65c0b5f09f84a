"""Every supervision method's mechanics on the tiny random Qwen2 and the real BFCL environment:
OPS replacement and group composition, the hint in generation and not in the update, ETS
selection of failed tasks, PRS reflections built from verdicts, the joint loss mixing, and
each method's phases run end to end."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.tiny_model import smollm2_tokenizer, tiny_qwen2  # noqa: E402
from toolenv.checker import check  # noqa: E402
from toolenv.data import get_task  # noqa: E402
from toolenv.formats import get_codec  # noqa: E402
from toolenv.inference.hf_engine import HFEngine  # noqa: E402
from toolenv.trajectory import Trajectory  # noqa: E402
from trainers.config import TrainConfig, config_from_dict  # noqa: E402
from trainers.grpo import GRPOConfig, GRPOUpdater  # noqa: E402
from trainers.losses import group_advantages  # noqa: E402
from trainers.modes import stream_slice  # noqa: E402
from trainers.records import read_step_records  # noqa: E402
from trainers.sft import build_demonstrations, build_samples, sft_loss_sum  # noqa: E402
from trainers.supervision import ops, reflect, schedule  # noqa: E402
from trainers.supervision.ets import erroneous_task_ids  # noqa: E402
from trainers.supervision.prs import REFLECTIONS_FILE  # noqa: E402
from trainers.supervision.run import SupervisedTrainer, run_method  # noqa: E402
from trainers.supervision.updaters import JointSFTUpdater, ShapedOPSUpdater, replaced_token_flags  # noqa: E402
from trainers.types import Rollout  # noqa: E402

#: short tasks (TradingBot, 2 turns, 2–3 calls): ~2.2k prompt tokens with SmolLM2's tokenizer
TASKS = ["multi_turn_base_100", "multi_turn_base_104"]
HINT_MARK = "HINT-MARKER-7"


def _config(out: Path, **sections: dict[str, Any]) -> TrainConfig:
    data: dict[str, Any] = {
        "run": {"mode": "grpo", "out_dir": str(out), "seed": 3, "progress": False},
        "optim": {"lr": 1e-3, "warmup_steps": 0},
        "grpo": {"steps": 1, "prompts_per_step": 2, "n": 3, "mini_batches": 1, "kl_coef": 0.1},
        # tiny budgets on purpose (mechanics on a tiny model): the recipe checks are allowed
        "rollout": {"max_new_tokens": 4, "max_messages": 8, "max_response_tokens": 1500, "max_cut_share": 1.0},
        "sft": {
            "batch_size": 4,
            "max_length": 96,
            "max_steps": 1,
            "micro_batch_tokens": 800,
            "max_truncated_share": 1.0,
        },
        "monitor": {"val_every": 0},
        "checkpoint": {"save_every": 0},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_from_dict(data)


def _trainer(tmp_path: Path, method: str | dict[str, Any], **sections: dict[str, Any]) -> SupervisedTrainer:
    return SupervisedTrainer(
        _config(tmp_path, **sections),
        schedule.method_from_dict(method),
        tiny_qwen2(seed=1),
        smollm2_tokenizer(),
        tasks=[get_task(t) for t in TASKS],
        hint_writer=lambda task: f"{HINT_MARK} for {task.id}",
    )


class RecordingModel(torch.nn.Module):
    """Delegates to a model and records the input ids of every forward."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[list[int]] = []

    def forward(self, input_ids: Any = None, attention_mask: Any = None, **kwargs: Any) -> Any:
        masks = (
            attention_mask.tolist() if attention_mask is not None else [[1] * input_ids.shape[1]] * input_ids.shape[0]
        )
        for row, mask in zip(input_ids.tolist(), masks):  # right padding may come without a mask
            self.seen.append([t for t, m in zip(row, mask) if m])
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def get_output_embeddings(self) -> Any:  # the trainer applies the LM head itself, chunk by chunk
        return self.inner.get_output_embeddings()

    @property
    def config(self) -> Any:  # the shared-prefix forward builds its cache from the model's config
        return self.inner.config


# -- OPS -------------------------------------------------------------------------------------


def test_ops_replaces_sample_zero_of_each_group_with_the_executed_ground_truth(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, {"method": "ops", "replace": 1})
    tok = smollm2_tokenizer()
    rollouts = trainer.collect(HFEngine(trainer.model, tok), TASKS, step=1)
    assert [(r.group, r.sample) for r in rollouts] == [(g, s) for g in range(2) for s in range(3)]
    for rollout in rollouts:
        if rollout.sample == 0:
            task = get_task(rollout.task_id)
            script = ops.ground_truth_script(task, "hermes")
            assert rollout.source == "ground_truth" and rollout.reward == 1.0  # executed and checked for real
            sent = [m["content"] for m in rollout.trajectory.messages if m["role"] == "assistant"]
            assert sent == script
            spans = rollout.meta["replaced_spans"]
            assert len(spans) == len(script) and all(rollout.loss_mask[a:b] == [1] * (b - a) for a, b in spans)
            assert [tok.decode(rollout.completion_ids[a : b - 1]) for a, b in spans] == script
        else:
            assert rollout.source == "policy" and not rollout.meta["replaced_spans"]
    advantages = group_advantages([r.reward for r in rollouts], [r.group for r in rollouts])
    for group in range(2):
        rows = [(r, a) for r, a in zip(rollouts, advantages) if r.group == group]
        expert = next(a for r, a in rows if r.sample == 0)
        assert expert > 0 and all(a < expert for r, a in rows if r.sample != 0)  # the expert enters mean and std


def test_ops_refuses_a_message_budget_the_demonstration_does_not_fit(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "ops", rollout={"max_messages": 2})
    with pytest.raises(ValueError, match="has 4 messages, more than \\[rollout\\] max_messages = 2"):
        trainer.episode_specs(TASKS[:1], step=1)


def test_ops_shaped_loss_flags_exactly_the_substituted_tokens(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, {"method": "ops", "replace": 1, "shaped_loss": True})
    rollouts = trainer.collect(HFEngine(trainer.model, smollm2_tokenizer()), TASKS[:1], step=1)
    width = max(len(r.input_ids) for r in rollouts) - 1
    flags = replaced_token_flags(rollouts, width)
    for row, rollout in enumerate(rollouts):
        positions = {len(rollout.prompt_ids) - 1 + j for a, b in rollout.meta["replaced_spans"] for j in range(a, b)}
        assert set(torch.nonzero(flags[row]).flatten().tolist()) == positions
    config = GRPOConfig(kl_coef=0.0)
    optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.0)
    shaped = ShapedOPSUpdater(trainer.model, optimizer, None, config, trainer.pad_id)
    stats = shaped.step(rollouts)
    expert_tokens = sum(r.num_trained_tokens for r in rollouts if r.source == "ground_truth")
    assert stats.extra["ops/off_policy_token_fraction"] == pytest.approx(
        expert_tokens / sum(r.num_trained_tokens for r in rollouts)
    )
    assert isinstance(trainer.make_updater(trainer.model, optimizer, None, config, trainer.pad_id), ShapedOPSUpdater)


def test_shaped_updater_equals_grpo_without_substituted_tokens() -> None:
    """Differential: with no replaced span the shaped updater's gradient is GRPO's."""
    rollouts = [_synthetic(seed) for seed in range(4)]
    grads = []
    for cls in (GRPOUpdater, ShapedOPSUpdater):
        model = tiny_qwen2(seed=2)
        updater = cls(
            model, torch.optim.SGD(model.parameters(), lr=0.0), None, GRPOConfig(kl_coef=0.0, max_grad_norm=1e9), 0
        )
        grads.append(_grad_at_clip(updater, rollouts))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


# -- HBG -------------------------------------------------------------------------------------


def test_hint_is_in_the_generation_prompt_only(tmp_path: Path) -> None:
    from tests.rollout_helpers import RecordingEngine

    trainer = _trainer(tmp_path, {"method": "hbg", "hinted": 2})
    tok = smollm2_tokenizer()
    engine = RecordingEngine(HFEngine(trainer.model, tok))
    rollouts = trainer.collect(engine, TASKS[:1], step=1)
    prompts_seen = [tok.decode(p) for prompts, _, _ in engine.calls for p in prompts]
    assert sum(HINT_MARK in p for p in prompts_seen[:3]) == 2  # first round: samples 0 and 1 of 3
    assert f"{HINT_MARK} for {TASKS[0]}<|im_end|>" in prompts_seen[0]  # at the end of the system message
    assert len({tuple(r.prompt_ids) for r in rollouts}) == 1  # every sample trains on the same hint-free prompt
    for rollout in rollouts:
        assert HINT_MARK not in tok.decode(rollout.input_ids)
        assert (HINT_MARK in tok.decode(rollout.meta.get("generation_prompt_ids", []))) == (rollout.sample < 2)
    assert json.loads((tmp_path / "hints.json").read_text()) == {TASKS[0]: f"{HINT_MARK} for {TASKS[0]}"}
    # the update (old log-probs, reference, loss) forwards hint-free sequences only
    recorder = RecordingModel(trainer.model)
    # two epochs: a separate old-log-prob pass, then two updates; whole sequences per forward (the
    # shared-prefix split, tested for equality in tests/test_shared_prefix.py, forwards pieces)
    config = GRPOConfig(kl_coef=0.1, ppo_epochs=2, shared_prefix=False)
    updater = GRPOUpdater(
        recorder,
        torch.optim.SGD(recorder.parameters(), lr=0.0),
        None,
        config,
        trainer.pad_id,
        reference=RecordingModel(copy.deepcopy(trainer.model)),
    )
    updater.step(rollouts)
    assert len(recorder.seen) == 3 * len(rollouts) and len(updater.reference.seen) == len(rollouts)
    for ids in recorder.seen + updater.reference.seen:
        assert HINT_MARK not in tok.decode(ids)


def test_hbg_and_ops_refuse_engine_log_probs(tmp_path: Path) -> None:
    for method in ("hbg", "ops"):
        with pytest.raises(ValueError, match='old_logprobs = "recompute"'):
            run_method(_config(tmp_path, grpo={"old_logprobs": "engine"}), schedule.method_from_dict(method), tmp_path)


# -- joint loss --------------------------------------------------------------------------------


def _synthetic(seed: int) -> Rollout:
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(5, 4000, (6,), generator=g).tolist()
    completion = torch.randint(5, 4000, (7,), generator=g).tolist()
    mask = [1, 1, 1, 0, 0, 1, 1]
    return Rollout(
        "t", seed // 2, seed, prompt, completion, mask, [-1.0 if m else 0.0 for m in mask], float(seed % 2), None
    )  # type: ignore[arg-type]


class _Snapshot:
    """Mixes into an updater: keeps the gradients as they are just before clipping."""

    grads: list[Any]

    def before_clip(self, mini: Any, sums: Any) -> None:
        super().before_clip(mini, sums)  # type: ignore[misc]
        self.grads = [
            p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in self.model.parameters()
        ]  # type: ignore[attr-defined]


def _grad_at_clip(updater: Any, rollouts: list[Rollout]) -> list[Any]:
    cls = type("Snap" + type(updater).__name__, (_Snapshot, type(updater)), {})
    updater.__class__ = cls
    updater.step(rollouts)
    return updater.grads


def test_joint_loss_gradient_is_grpo_plus_weighted_sft() -> None:
    tok = smollm2_tokenizer()
    demos = build_demonstrations([get_task(TASKS[0])], "hermes")
    samples = build_samples(tok, [d.messages for d in demos], "per_message", max_length=64)
    rollouts = [_synthetic(seed) for seed in range(4)]
    config = GRPOConfig(kl_coef=0.0, max_grad_norm=1e9)
    weight, batch = 0.5, 3

    def fresh() -> Any:
        return tiny_qwen2(seed=4)

    model = fresh()
    joint = JointSFTUpdater(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        None,
        config,
        tok.pad_token_id,
        sft_samples=samples,
        weight=weight,
        batch=batch,
        seed=9,
    )
    chosen = joint.joint_batch(0)
    mixed = _grad_at_clip(joint, rollouts)
    model = fresh()
    rl = _grad_at_clip(
        GRPOUpdater(model, torch.optim.SGD(model.parameters(), lr=0.0), None, config, tok.pad_token_id), rollouts
    )
    model = fresh()
    model.train(True)
    from trainers.batching import collate

    ids, attention, _ = collate([(s.input_ids, s.target_mask) for s in chosen], tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, s in enumerate(chosen):
        mask[row, : len(s.target_mask)] = torch.tensor(s.target_mask)
    nll, count = sft_loss_sum(model, ids, attention, mask)
    (weight * nll / count).backward()
    sft = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    for m, r, s in zip(mixed, rl, sft):
        torch.testing.assert_close(m, r + s, rtol=1e-4, atol=1e-6)
    assert any(float(s.abs().sum()) > 0 for s in sft)
    # batches walk a seeded permutation: every sample once per pass
    firsts = [id(s) for u in range(len(samples) // batch) for s in joint.joint_batch(u)]
    assert len(set(firsts)) == len(firsts)


# -- ETS and PRS end to end --------------------------------------------------------------------


def test_ets_trains_on_the_demonstrations_of_the_tasks_that_failed(tmp_path: Path) -> None:
    method = schedule.method_from_dict({"method": "ets", "phases": [2, 1], "window": 1})
    final = run_method(
        _config(tmp_path / "cfg", grpo={"n": 2}),
        method,
        tmp_path / "ets",
        model=tiny_qwen2(seed=1),
        tokenizer=smollm2_tokenizer(),
        tasks=[get_task(t) for t in TASKS],
    )
    out = tmp_path / "ets"
    assert final == out / "02-rl" / "final" and (final / "config.json").exists()
    rows = read_step_records(out / "00-rl", 2, 2)
    assert {r.step for r, _ in rows} == {2} and len(rows) == 4  # the window: the last step only
    expected = erroneous_task_ids([r for r, _ in rows], 2, 1)
    assert expected  # a random tiny model fails
    phase = json.loads((out / "01-sft" / "phase.json").read_text())
    assert phase["status"] == "done" and phase["sft_tasks"] == expected and phase["reflections"] == 0
    demos = [json.loads(line)["task_id"] for line in (out / "01-sft" / "demos.jsonl").read_text().splitlines()]
    assert demos == expected
    sft_config = json.loads((out / "01-sft" / "config.json").read_text())
    assert sft_config["optim"]["lr"] == 1e-6 and sft_config["model"]["path"] == str(out / "00-rl" / "final")
    assert json.loads((out / "02-rl" / "config.json").read_text())["model"]["path"] == str(out / "01-sft" / "final")
    summary = json.loads((out / "method.json").read_text())
    assert [p["status"] for p in summary["phases"]] == ["done"] * 3
    # a second call finds every phase done and trains nothing
    assert (
        run_method(_config(tmp_path / "cfg", grpo={"n": 2}), method, out, tasks=[get_task(t) for t in TASKS]) == final
    )


@pytest.mark.parametrize("stream", ["continue", "restart"])
def test_ets_rl_phases_continue_the_prompt_stream(tmp_path: Path, stream: str) -> None:
    """A later RL phase plays the prompts one run would play at that step (sitting 8 found every
    phase replaying the first one's: 16 of 27 tasks, three times); "restart" keeps the old way."""
    method = schedule.method_from_dict({"method": "ets", "phases": [2, 1], "window": 1, "prompt_stream": stream})
    tasks = [get_task(t) for t in TASKS]
    config = _config(tmp_path / "cfg", grpo={"n": 2, "prompts_per_step": 1})
    out = tmp_path / "ets"
    run_method(config, method, out, model=tiny_qwen2(seed=1), tokenizer=smollm2_tokenizer(), tasks=tasks)
    later = json.loads((out / "02-rl" / "config.json").read_text())["grpo"]["first_step"]
    assert later == (3 if stream == "continue" else 1)
    played = {r.task_id for r, _ in read_step_records(out / "02-rl", 1, 1)}
    expected = stream_slice(len(tasks), 1, later, config.run.seed)
    assert played == {tasks[i].id for i in expected}
    # the stream's steps 1 and 3 differ here, so the check tells the two ways apart
    assert stream_slice(len(tasks), 1, 1, config.run.seed) != stream_slice(len(tasks), 1, 3, config.run.seed)


def test_prs_reflections_come_from_the_checker_verdicts(tmp_path: Path) -> None:
    method = schedule.method_from_dict({"method": "prs", "phases": [1, 1], "window": 1, "per_task": 2})
    run_method(
        _config(tmp_path / "cfg", grpo={"n": 2}),
        method,
        tmp_path / "prs",
        model=tiny_qwen2(seed=1),
        tokenizer=smollm2_tokenizer(),
        tasks=[get_task(t) for t in TASKS],
    )
    out = tmp_path / "prs"
    records = [json.loads(line) for line in (out / "01-sft" / REFLECTIONS_FILE).read_text().splitlines()]
    rows = {(r.task_id, r.sample): data for r, data in read_step_records(out / "00-rl", 1, 1)}
    failed = [key for key, data in rows.items() if data["reward"] == 0]
    assert sorted((r["task_id"], r["sample"]) for r in records) == sorted(failed)
    codec = get_codec("hermes")
    for record in records:
        task = get_task(record["task_id"])
        trajectory = Trajectory.from_dict(rows[(record["task_id"], record["sample"])])
        ours = reflect.Reflection.from_dict(record["reflection"])
        assert ours == reflect.reflect(task, trajectory, codec).__class__.from_dict(
            {**reflect.reflect(task, trajectory, codec).to_dict(), "sample": record["sample"], "step": 1}
        )
        verdict = check(task, trajectory.model_turns())
        if verdict.failure != "force_terminated":
            assert (ours.failure, ours.failed_turn) == (verdict.failure, verdict.failed_turn)
        assert ours.corrected in ours.critique
        assert record["messages"][1] == {"role": "assistant", "content": ours.critique}
    phase = json.loads((out / "01-sft" / "phase.json").read_text())
    assert phase["reflections"] == len(records) > 0 and phase["sft_tasks"]
    assert json.loads((out / "01-sft" / "config.json").read_text())["optim"]["lr"] == 1e-5


@pytest.mark.parametrize("method", ["vanilla", "sft", "sft_rl", "ops", "hbg", "sync_joint"])
def test_every_method_runs_its_phases(tmp_path: Path, method: str) -> None:
    config = _config(tmp_path / "cfg", grpo={"n": 2, "prompts_per_step": 1})
    final = run_method(
        config,
        schedule.method_from_dict(method),
        tmp_path / method,
        model=tiny_qwen2(seed=1),
        tokenizer=smollm2_tokenizer(),
        tasks=[get_task(TASKS[0])],
        hint_writer=lambda task: "a hint",
    )
    summary = json.loads((tmp_path / method / "method.json").read_text())
    assert summary["final"] == str(final) and (final / "config.json").exists()
    assert [p["kind"] for p in summary["phases"]] == [
        p.kind for p in schedule.phase_plan(schedule.method_from_dict(method), 1)
    ]
    metrics = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
    if method == "sync_joint":
        assert metrics[-1]["train/joint/sft_loss"] > 0
    if method == "ops":
        lines = (final.parent / "rollouts" / "step_000001.jsonl").read_text().splitlines()
        assert [json.loads(line)["source"] for line in lines] == ["ground_truth", "policy"]
