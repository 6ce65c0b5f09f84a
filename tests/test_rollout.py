"""The multi-turn rollout driver: masks, token-in/token-out (no re-tokenisation drift),
rendered-text equivalence with the chat template, length stops, budgets, hooks, determinism,
lockstep batching, real BFCL episodes, and the trainer batch."""

from __future__ import annotations

import copy
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.rollout_helpers import RecordingEngine, ScriptedEngine, ScriptEnv, tiny_qwen, tokenizer  # noqa: E402
from toolenv.inference.hf_engine import HFEngine  # noqa: E402
from toolenv.inference.types import SamplingParams  # noqa: E402
from trainers.rollout import Budgets, EpisodeSpec, RolloutDriver, default_env_factory, message_seed, to_batch  # noqa: E402
from trainers.types import Rollout  # noqa: E402

IM_END = 2


@pytest.fixture(scope="module")
def model():
    return tiny_qwen()


def env_factory(steps: int = 4, reward: float = 0.5):
    envs: dict[str, list[ScriptEnv]] = {}

    def make(task_id: str) -> ScriptEnv:
        env = ScriptEnv(task_id, steps, reward)
        envs.setdefault(task_id, []).append(env)
        return env

    make.envs = envs  # type: ignore[attr-defined]
    return make


def hf_driver(
    model,
    steps: int = 4,
    temperature: float = 1.0,
    max_new: int = 12,
    seed: int = 0,
    budgets: Budgets = Budgets(),
    mode: str = "cached",
):
    engine = RecordingEngine(HFEngine(model, tokenizer(), mode=mode))
    factory = env_factory(steps)
    driver = RolloutDriver(
        engine,
        env_factory=factory,
        sampling=SamplingParams(max_new_tokens=max_new, temperature=temperature),
        budgets=budgets,
        seed=seed,
    )
    return driver, engine, factory


def episode_messages(engine: RecordingEngine, rollout: Rollout, seed: int = 0) -> list[list[int]]:
    """The ids the engine sampled for one episode, found by its per-message seeds."""
    wanted = {message_seed(seed, rollout.group, rollout.sample, m) for m in range(rollout.meta["num_messages"])}
    return [out.token_ids for _, params, outs in engine.calls for p, out in zip(params, outs) if p.seed in wanted]


def render(messages) -> str:
    return tokenizer().apply_chat_template(messages, tokenize=False)


def check_sequence(rollout: Rollout, messages: list[list[int]], sampled: bool = True) -> None:
    """The completion is each sampled message verbatim, separated by observation tokens; the
    mask is 1 exactly on the sampled ids and the log-probs are 0 elsewhere."""
    position = 0
    trained = [0] * len(rollout.completion_ids)
    for ids in messages:
        start = rollout.completion_ids.index(ids[0], position) if ids else position
        # the first sampled id follows the previous observation exactly: find it by the mask
        start = rollout.loss_mask.index(1, position)
        assert rollout.completion_ids[start : start + len(ids)] == ids
        for k in range(start, start + len(ids)):
            trained[k] = 1
        position = start + len(ids)
    assert rollout.loss_mask == trained
    assert all(lp == 0.0 for lp, m in zip(rollout.sample_logprobs, rollout.loss_mask) if m == 0)
    if sampled:
        assert all(lp < 0.0 for lp, m in zip(rollout.sample_logprobs, rollout.loss_mask) if m == 1)


def test_mask_is_one_exactly_on_the_sampled_ids(model) -> None:
    driver, engine, _ = hf_driver(model)
    rollouts = driver.rollouts(["a", "b"], n=2)
    for rollout in rollouts:
        messages = episode_messages(engine, rollout)
        assert len(messages) == rollout.meta["num_messages"] == 4
        check_sequence(rollout, messages)
        assert sum(rollout.loss_mask) == sum(len(m) for m in messages) and rollout.loss_mask.count(0) > 0
        assert rollout.reward == 0.5 and not rollout.truncated and rollout.source == "policy"


