"""Token engines on a tiny random Qwen2: log-probs match a recomputed forward pass, the two
HF modes agree with each other and with transformers ``generate``, seeds, stop tokens, prefix
reuse and weight sync."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.rollout_helpers import tiny_qwen, tokenizer  # noqa: E402
from toolenv.inference import EngineError, SamplingParams, make_engine  # noqa: E402
from toolenv.inference.hf_engine import HFEngine, filter_logits  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_qwen()


def prompts() -> list[list[int]]:
    tok = tokenizer()
    texts = [
        "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are a tool caller.<|im_end|>\n<|im_start|>user\nList files in /tmp please<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
    ]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def recomputed_logprobs(model, prompt: list[int], ids: list[int], params: SamplingParams) -> list[float]:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + ids])).logits[0].float()
    out = []
    for k, token in enumerate(ids):
        row = logits[len(prompt) + k - 1]
        if params.temperature > 0:
            row = filter_logits(torch, row / params.temperature, params.top_k, params.top_p)
        out.append(float(torch.log_softmax(row, -1)[token]))
    return out


@pytest.mark.parametrize("mode", ["cached", "batched"])
@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_new_tokens=12, temperature=0.7, seed=3),
        SamplingParams(max_new_tokens=12, temperature=0.0),
        SamplingParams(max_new_tokens=12, temperature=1.3, top_k=50, top_p=0.9, seed=5),
    ],
)
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
    for prompt, generation in zip(
        prompts(), engine.generate(prompts(), SamplingParams(max_new_tokens=10, temperature=0))
    ):
        with torch.no_grad():
            reference = model.generate(
                torch.tensor([prompt]),
                max_new_tokens=10,
                do_sample=False,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
            )[0, len(prompt) :].tolist()
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
    longer = (
        p
        + first.token_ids
        + tok("<|im_end|>\n<|im_start|>user\nmore<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)[
            "input_ids"
        ]
    )
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


# -- the chat models on the engines, names and paths (no vLLM needed: a stand-in module) ------


class _FakeLLM:
    """Records what ``VLLMEngine`` builds ``vllm.LLM`` with and answers with fixed ids."""

    made: list[dict] = []

    def __init__(self, **kwargs) -> None:
        _FakeLLM.made.append(kwargs)
        self.prompts: list[list[int]] = []
        self.llm_engine = type(
            "E", (), {"model_config": type("C", (), {"hf_config": type("H", (), {"eos_token_id": 2})()})()}
        )()

    def generate(self, prompts, params, use_tqdm=False):
        self.prompts = [list(p["prompt_token_ids"]) for p in prompts]
        hello = tokenizer()("Hello!", add_special_tokens=False)["input_ids"] + [2]
        sample = type(
            "S", (), {"token_ids": hello, "logprobs": [{t: type("L", (), {"logprob": -0.1})()} for t in hello]}
        )()
        return [type("O", (), {"outputs": [sample]})() for _ in prompts]


def test_vllm_chat_model_renders_with_the_shared_template_and_keeps_the_empty_reply_rule(monkeypatch) -> None:
    import sys
    import types as pytypes

    from toolenv.inference import GenerationConfig, load_model
    from toolenv.inference.chat import VLLMChatModel

    fake = pytypes.ModuleType("vllm")
    fake.LLM = _FakeLLM
    fake.SamplingParams = lambda **kwargs: kwargs
    inputs = pytypes.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    generation = GenerationConfig(max_new_tokens=16, max_prompt_tokens=200, seed=3)
    chat = load_model(None, engine="vllm-cpu", generation=generation)
    assert isinstance(chat, VLLMChatModel) and chat.name == "SmolLM2-135M-Instruct"
    made = _FakeLLM.made[-1]
    assert made["max_model_len"] == 216 and made["seed"] == 3 and "dtype" not in made
    assert made["gpu_memory_utilization"] == (0.85 if torch.cuda.is_available() else 0.2)
    import os

    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ  # an evaluation keeps vLLM's own process
    short = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x"}, {"role": "tool", "content": "r"}]
    long = [{"role": "user", "content": "word " * 400}]
    assert chat.generate([short, long]) == ["Hello!", ""]
    tool_as_user = [dict(m, role="user") if m["role"] == "tool" else m for m in short]
    expected = tokenizer()(
        tokenizer().apply_chat_template(tool_as_user, add_generation_prompt=True, tokenize=False),
        add_special_tokens=False,
    )["input_ids"]
    assert chat.engine.llm.prompts == [expected]


def test_transformers_chat_model_leaves_the_tokenizer_it_is_given_alone(model) -> None:
    import copy as _copy

    from toolenv.inference import GenerationConfig
    from toolenv.inference.chat import TransformersChatModel

    tok = _copy.deepcopy(tokenizer())
    tok.pad_token = None
    tok.padding_side = "right"
    for cache in (True, False):
        chat = TransformersChatModel(model, tok, "policy", GenerationConfig(max_new_tokens=4), prefix_cache=cache)
        assert len(chat.generate([[{"role": "user", "content": "Hi"}]] * 2)) == 2
    assert tok.pad_token is None and tok.padding_side == "right"


def test_engine_names_and_the_model_path_resolver(tmp_path) -> None:
    from toolenv.inference import ModelError, canonical_engine, check_model_files, model_path, resolve_model

    assert [canonical_engine(n) for n in ("hf", "transformers", "vllm", "vllm-cpu")] == [
        "transformers",
        "transformers",
        "vllm",
        "vllm",
    ]
    with pytest.raises(EngineError, match="unknown engine 'tgi'"):
        canonical_engine("tgi")
    for error in (ValueError, ModelError):  # the trainer reports ValueError, the evaluation ModelError
        with pytest.raises(error, match="no transformers model at"):
            model_path(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert model_path(str(tmp_path)) == tmp_path  # weights-only folders are fine here (weight deltas)
    with pytest.raises(ModelError, match="not a complete transformers model folder: no weights"):
        check_model_files(tmp_path, str(tmp_path))
    assert resolve_model("smollm2")[1] == "SmolLM2-135M-Instruct"
