"""The verl adapter (issue #16 item 4): the agent loop ``toolenv_bfcl`` against a fake server.

The fake server manager answers ``generate(request_id=..., prompt_ids=..., sampling_params=...)``
with scripted ids: the ground-truth calls in the hermes format, tokenised with SmolLM2's
tokenizer, each message ending in ``<|im_end|>``. The episode (verl-free) then scores 1.0, its
sampled ids are exactly the scripted ones under mask 1, every other response token has mask 0,
and it equals toolenv's own rollout of the same episode. With verl importable (``--no-deps``
plus its agent-loop imports; see ``docs/verl.md``), the registered ``AgentLoopBase`` subclass is
built as verl's worker builds it and returns verl's own ``AgentLoopOutput``.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from integrations.verifiers.episode import oracle_replies
from integrations.verl.dataset import AGENT_NAME, task_id_of, verl_rows
from integrations.verl.episode import play_episode
from tests.tiny_model import smollm2_tokenizer
from toolenv.data import get_task
from toolenv.inference.template import ChatRenderer, end_of_message_id
from toolenv.inference.types import Generation
from trainers.rollout import Budgets, EpisodeSpec, RolloutDriver

BASE = "multi_turn_base_0"
MISS_FUNC = "multi_turn_miss_func_3"
PROMPT_LENGTH, RESPONSE_LENGTH = 8192, 8192


def scripted_ids(task_id: str, tokenizer: Any) -> list[list[int]]:
    """The oracle's assistant messages as the ids a server would sample."""
    renderer, eom = ChatRenderer(tokenizer), end_of_message_id(tokenizer)
    return [renderer.encode(text) + [eom] for text in oracle_replies(get_task(task_id))]


class FakeServerManager:
    """verl's server manager, scripted: the n-th request of a ``request_id`` gets the n-th
    scripted message of the task that request's first prompt belongs to (so concurrent
    episodes each get their own script); records every request."""

    def __init__(self, scripts: dict[tuple[int, ...], list[list[int]]], output_cls: Any = None) -> None:
        self.scripts = scripts
        self.output_cls = output_cls or (lambda **kw: SimpleNamespace(**kw))
        self.sessions: dict[str, tuple[list[list[int]], int]] = {}
        self.requests: list[dict[str, Any]] = []

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any):
        self.requests.append({"request_id": request_id, "prompt_ids": list(prompt_ids), "sampling": sampling_params})
        if request_id not in self.sessions:
            (script,) = [s for prompt, s in self.scripts.items() if tuple(prompt_ids) == prompt]
            self.sessions[request_id] = (script, 0)
        script, n = self.sessions[request_id]
        self.sessions[request_id] = (script, n + 1)
        await asyncio.sleep(0)
        ids = script[n]
        return self.output_cls(token_ids=ids, log_probs=[-0.5] * len(ids))


def first_prompt(task_id: str, tokenizer: Any) -> tuple[int, ...]:
    return tuple(toolenv_rollout(task_id, tokenizer).prompt_ids)


class ScriptEngine:
    """A toolenv token engine replaying the same script (toolenv's own rollout, for comparison)."""

    def __init__(self, tokenizer: Any, script: list[list[int]]) -> None:
        self.tokenizer, self.script = tokenizer, list(script)

    def generate(self, prompts: Any, sampling: Any) -> list[Generation]:
        ids = self.script.pop(0)
        return [Generation(ids, [-0.5] * len(ids), "stop")]


def toolenv_rollout(task_id: str, tokenizer: Any) -> Any:
    engine = ScriptEngine(tokenizer, scripted_ids(task_id, tokenizer))
    driver = RolloutDriver(engine, tokenizer, budgets=Budgets(PROMPT_LENGTH + RESPONSE_LENGTH, 32))
    return driver.run([EpisodeSpec(task_id)])[0]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return smollm2_tokenizer()


def spans(mask: list[int]) -> list[tuple[int, int, int]]:
    """(value, start, end) runs of ``mask``."""
    runs, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            runs.append((mask[start], start, i))
            start = i
    return runs


def check_episode(output: Any, task_id: str, tokenizer: Any) -> None:
    """Reward 1.0, mask 1 exactly on the scripted ids, the same sequence as toolenv's rollout."""
    script = scripted_ids(task_id, tokenizer)
    assert output.reward_score == 1.0
    response, mask = list(output.response_ids), list(output.response_mask)
    assert len(response) == len(mask) == len(output.response_logprobs)
    sampled = [response[a:b] for value, a, b in spans(mask) if value == 1]
    assert sampled == script  # generated tokens verbatim, each its own run of 1s
    observed = [tokenizer.decode(response[a:b]) for value, a, b in spans(mask) if value == 0]
    assert len(observed) == len(script) - 1 or len(observed) == len(script)
    assert all(lp == 0.0 for lp, m in zip(output.response_logprobs, mask) if m == 0)
    assert all(lp == -0.5 for lp, m in zip(output.response_logprobs, mask) if m == 1)
    reference = toolenv_rollout(task_id, tokenizer)
    assert list(output.prompt_ids) == reference.prompt_ids
    assert response == reference.completion_ids and mask == reference.loss_mask
    assert output.num_turns == len(reference.trajectory.messages)