def test_sequence_is_prompt_plus_verbatim_samples_plus_observation_deltas(model) -> None:
    tok = tokenizer()
    driver, engine, factory = hf_driver(model, steps=3)
    [rollout] = driver.rollouts(["a"], n=1)
    generated = [out.token_ids for _, _, outs in engine.calls for out in outs]
    assert len(generated) == 3
    check_sequence(rollout, generated)
    # the engine was always asked to continue exactly the sequence built so far
    built = rollout.prompt_ids + rollout.completion_ids
    for prompts, _, _ in engine.calls:
        assert built[: len(prompts[0])] == prompts[0]
    # what the environment received is the decoded sampled text
    env = factory.envs["a"][0]
    assert env.received == [tok.decode(ids, skip_special_tokens=True) for ids in generated]


def test_re_encoding_would_drift_but_the_rollout_keeps_the_sampled_ids() -> None:
    tok = tokenizer()
    # "hello" spelled one character per token: decode→encode merges it into fewer tokens
    spelled = [tok.convert_tokens_to_ids(c) for c in "hello"] + [IM_END]
    assert tok(tok.decode(spelled[:-1]), add_special_tokens=False)["input_ids"] != spelled[:-1]
    engine = ScriptedEngine(lambda call, position, prompt: (spelled, "stop"))
    driver = RolloutDriver(engine, env_factory=env_factory(steps=2))
    [rollout] = driver.rollouts(["a"])
    check_sequence(rollout, [spelled, spelled])
    assert rollout.trajectory.messages[2]["content"] == "hello"


def test_decoded_sequence_equals_the_chat_template_of_the_conversation(model) -> None:
    tok = tokenizer()
    driver, engine, _ = hf_driver(model, steps=4, max_new=8)  # short messages: some stop on length
    rollouts = driver.rollouts(["a", "b"], n=2)
    assert any(r.meta["finish_reasons"].count("length") for r in rollouts)
    for rollout in rollouts:
        messages = iter(episode_messages(engine, rollout))
        conversation = []
        for message in rollout.trajectory.messages:
            message = {"role": "user" if message["role"] == "tool" else message["role"], "content": message["content"]}
            if message["role"] == "assistant":
                ids = next(messages)
                assert message["content"] == tok.decode(ids, skip_special_tokens=True)  # what the env got
                # as sampled, special tokens kept (documented difference), the stop token is the template's
                message["content"] = tok.decode(ids[:-1] if ids[-1] == IM_END else ids, skip_special_tokens=False)
            conversation.append(message)
        assert tok.decode(rollout.input_ids, skip_special_tokens=False) == render(conversation)


def test_length_stop_closes_the_message_with_observation_tokens() -> None:
    tok = tokenizer()
    words = tok("abc def", add_special_tokens=False)["input_ids"]
    engine = ScriptedEngine(
        lambda call, position, prompt: (words if call == 0 else words + [IM_END], "length" if call == 0 else "stop")
    )
    driver = RolloutDriver(engine, env_factory=env_factory(steps=2))
    [rollout] = driver.rollouts(["a"])
    n = len(words)
    after_first = rollout.completion_ids[n:]
    closing = tok("<|im_end|>\n<|im_start|>user\n", add_special_tokens=False)["input_ids"]
    assert after_first[: len(closing)] == closing and rollout.loss_mask[n : n + len(closing)] == [0] * len(closing)
    assert rollout.meta["finish_reasons"] == ["length", "stop"]
    # a sampled stop token is not doubled: the sequence ends with it, then the newline the template adds
    assert rollout.completion_ids[-2:] == [IM_END, tok("\n", add_special_tokens=False)["input_ids"][0]]
    assert tok.decode(rollout.input_ids).count("<|im_end|>") == render(rollout.trajectory.messages).count("<|im_end|>")


def test_budgets_truncate_with_reward_zero(model) -> None:
    driver, _, _ = hf_driver(model, steps=6, budgets=Budgets(max_messages=3))
    [rollout] = driver.rollouts(["a"])
    assert rollout.truncated and rollout.reward == 0.0 and rollout.meta["truncation"] == "max_messages"
    assert rollout.meta["num_messages"] == 3
    driver, _, _ = hf_driver(model, steps=6, max_new=12, budgets=Budgets(max_total_tokens=60))
    [rollout] = driver.rollouts(["a"])
    assert rollout.truncated and rollout.reward == 0.0 and rollout.meta["truncation"] == "max_total_tokens"
    # sampling never runs past the budget (only the last observation may)
    last_trained = max(i for i, m in enumerate(rollout.loss_mask) if m)
    assert len(rollout.prompt_ids) + last_trained + 1 <= 60


