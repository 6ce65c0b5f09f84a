"""Token engines on a tiny random Qwen2: log-probs match a recomputed forward pass, the two
HF modes agree with each other and with transformers ``generate``, seeds, stop tokens, prefix
reuse and weight sync."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.rollout_helpers import tiny_qwen, tokenizer  # noqa: E402
from trainers.engines import EngineError, HFEngine, _filter_logits, make_engine  # noqa: E402
from trainers.types import SamplingParams  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_qwen()


def prompts() -> list[list[int]]:
    tok = tokenizer()
    texts = ["<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n",
             "<|im_start|>system\nYou are a tool caller.<|im_end|>\n<|im_start|>user\nList files in /tmp please<|im_end|>\n<|im_start|>assistant\n",
             "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def recomputed_logprobs(model, prompt: list[int], ids: list[int], params: SamplingParams) -> list[float]:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + ids])).logits[0].float()
    out = []
    for k, token in enumerate(ids):
        row = logits[len(prompt) + k - 1]
        if params.temperature > 0:
            row = _filter_logits(torch, row / params.temperature, params.top_k, params.top_p)
        out.append(float(torch.log_softmax(row, -1)[token]))
    return out


@pytest.mark.parametrize("mode", ["cached", "batched"])
@pytest.mark.parametrize("params", [SamplingParams(max_new_tokens=12, temperature=0.7, seed=3),
                                    SamplingParams(max_new_tokens=12, temperature=0.0),
                                    SamplingParams(max_new_tokens=12, temperature=1.3, top_k=50, top_p=0.9, seed=5)])
def test_logprobs_equal_a_recomputed_forward_pass_at_the_sampling_temperature(model, mode, params) -> None:
    engine = HFEngine(model, tokenizer(), mode=mode)
    for prompt, generation in zip(prompts(), engine.generate(prompts(), params)):
        assert len(generation.token_ids) == len(generation.logprobs) > 0
        expected = recomputed_logprobs(model, prompt, generation.token_ids, params)
        assert generation.logprobs == pytest.approx(expected, abs=2e-4)


def test_cached_and_batched_modes_sample_the_same_tokens(model) -> None:
    params = [SamplingParams(max_new_tokens=16, temperature=1.0, seed=s) for s in (1, 2, 3)]
    cached = HFEngine(model, tokenizer(), mode="cached").generate(prompts(), params)
    batched = HFEngine(model, tokenizer(), mode="batched").generate(prompts(), params)
    assert [g.token_ids for g in cached] == [g.token_ids for g in batched]
    for a, b in zip(cached, batched):
        assert a.logprobs == pytest.approx(b.logprobs, abs=2e-4)


def test_greedy_equals_transformers_generate(model) -> None:
    tok = tokenizer()
    engine = HFEngine(model, tok, mode="cached", stop_ids=[tok.eos_token_id])
    for prompt, generation in zip(prompts(), engine.generate(prompts(), SamplingParams(max_new_tokens=10, temperature=0))):
        with torch.no_grad():
            reference = model.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False,
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[0, len(prompt):].tolist()
        assert generation.token_ids == reference


def test_seeds_decide_the_sample_whatever_shares_the_call(model) -> None:
    engine = HFEngine(model, tokenizer(), mode="batched")
    p = prompts()
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=11)
    alone = engine.generate([p[1]], params)[0]
    together = engine.generate(p, params)[1]
    assert alone.token_ids == together.token_ids
    other = engine.generate([p[1]], SamplingParams(max_new_tokens=16, temperature=1.0, seed=12))[0]
    assert other.token_ids != alone.token_ids


def test_stop_token_is_included_and_ends_the_message(model) -> None:
    tok = tokenizer()
    greedy = SamplingParams(max_new_tokens=8, temperature=0)
    free = HFEngine(model, tok, stop_ids=[10**6]).generate(prompts()[:1], greedy)[0]
    assert free.finish_reason == "length" and len(free.token_ids) == 8
    stop_at = free.token_ids[3]
    first = free.token_ids.index(stop_at)
    stopped = HFEngine(model, tok, stop_ids=[stop_at]).generate(prompts()[:1], greedy)[0]
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids == free.token_ids[: first + 1]


def test_prefix_cache_reuse_gives_what_a_fresh_engine_gives(model) -> None:
    tok = tokenizer()
    params = SamplingParams(max_new_tokens=10, temperature=0)
    engine = HFEngine(model, tok, mode="cached", stop_ids=[10**6])
    p = prompts()[1]
    first = engine.generate([p], params)[0]
    longer = p + first.token_ids + tok("<|im_end|>\n<|im_start|>user\nmore<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    branch = p + first.token_ids[:4]
    reused = engine.generate([longer, branch], params)
    assert len(engine._caches) >= 1
    fresh = [HFEngine(model, tok, mode="cached", stop_ids=[10**6]).generate([x], params)[0] for x in (longer, branch)]
    capped = HFEngine(model, tok, mode="cached", stop_ids=[10**6], max_cached_tokens=1)
    capped.generate([p], params)
    uncached = capped.generate([longer, branch], params)
    assert len(capped._caches) == 1  # only the newest sequence is kept under the cap
    for a, b, c in zip(reused, fresh, uncached):
        assert a.token_ids == c.token_ids
        assert a.token_ids == b.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=2e-4)


def test_sync_weights_loads_the_trained_model(model) -> None:
    tok = tokenizer()
    trained = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    params = SamplingParams(max_new_tokens=10, temperature=0)
    engine = HFEngine(copy.deepcopy(model), tok, stop_ids=[10**6])
    before = engine.generate(prompts(), params)
    target = HFEngine(trained, tok, stop_ids=[10**6]).generate(prompts(), params)
    assert [g.token_ids for g in before] != [g.token_ids for g in target]
    engine.sync_weights(trained)
    after = engine.generate(prompts(), params)
    assert [g.token_ids for g in after] == [g.token_ids for g in target]


def test_make_engine_rejects_unknown_kinds_and_missing_tokenizers(model) -> None:
    with pytest.raises(EngineError, match="unknown engine"):
        make_engine("tgi", model, tokenizer())
    with pytest.raises(EngineError, match="tokenizer"):
        make_engine("hf", model)
    assert isinstance(make_engine("transformers", model, tokenizer()), HFEngine)
    with pytest.raises(ValueError, match="2 sampling settings for 3 prompts"):
        HFEngine(model, tokenizer()).generate(prompts(), [SamplingParams()] * 2)
