"""SFT: ground-truth demonstrations, the shared tokenisation, samples and the loss."""

from __future__ import annotations

import json
from typing import Any, Sequence

import pytest
import torch

from tests.fakes import FakeOpenAIServer
from tests.tiny_model import smollm2_tokenizer, tiny_qwen2
from toolenv.calls import Call
from toolenv.data import get_task
from toolenv.formats import get_codec
from toolenv.inference.template import end_of_message_id as end_of_turn_id
from toolenv.selection import select_tasks
from trainers import sft
from trainers.rollout import Budgets, EpisodeSpec, RolloutDriver, default_env_factory
from trainers.sft import (
    MISSING_FUNCTION_REPLY,
    MISSING_PARAMETERS_REPLY,
    EndpointReplyWriter,
    SFTSample,
    _group_calls,
    build_demonstrations,
    build_samples,
    play_ground_truth,
    sft_loss_sum,
    sft_step,
)
from trainers.tokenize import prompt_ids, tokenize_conversation, tokenize_per_message

# one task per category, from both the paper's train and test splits
TASK_IDS = ["multi_turn_base_0", "multi_turn_miss_param_18", "multi_turn_miss_func_43", "multi_turn_long_context_2"]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def demos() -> list[sft.Demonstration]:
    return [play_ground_truth(get_task(task_id)) for task_id in TASK_IDS]


def test_demonstrations_score_one_in_every_category(demos: list[sft.Demonstration]) -> None:
    assert [d.reward for d in demos] == [1.0] * len(demos)
    for demo in demos:
        task = get_task(demo.task_id)
        assistant = [m for m in demo.messages if m["role"] == "assistant"]
        calls = sum(len(turn) for turn in task.ground_truth)
        assert len(assistant) == calls + len(task.ground_truth)  # one message per call + one reply per turn


def test_demonstrations_in_other_formats_and_groupings() -> None:
    task = get_task("multi_turn_base_2")
    for call_format in ("python", "xml", "json_block"):
        assert play_ground_truth(task, call_format).reward == 1.0
    grouped = play_ground_truth(task, calls_per_message="all")
    assert grouped.reward == 1.0
    turns_with_calls = sum(1 for turn in task.ground_truth if turn)
    assert sum(m["role"] == "assistant" for m in grouped.messages) == turns_with_calls + len(task.ground_truth)


def test_empty_turns_get_the_category_reply(demos: list[sft.Demonstration]) -> None:
    for demo, expected in ((demos[1], MISSING_PARAMETERS_REPLY), (demos[2], MISSING_FUNCTION_REPLY)):
        replies = [m["content"] for m in demo.messages if m["role"] == "assistant"]
        assert expected in replies


def test_long_turns_are_spread_over_the_step_limit() -> None:
    calls = [Call(f"f{i}", (), {}) for i in range(34)]
    groups = _group_calls(calls, "one", 20)
    assert len(groups) == 20 and [c for g in groups for c in g] == calls
    assert _group_calls(calls[:5], "one", 20) == [[c] for c in calls[:5]]
    assert _group_calls(calls[:5], "all", 20) == [calls[:5]]
    assert _group_calls([], "one", 20) == []


def test_whole_trajectory_tokens_equal_the_rollout_drivers(tokenizer: Any, demos: list[sft.Demonstration]) -> None:
    # the rollout driver, fed the demonstration's messages instead of sampling, must build the
    # very same ids and mask: SFT trains on exactly what rollouts contain
    class NoEngine:
        def generate(self, *args: Any) -> Any:
            raise AssertionError("nothing is sampled")

    for demo in demos:
        texts = [m["content"] for m in demo.messages if m["role"] == "assistant"]
        driver = RolloutDriver(NoEngine(), tokenizer, default_env_factory("hermes"), budgets=Budgets(100_000, 1000))  # type: ignore[arg-type]
        rollout = driver.run([EpisodeSpec(demo.task_id, replace=lambda ctx, texts=texts: texts[ctx.message_index])])[0]
        ours = tokenize_conversation(tokenizer, demo.messages)
        assert rollout.reward == 1.0
        assert ours.prompt_ids == rollout.prompt_ids
        assert ours.completion_ids == rollout.completion_ids
        assert ours.loss_mask == rollout.loss_mask


def test_whole_trajectory_tokens_decode_to_the_template(tokenizer: Any, demos: list[sft.Demonstration]) -> None:
    demo = demos[0]
    ours = tokenize_conversation(tokenizer, demo.messages)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user" if m["role"] == "tool" else m["role"], "content": m["content"]} for m in demo.messages],
        tokenize=False,
    )
    assert tokenizer.decode(ours.input_ids) == rendered
    trained = [t for t, m in zip(ours.completion_ids, ours.loss_mask) if m]
    eot = end_of_turn_id(tokenizer)
    assert trained.count(eot) == sum(m["role"] == "assistant" for m in demo.messages)  # every message's end-of-turn


def test_per_message_samples(tokenizer: Any, demos: list[sft.Demonstration]) -> None:
    demo = demos[1]
    parts = tokenize_per_message(tokenizer, demo.messages)
    positions = [i for i, m in enumerate(demo.messages) if m["role"] == "assistant"]
    assert len(parts) == len(positions)
    whole = tokenize_conversation(tokenizer, demo.messages)
    trained_whole = [t for t, m in zip(whole.completion_ids, whole.loss_mask) if m]
    assert [t for p in parts for t in p.completion_ids] == trained_whole  # same targets either way
    for part, index in zip(parts, positions):
        assert part.prompt_ids == prompt_ids(tokenizer, demo.messages[:index])
        assert tokenizer.decode(part.completion_ids) == demo.messages[index]["content"] + "<|im_end|>"
        # the per-message prompt is the whole sequence's prefix up to that message
        start = whole.message_starts[positions.index(index)]
        assert (whole.prompt_ids + whole.completion_ids)[: len(part.prompt_ids)] == part.prompt_ids
        assert len(part.prompt_ids) == len(whole.prompt_ids) + start