def test_same_seed_same_rollouts_other_seed_other_samples(model) -> None:
    def play(seed: int, mode: str = "cached") -> list[Rollout]:
        return hf_driver(model, seed=seed, mode=mode)[0].rollouts(["a", "b"], n=2)

    first, again, other, batched = play(7), play(7), play(8), play(7, "batched")
    assert [r.completion_ids for r in first] == [r.completion_ids for r in again] == [r.completion_ids for r in batched]
    assert [r.completion_ids for r in first] != [r.completion_ids for r in other]
    assert first[0].completion_ids != first[1].completion_ids  # two samples of one group differ
    assert first[0].prompt_ids == first[1].prompt_ids


def test_one_engine_call_per_round_with_every_pending_episode(model) -> None:
    engine = RecordingEngine(HFEngine(model, tokenizer()))
    lengths = {"a": 1, "b": 3, "c": 2}

    def make(task_id: str) -> ScriptEnv:
        return ScriptEnv(task_id, steps=lengths[task_id])

    driver = RolloutDriver(engine, env_factory=make, sampling=SamplingParams(max_new_tokens=4))
    rollouts = driver.rollouts(["a", "b", "c"])
    assert [len(prompts) for prompts, _, _ in engine.calls] == [3, 2, 1]
    assert driver.stats == {"engine_calls": 3, "rounds": 3, "sampled_tokens": sum(sum(r.loss_mask) for r in rollouts)}
    seeds = [p.seed for _, params, _ in engine.calls for p in params]
    assert len(set(seeds)) == len(seeds)


def test_replace_hook_plays_given_text_through_the_same_pipeline(model) -> None:
    tok = tokenizer()
    expert = ['<tool_call>\n{"name": "ls", "arguments": {}}\n</tool_call>', "All done."]
    factory = env_factory(steps=2)
    engine = RecordingEngine(HFEngine(model, tok))
    driver = RolloutDriver(engine, env_factory=factory, sampling=SamplingParams(max_new_tokens=6))
    specs = [
        EpisodeSpec("gt", 0, 0, replace=lambda ctx: expert[ctx.message_index]),
        EpisodeSpec("mix", 1, 0, replace=lambda ctx: expert[0] if ctx.message_index == 0 else None),
        EpisodeSpec("pol", 2, 0),
    ]
    gt, mix, pol = driver.run(specs)
    assert factory.envs["gt"][0].received == expert
    assert gt.source == "ground_truth" and mix.source == "mixed" and pol.source == "policy"
    ids = [tok(text, add_special_tokens=False)["input_ids"] + [IM_END] for text in expert]
    check_sequence(gt, ids, sampled=False)
    assert gt.meta["replaced_spans"][0] == (0, len(ids[0]))
    assert all(lp == 0.0 for lp in gt.sample_logprobs)
    assert [len(p) for p, _, _ in engine.calls] == [1, 2]  # replaced messages are not sampled


def test_prompt_edit_is_seen_by_the_engine_only(model) -> None:
    hint = "Hint: call ls first."

    def add_hint(messages):
        messages[0]["content"] += "\n" + hint
        return messages

    tok = tokenizer()
    engine = RecordingEngine(HFEngine(model, tok))
    driver = RolloutDriver(engine, env_factory=env_factory(steps=3), sampling=SamplingParams(max_new_tokens=6))
    [hinted, plain] = driver.run([EpisodeSpec("a", 0, 0, prompt_edit=add_hint), EpisodeSpec("a", 0, 1)])
    assert hint not in tok.decode(hinted.input_ids) and hint in tok.decode(hinted.meta["generation_prompt_ids"])
    assert hinted.prompt_ids == plain.prompt_ids
    gen_prompt = hinted.meta["generation_prompt_ids"]
    for prompts, _, _ in engine.calls:
        seen = prompts[0]
        assert hint in tok.decode(seen)
        # the engine continued: hinted prompt + the hint-free completion built so far
        assert seen[: len(gen_prompt)] == gen_prompt
        assert seen[len(gen_prompt) :] == hinted.completion_ids[: len(seen) - len(gen_prompt)]
    check_sequence(hinted, [outs[0].token_ids for _, _, outs in engine.calls])