def play(server: FakeServerManager, task_id: str, tokenizer: Any) -> Any:
    return play_episode(
        server,
        tokenizer,
        task_id,
        {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True},
        response_length=RESPONSE_LENGTH,
        prompt_length=PROMPT_LENGTH,
    )


@pytest.mark.parametrize("task_id", [BASE, MISS_FUNC])
def test_the_episode_plays_the_oracle_token_in_token_out(task_id: str, tokenizer: Any) -> None:
    server = FakeServerManager({first_prompt(task_id, tokenizer): scripted_ids(task_id, tokenizer)})
    output = asyncio.run(play(server, task_id, tokenizer))
    check_episode(output, task_id, tokenizer)
    # token-in: each request is the prompt plus the response so far; one sticky request id
    assert len({r["request_id"] for r in server.requests}) == 1
    for request in server.requests:
        n = len(request["prompt_ids"]) - len(output.prompt_ids)
        assert request["prompt_ids"] == list(output.prompt_ids) + list(output.response_ids[:n])
        assert request["sampling"]["temperature"] == 1.0 and request["sampling"]["max_tokens"] > 0


def test_concurrent_episodes_of_one_task_share_no_state(tokenizer: Any) -> None:
    server = FakeServerManager({first_prompt(BASE, tokenizer): scripted_ids(BASE, tokenizer)})

    async def group() -> list[Any]:
        return await asyncio.gather(*(play(server, BASE, tokenizer) for _ in range(4)))

    outputs = asyncio.run(group())
    assert len({r["request_id"] for r in server.requests}) == 4
    for output in outputs:
        check_episode(output, BASE, tokenizer)


def test_a_response_cut_at_response_length_scores_0(tokenizer: Any) -> None:
    server = FakeServerManager({first_prompt(BASE, tokenizer): scripted_ids(BASE, tokenizer)})
    output = asyncio.run(play_episode(server, tokenizer, BASE, {}, response_length=40, prompt_length=PROMPT_LENGTH))
    assert output.reward_score == 0.0 and len(output.response_ids) <= 40
    assert output.extra_fields["toolenv_truncation"] in ("response_length", "max_total_tokens")


def test_dataset_rows_name_the_agent_loop_and_the_task() -> None:
    rows = verl_rows(["base"], split="train", limit=2)
    assert [row["agent_name"] for row in rows] == [AGENT_NAME] * 2
    assert rows[0]["prompt"][0]["role"] == "system" and rows[0]["prompt"][1]["role"] == "user"
    assert task_id_of(rows[1]) == rows[1]["extra_info"]["task_id"]
    with pytest.raises(ValueError, match="extra_info.task_id"):
        task_id_of({"extra_info": {}})


# -- against verl 0.9.1 itself ----------------------------------------------------------------


@pytest.fixture(scope="module")
def verl() -> Any:
    return pytest.importorskip(
        "verl.experimental.agent_loop.agent_loop", reason="needs verl 0.9.1 (pip install --no-deps; docs/verl.md)"
    )


def build_loop(verl: Any, tokenizer: Any, server: Any) -> Any:
    """The agent loop as verl's worker builds it: the registry entry, hydra's instantiate, the
    keyword arguments ``AgentLoopWorker._run_agent_loop`` passes."""
    import hydra
    from omegaconf import OmegaConf

    import integrations.verl.agent_loop  # noqa: F401  (registers toolenv_bfcl)

    config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {
                    "prompt_length": PROMPT_LENGTH,
                    "response_length": RESPONSE_LENGTH,
                    "multi_turn": {"max_assistant_turns": 32},
                }
            },
            "data": {},
        }
    )
    return hydra.utils.instantiate(
        config=verl._agent_loop_registry[AGENT_NAME],
        trainer_config=verl.DictConfigWrap(config=config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        hf_model_type=None,
        dataset_cls=object,
        data_config=verl.DictConfigWrap(config.data),
        tools=verl.ToolListWrap([]),
    )


def test_the_registered_agent_loop_returns_verls_output(verl: Any, tokenizer: Any) -> None:
    from verl.workers.rollout.replica import TokenOutput

    import integrations.verl.agent_loop  # noqa: F401  (registers toolenv_bfcl)

    assert verl._agent_loop_registry[AGENT_NAME] == {"_target_": "integrations.verl.agent_loop.BFCLAgentLoop"}
    server = FakeServerManager({first_prompt(BASE, tokenizer): scripted_ids(BASE, tokenizer)}, TokenOutput)
    loop = build_loop(verl, tokenizer, server)
    assert isinstance(loop, verl.AgentLoopBase)
    (row,) = verl_rows(task_ids=[BASE], split="all")
    sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
    output = asyncio.run(loop.run(sampling, raw_prompt=row["prompt"], **row))
    assert type(output) is verl.AgentLoopOutput
    check_episode(output, BASE, tokenizer)
    assert isinstance(output.metrics, verl.AgentLoopMetrics)
    assert output.extra_fields["toolenv_task_id"] == BASE
    tensors = output.as_dict()  # what verl's postprocessing reads
    assert tensors["response_mask"].tolist() == list(output.response_mask)
    assert tensors["rm_scores"][-1].item() == 1.0 and tensors["rm_scores"][:-1].abs().sum().item() == 0.0