def test_samples_left_truncate_and_drop_empty(tokenizer: Any, demos: list[sft.Demonstration]) -> None:
    full = build_samples(tokenizer, [demos[0].messages], "per_message", max_length=100_000)
    short = build_samples(tokenizer, [demos[0].messages], "per_message", max_length=64)
    assert len(short) == len(full)
    for a, b in zip(full, short):
        assert len(b.input_ids) == min(64, len(a.input_ids))
        assert b.input_ids == a.input_ids[-len(b.input_ids) :] and b.num_targets == a.num_targets
    tiny = build_samples(tokenizer, [demos[0].messages], "trajectory", max_length=3)
    assert all(len(s.input_ids) == 3 for s in tiny)
    with pytest.raises(ValueError, match="sample mode"):
        build_samples(tokenizer, [demos[0].messages], "per_turn")


def test_demonstration_cache_is_reused(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = select_tasks("base", "train")[:2]
    cache = tmp_path / "demos.jsonl"
    first = build_demonstrations(tasks, cache=cache)
    assert len(cache.read_text().splitlines()) == 2
    monkeypatch.setattr(sft, "play_ground_truth", lambda *a, **k: (_ for _ in ()).throw(AssertionError("replayed")))
    again = build_demonstrations(tasks, cache=cache)
    assert [d.messages for d in again] == [d.messages for d in first]


class _Replies:
    """Stands in for a chat model behind the fake server: records requests, answers a text."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.requests: list[Sequence[dict[str, Any]]] = []

    def next_action(self, messages: Sequence[dict[str, Any]]) -> str:
        self.requests.append(messages)
        return self.answer


def test_endpoint_replies() -> None:
    task = get_task("multi_turn_base_2")
    replies = _Replies("<think>plan</think>Your files are organised: the report was moved to the archive.")
    with FakeOpenAIServer(replies) as server:  # type: ignore[arg-type]
        writer = EndpointReplyWriter(server.url, "judge", get_codec("hermes"))
        demo = play_ground_truth(task, reply=writer)
    assert demo.reward == 1.0
    closing = [m["content"] for m in demo.messages if m["role"] == "assistant" and "<tool_call>" not in m["content"]]
    assert closing == ["Your files are organised: the report was moved to the archive."] * len(task.ground_truth)
    assert len(replies.requests) == len(task.ground_truth) and writer.fallbacks == 0
    shown = replies.requests[0]
    assert shown[-1]["role"] == "user" and "Do not call any tool" in shown[-1]["content"]
    assert all(m["role"] in ("system", "user", "assistant") for m in shown)


def test_endpoint_reply_with_a_tool_call_falls_back_to_the_template() -> None:
    task = get_task("multi_turn_base_2")
    replies = _Replies('<tool_call>\n{"name": "ls", "arguments": {}}\n</tool_call>')
    with FakeOpenAIServer(replies) as server:  # type: ignore[arg-type]
        writer = EndpointReplyWriter(server.url, "judge", get_codec("hermes"))
        demo = play_ground_truth(task, reply=writer)
    assert writer.fallbacks == len(task.ground_truth) and demo.reward == 1.0


# -- loss ----------------------------------------------------------------------------------


def _samples() -> list[SFTSample]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for length, targets in ((12, 4), (20, 9), (7, 2)):
        ids = torch.randint(100, 40000, (length,), generator=generator).tolist()
        out.append(SFTSample(ids, [0] * (length - targets) + [1] * targets))
    return out


def test_loss_is_cross_entropy_on_targets_only() -> None:
    model = tiny_qwen2(seed=3)
    sample = _samples()[1]
    ids = torch.tensor([sample.input_ids])
    mask = torch.tensor([sample.target_mask])
    with torch.no_grad():
        total, count = sft_loss_sum(model, ids, torch.ones_like(ids), mask, start=5)
        logits = model(input_ids=ids).logits[0].float()
    expected = sum(
        -torch.log_softmax(logits[t - 1], -1)[ids[0, t]] for t in range(len(sample.input_ids)) if sample.target_mask[t]
    )
    assert int(count) == 9
    assert float(total) == pytest.approx(float(expected), rel=1e-5)


def test_sft_step_is_a_token_mean_whatever_the_micro_batches() -> None:
    results = []
    for budget in (10_000, 1):
        model = tiny_qwen2(seed=4)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        stats = sft_step(model, optimizer, None, _samples(), pad_id=2, micro_batch_tokens=budget, max_grad_norm=1e9)
        results.append(([p.detach().clone() for p in model.parameters()], stats))
    (first, a), (second, b) = results
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and a["trained_tokens"] == 15
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(first, second))


def test_sft_steps_lower_the_loss() -> None:
    model = tiny_qwen2(seed=5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = [sft_step(model, optimizer, None, _samples(), 2, 10_000, 1.0)["loss"] for _ in range(8)]
    assert losses[-1] < losses[0] * 0.7


def test_demonstration_record_roundtrip(demos: list[sft.Demonstration]) -> None:
    record = json.loads(demos[0].to_json())
    assert sft.Demonstration(**record) == demos[0]