def test_real_bfcl_episodes_with_the_tiny_model(model) -> None:
    tok = tokenizer()
    engine = HFEngine(model, tok)
    driver = RolloutDriver(
        engine,
        env_factory=default_env_factory("hermes"),
        sampling=SamplingParams(max_new_tokens=8),
        budgets=Budgets(max_total_tokens=2500, max_messages=3),
    )
    rollouts = driver.rollouts(["multi_turn_base_105", "multi_turn_base_132"], n=1)
    for rollout in rollouts:
        assert rollout.trajectory.task_id == rollout.task_id
        first = [{"role": m["role"], "content": m["content"]} for m in rollout.trajectory.messages[:2]]
        assert tok.decode(rollout.prompt_ids) == tok.apply_chat_template(
            first, add_generation_prompt=True, tokenize=False
        )
        assistant = [m for m in rollout.trajectory.messages if m["role"] == "assistant"]
        assert len(assistant) == rollout.meta["num_messages"] <= 3
        assert rollout.reward in (0.0, 1.0)
        assert rollout.truncated == (rollout.meta["truncation"] is not None)


def make_rollout(prompt: int, completion: list[int], seed: int) -> Rollout:
    mask = [(seed + i) % 3 != 0 for i in range(len(completion))]
    return Rollout(
        "t",
        0,
        seed,
        list(range(100, 100 + prompt)),
        completion,
        [int(m) for m in mask],
        [-0.1 * (i + 1) if m else 0.0 for i, m in enumerate(mask)],
        1.0,
        None,
    )  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(1, 6), st.lists(st.integers(3, 90), max_size=12)), min_size=1, max_size=5),
    st.one_of(st.none(), st.integers(7, 20)),
)
def test_to_batch_aligns_masks_and_logprobs_with_input_ids(shapes, max_length) -> None:
    rollouts = [make_rollout(p, c, i) for i, (p, c) in enumerate(shapes)]
    batch = to_batch(rollouts, pad_id=0, max_length=max_length)
    for i, rollout in enumerate(rollouts):
        ids = rollout.input_ids[:max_length] if max_length else rollout.input_ids
        k = len(ids)
        assert batch["input_ids"][i, :k].tolist() == ids
        assert batch["attention_mask"][i].tolist() == [1] * k + [0] * (batch["input_ids"].shape[1] - k)
        mask = ([0] * len(rollout.prompt_ids) + rollout.loss_mask)[:k]
        assert batch["loss_mask"][i, :k].tolist() == mask and batch["loss_mask"][i, k:].sum() == 0
        expected = ([0.0] * len(rollout.prompt_ids) + rollout.sample_logprobs)[:k]
        assert batch["old_logprobs"][i, :k].tolist() == pytest.approx(expected)
        assert bool(batch["truncated"][i]) == (len(rollout.input_ids) > k)


def test_to_batch_truncation_policy() -> None:
    long = make_rollout(5, list(range(3, 20)), 1)
    with pytest.raises(ValueError, match="more than max_length=10"):
        to_batch([long], pad_id=0, max_length=10, truncation="error")
    with pytest.raises(ValueError, match="prompt 5"):
        to_batch([long], pad_id=0, max_length=4)
    with pytest.raises(ValueError, match="unknown truncation"):
        to_batch([long], pad_id=0, truncation="left")


ALPHABET = 'abcdefgh XYZ\n{}":<>/_'


@st.composite
def scripted_message(draw):
    """Ids for one assistant message: ASCII text, canonically tokenised or spelled one
    character per token (a tokenisation a re-encode would merge), maybe a special token
    inside, ending with the stop token or cut by length."""
    tok = tokenizer()
    text = draw(st.text(alphabet=ALPHABET, max_size=12))
    if draw(st.booleans()):
        ids = [tok.convert_tokens_to_ids(tok.tokenize(c)[0]) for c in text]
    else:
        ids = tok(text, add_special_tokens=False)["input_ids"]
    if ids and draw(st.booleans()):
        ids.insert(draw(st.integers(0, len(ids))), 1)  # <|im_start|> inside the message
    stopped = draw(st.booleans())
    return (ids + [IM_END], "stop") if stopped else (ids, "length")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(scripted_message(), min_size=3, max_size=3), min_size=1, max_size=3))
def test_any_scripted_messages_keep_ids_masks_and_rendering(scripts) -> None:
    tok = tokenizer()
    lengths = {f"t{i}": 3 - (i % 2) for i in range(len(scripts))}  # episodes of 3 or 2 messages

    def script(call: int, position: int, prompt: list[int]):
        episode = int(re.search(r"Task t(\d+):", tok.decode(prompt)).group(1))  # positions shift as episodes end
        return scripts[episode][call]

    engine = ScriptedEngine(script)
    driver = RolloutDriver(engine, env_factory=lambda task_id: ScriptEnv(task_id, steps=lengths[task_id]))
    rollouts = driver.rollouts(list(lengths))
    for i, rollout in enumerate(rollouts):
        messages = [ids for ids, _ in scripts[i][: lengths[rollout.task_id]]]
        trained = [t for t, m in zip(rollout.completion_ids, rollout.loss_mask) if m]
        assert trained == [t for ids in messages for t in ids]
        assert sum(rollout.loss_mask) == sum(len(ids) for ids in messages)
        conversation, k = [], 0
        for message in rollout.trajectory.messages:
            message = {"role": "user" if message["role"] == "tool" else message["role"], "content": message["content"]}
            if message["role"] == "assistant":
                ids = messages[k]
                assert message["content"] == tok.decode(ids, skip_special_tokens=True)
                message["content"] = tok.decode(ids[:-1] if ids and ids[-1] == IM_END else ids)
                k += 1
            conversation.append(message)
        assert tok.decode(rollout.input_ids) == render(conversation)


@pytest.mark.slow
def test_smollm2_rollouts_with_the_hf_engine() -> None:
    """The embedded model on real BFCL episodes: it ends its messages with <|im_end|>, the
    sampling log-probs equal a forward pass over the finished sequence at the sampling
    temperature (token-in/token-out end to end), and the decoded sequence is the conversation."""
    from transformers import AutoModelForCausalLM

    from toolenv.inference.smollm2 import ensure_smollm2

    torch.set_num_threads(1)
    tok = tokenizer()
    model = AutoModelForCausalLM.from_pretrained(ensure_smollm2(), dtype=torch.float32)
    model.train(False)
    driver = RolloutDriver(
        HFEngine(model, tok),
        env_factory=default_env_factory("hermes"),
        sampling=SamplingParams(max_new_tokens=48, temperature=0.7),
        budgets=Budgets(max_total_tokens=4096, max_messages=3),
        seed=0,
    )
    rollouts = driver.rollouts(["multi_turn_base_105", "multi_turn_base_132"], n=2)
    # on a short chat it ends its message with the sampled <|im_end|>, which the engine keeps
    short = tok(
        tok.apply_chat_template(
            [{"role": "user", "content": "Say hello."}], add_generation_prompt=True, tokenize=False
        ),
        add_special_tokens=False,
    )["input_ids"]
    [hello] = driver.engine.generate([short], SamplingParams(max_new_tokens=64, temperature=0))
    assert hello.finish_reason == "stop" and hello.token_ids[-1] == IM_END
    for rollout in rollouts:
        assert rollout.reward in (0.0, 1.0) and sum(rollout.loss_mask) > 0
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([rollout.input_ids])).logits[0].float()
        logp = torch.log_softmax(logits[:-1] / 0.7, -1).gather(1, torch.tensor(rollout.input_ids[1:])[:, None])[:, 0]
        start = len(rollout.prompt_ids)
        mask = torch.tensor(rollout.loss_mask, dtype=torch.bool)
        recomputed = logp[start - 1 :][mask]
        assert torch.allclose(recomputed, torch.tensor(rollout.sample_logprobs)[mask], atol=2e-3)
        assert len([m for m in rollout.trajectory.messages if m["role"] == "assistant"]) == rollout.meta["num_messages"]


def test_tools_through_a_template_that_renders_them() -> None:
    """With a Qwen2.5-style template (trl's, same special tokens as SmolLM2) and
    ``tools_via_template``, the template writes the tool prompt from ``tools=``, tool results
    keep their role (rendered the template's way) and the sequence still decodes to the
    template of the whole conversation."""
    trl = pytest.importorskip("trl")
    from pathlib import Path

    template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    tok = copy.copy(tokenizer())
    tok.chat_template = template
    call = tok('<tool_call>\n{"name": "get_watchlist", "arguments": {}}\n</tool_call>', add_special_tokens=False)[
        "input_ids"
    ] + [IM_END]
    reply = tok("Please log in first.", add_special_tokens=False)["input_ids"] + [IM_END]
    engine = ScriptedEngine(lambda n, position, prompt: (call, "stop") if n == 0 else (reply, "stop"))
    engine.tokenizer = tok
    driver = RolloutDriver(
        engine, env_factory=default_env_factory("hermes"), tools_via_template=True, budgets=Budgets(max_messages=2)
    )
    [rollout] = driver.rollouts(["multi_turn_base_105"])
    recorded = rollout.trajectory.messages  # the env's record (its own system prompt first)
    prompt = tok.decode(rollout.prompt_ids)
    assert "<tools>" in prompt and '"name": "get_watchlist"' in prompt
    assert "Keep calling functions until" not in prompt  # the call format's system prompt is not used
    conversation = [{"role": m["role"], "content": m["content"]} for m in recorded[1:]]
    from toolenv.env import BFCLEnv

    env = BFCLEnv(task_ids=["multi_turn_base_105"], observation_mode="messages")
    _, info = env.reset(options={"task_id": "multi_turn_base_105"})
    expected = tok.apply_chat_template(conversation, tools=info["tools"], tokenize=False)
    assert tok.decode(rollout.input_ids) == expected
    assert "<|im_start|>user\n<tool_response>" in tok.decode(rollout.completion_ids)
    check_sequence(rollout, [call, reply], sampled=False)


#: a Qwen3-style template (written for this test): ChatML, tool results inside a user turn, and
#: the reasoning of assistant messages before the last user message dropped when rendered
THINK_DROPPING_TEMPLATE = (
    "{%- set ns = namespace(last=-1) %}"
    "{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last = loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}"
    "{%- set content = m.content %}"
    "{%- if loop.index0 < ns.last and '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}"
    "{%- elif m.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + m.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def test_a_template_that_drops_earlier_reasoning_gets_the_prefix_preserving_rendering() -> None:
    """Qwen3's template renders a later turn without the earlier ``<think>`` blocks, so the
    conversation is not prefix-stable. The rollout then renders each observation after a fixed
    context: the sequence is every sampled message verbatim (reasoning kept) and every
    observation as the template writes it, which is the conversation rendered by the same
    template with the reasoning kept (the dropping disabled), as TRL's training templates do."""
    from toolenv.inference.template import ChatRenderer

    tok = copy.copy(tokenizer())
    tok.chat_template = THINK_DROPPING_TEMPLATE
    assert ChatRenderer(tok).prefix_preserving() and not ChatRenderer(tokenizer()).prefix_preserving()
    thought = tok("<think>\nlook first\n</think>\n\nchecking", add_special_tokens=False)["input_ids"] + [IM_END]
    engine = ScriptedEngine(lambda n, position, prompt: (thought, "stop"))
    engine.tokenizer = tok
    driver = RolloutDriver(engine, env_factory=env_factory(steps=4))
    [rollout] = driver.rollouts(["a"])
    keeping = copy.copy(tok)
    keeping.chat_template = THINK_DROPPING_TEMPLATE.replace("loop.index0 < ns.last and ", "false and ")
    conversation = [{"role": m["role"], "content": m["content"]} for m in rollout.trajectory.messages]
    for message in conversation:
        if message["role"] == "assistant":
            message["content"] = tok.decode(thought[:-1], skip_special_tokens=False)
    text = tok.decode(rollout.input_ids, skip_special_tokens=False)
    assert text == keeping.apply_chat_template(conversation, tokenize=False)
    assert text.count("<think>") == 4  # every message's reasoning is in the training sequence
    assert tok.apply_chat_template(conversation, tokenize=False).count("<think>") < 4  # the template drops them
    check_sequence(rollout, [thought] * 4, sampled=False)
