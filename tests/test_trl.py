"""The TRL adapters (integrations/trl): GRPOTrainer steps through the rollout_func equal the
trainer's own rollouts of the same episodes, the environment_factory plays oracle episodes to
reward 1.0 as TRL's tool loop calls it, its tool schemas are the BFCL schemas, and bad input is
one line."""

from __future__ import annotations

import copy
import inspect
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("trl")
pytest.importorskip("torch")
pytest.importorskip("datasets")

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from integrations.trl import (  # noqa: E402
    BFCLRollout,
    bfcl_dataset,
    bfcl_environment,
    bfcl_environments,
    bfcl_reward,
    fits_tool_loop,
    task_id_of,
)
from integrations.trl.environment import tool_method  # noqa: E402
from integrations.trl.rollout import DEFAULT_BUDGETS, call_seed  # noqa: E402
from tests.tiny_model import smollm2_tokenizer, tiny_qwen2  # noqa: E402
from toolenv.data import get_task, load_tasks  # noqa: E402
from toolenv.formats import tool_specs  # noqa: E402
from toolenv.inference.hf_engine import HFEngine  # noqa: E402
from toolenv.inference.types import SamplingParams  # noqa: E402
from trainers.rollout import EpisodeSpec, RolloutDriver, default_env_factory  # noqa: E402

#: a two-turn task with the shortest prompt (TradingBot only: 2,311 tokens with SmolLM2's template)
TASK = "multi_turn_base_105"
SINGLE_TURN = ("multi_turn_base_46", "multi_turn_base_50", "multi_turn_base_198")
GREEDY = SamplingParams(max_new_tokens=6, temperature=0.0)


class RecordingRollout(BFCLRollout):
    """Keeps, per call, a copy of the policy as it was when the episodes were played. The
    weights go into a fresh model: a deepcopy of TRL's model would keep TRL's patched
    ``forward``, whose closure calls the live model."""

    def __call__(self, prompts, trainer):  # type: ignore[override]
        policy = tiny_qwen2(0, smollm2_tokenizer())
        policy.load_state_dict(copy.deepcopy(trainer.accelerator.unwrap_model(trainer.model).state_dict()))
        out = super().__call__(prompts, trainer)
        self.records.append((policy, list(prompts), out))
        return out


def grpo_args(tmp_path: Path, **overrides):
    from trl import GRPOConfig

    settings = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        max_steps=2,
        per_device_train_batch_size=2,
        num_generations=2,
        learning_rate=1e-2,
        # greedy samples of one prompt are equal (zero advantage): the entropy bonus makes the
        # step move the weights, so step 2 plays with an updated policy
        entropy_coef=0.01,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def test_two_grpo_steps_equal_toolenv_rollouts(tmp_path: Path) -> None:
    """Two GRPOTrainer steps through the rollout_func; each step's prompt ids, completion ids,
    env mask, log-probs and reward equal RolloutDriver + HFEngine on the same policy (greedy)."""
    from trl import GRPOTrainer

    tokenizer = smollm2_tokenizer()
    rollout = RecordingRollout(sampling=GREEDY)
    rollout.records = []
    trainer = GRPOTrainer(
        model=tiny_qwen2(0, tokenizer),
        reward_funcs=bfcl_reward,
        args=grpo_args(tmp_path),
        train_dataset=bfcl_dataset(task_ids=[TASK]),
        processing_class=tokenizer,
        rollout_func=rollout,
    )
    trainer.train()
    assert trainer.state.global_step == 2 and len(rollout.records) == 2
    assert [log["rewards/bfcl_reward/mean"] for log in trainer.state.log_history if "loss" in log] == [0.0, 0.0]
    (first, *_), (second, *_) = rollout.records
    assert any((a != b).any() for a, b in zip(first.parameters(), second.parameters()))  # step 1 trained
    for policy, prompts, out in rollout.records:
        assert [task_id_of(p) for p in prompts] == [TASK, TASK]
        driver = RolloutDriver(
            HFEngine(policy, tokenizer), tokenizer, default_env_factory("hermes"), GREEDY, DEFAULT_BUDGETS
        )
        expected = driver.run([EpisodeSpec(TASK, group=i) for i in range(2)])
        assert out["prompt_ids"] == [r.prompt_ids for r in expected]
        assert out["completion_ids"] == [r.completion_ids for r in expected]
        assert out["env_mask"] == [r.loss_mask for r in expected]
        for got, want in zip(out["logprobs"], expected):
            assert got == pytest.approx(want.sample_logprobs, abs=1e-5)
        assert out["toolenv_reward"] == [r.reward for r in expected]
        for rollout_record, mask in zip(expected, out["env_mask"]):
            # both user turns were played: two sampled messages, observation tokens between
            assert rollout_record.meta["num_messages"] == 2 and 0 in mask and 1 in mask
            assert len(rollout_record.trajectory.turns) == 2


def test_sampled_rollout_reproduces_with_its_seeds() -> None:
    """Under sampling, the rollout_func's episodes are the driver's with the seed of that call
    and one group per prompt (so the samples of one task differ and each is reproducible)."""
    tokenizer = smollm2_tokenizer()
    model = tiny_qwen2(1, tokenizer)
    trainer = fake_trainer(model, tokenizer, temperature=1.0)
    rollout = BFCLRollout(max_new_tokens=5)
    out = rollout([[{"role": "user", "content": "", "task_id": TASK}]] * 2, trainer)
    sampling = SamplingParams(max_new_tokens=5, temperature=1.0)
    driver = RolloutDriver(
        HFEngine(model, tokenizer), tokenizer, default_env_factory("hermes"), sampling, seed=call_seed(0, 0)
    )
    expected = driver.run([EpisodeSpec(TASK, group=i) for i in range(2)])
    assert out["completion_ids"] == [r.completion_ids for r in expected]
    assert out["completion_ids"][0] != out["completion_ids"][1]


def fake_trainer(model, tokenizer, temperature: float = 1.0, use_vllm: bool = False) -> SimpleNamespace:
    """What BFCLRollout reads of a GRPOTrainer (a real Accelerator, no training)."""
    from accelerate import Accelerator

    args = SimpleNamespace(seed=0, ds3_gather_for_generation=True, gradient_checkpointing_kwargs=None)
    return SimpleNamespace(
        model=model,
        model_wrapped=model,
        accelerator=Accelerator(cpu=True),
        processing_class=tokenizer,
        args=args,
        temperature=temperature,
        top_p=1.0,
        top_k=0,
        use_vllm=use_vllm,
    )


# -- environment_factory -----------------------------------------------------------------------


def trl_tools(instance) -> dict:
    """The tool dict TRL builds for an environment instance (GRPOTrainer, 1.16)."""
    return {
        name: getattr(instance, name)
        for name, _ in inspect.getmembers(type(instance), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    }


@pytest.mark.parametrize("task_id", SINGLE_TURN + ("multi_turn_long_context_50",))
def test_environment_plays_oracle_to_reward_one(task_id: str) -> None:
    """TRL's loop, by hand: reset(**row), each ground-truth call as method(**arguments) from
    TRL's tool dict, get_reward(): 1.0, and the calls ran on BFCLEnv (trajectory recorded)."""
    row = next(r for r in bfcl_dataset(task_ids=[task_id]))
    environment = bfcl_environment(task_id)()
    assert environment.reset(**row) == ""  # the row's prompt already holds the first turn
    tools = trl_tools(environment)
    assert set(tools) == {doc["name"] for doc in get_task(task_id).tool_docs()}
    for call in get_task(task_id).ground_truth_calls[0]:
        result = tools[call.name](**call.kwargs)
        assert isinstance(result, str) and not result.startswith("Error")
    assert environment.get_reward() == 1.0 and environment.get_reward() == 1.0
    assert environment.info["verdict"]["passed"]
    steps = environment.episode.trajectory.turns[0].steps
    assert len(steps) == len(get_task(task_id).ground_truth_calls[0]) + 1  # one step per call, then the reply


def test_trl_tool_loop_plays_the_environment_to_reward_one(tmp_path: Path) -> None:
    """GRPOTrainer(environment_factory=...) end to end: TRL probes the class, renders its 22
    tools with Qwen2.5's template (on SmolLM2's ChatML vocabulary), resets one instance per
    rollout, parses the tool calls and runs the methods, and scores with get_reward. The policy
    is scripted (TRL's generation step replaced) to answer with the ground-truth calls, then
    "Done.": reward 1.0 for each rollout."""
    import json

    import trl
    from trl import GRPOTrainer

    tokenizer = copy.deepcopy(smollm2_tokenizer())
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    task = get_task("multi_turn_base_50")
    cls = bfcl_environment(task.id)
    instances: list = []

    def factory():
        instances.append(cls())
        return instances[-1]

    trainer = GRPOTrainer(
        model=tiny_qwen2(0, tokenizer),
        args=grpo_args(tmp_path, max_steps=1, max_completion_length=256, entropy_coef=0.0),
        train_dataset=bfcl_dataset(task_ids=[task.id]),
        processing_class=tokenizer,
        environment_factory=factory,
    )
    assert trainer.reward_func_names == [cls.__name__] and len(trainer._env_tools[None]) == 22
    calls = "\n".join(
        "<tool_call>\n" + json.dumps({"name": c.name, "arguments": c.kwargs}) + "\n</tool_call>"
        for c in task.ground_truth_calls[0]
    )

    def scripted(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        replies = ["Done." if "<tool_response>" in tokenizer.decode(ids) else calls for ids in prompt_ids]
        out = [tokenizer.encode(reply, add_special_tokens=False) + [tokenizer.eos_token_id] for reply in replies]
        return out, [[0.0] * len(ids) for ids in out]

    trainer._generate_single_turn = scripted  # TRL 1.16's one generation step (pinned version)
    trainer.train()
    log = trainer.state.log_history[0]
    assert log[f"rewards/{cls.__name__}/mean"] == 1.0 and log["tools/call_frequency"] == 2.0
    played = [e for e in instances if e.episode is not None]
    assert len(played) == 2 and [e.get_reward() for e in played] == [1.0, 1.0]
    assert played[0].episode is not played[1].episode  # one fresh BFCLEnv per rollout


def test_environment_episodes_are_isolated() -> None:
    """Two instances of one task's class (TRL pools one per rollout) and a reset share no
    backend state: the same call gives the same result in each."""
    cls = bfcl_environment("multi_turn_base_46")
    first, second = cls(), cls()
    first.reset(task_id="multi_turn_base_46", prompt=[{"role": "user", "content": ""}])
    second.reset(task_id="multi_turn_base_46", prompt=[{"role": "user", "content": ""}])
    first.cd(folder="Drafts")
    assert "DylanProject.txt" in first.rm(file_name="DylanProject.txt")
    second.cd(folder="Drafts")
    assert "DylanProject.txt" in second.rm(file_name="DylanProject.txt")
    assert second.get_reward() == 0.0 and first.get_reward() == 0.0  # the turn was not finished
    opening = first.reset(prompt=[{"role": "user", "content": ""}])  # TRL without a dataset: the turn text
    assert opening == get_task("multi_turn_base_46").turns[0][0].content
    first.cd(folder="Drafts")
    assert "DylanProject.txt" in first.rm(file_name="DylanProject.txt")  # fresh backends after reset


def test_environment_dict_routes_by_task() -> None:
    dataset = bfcl_dataset(task_ids=list(SINGLE_TURN))
    factories = bfcl_environments(dataset)
    assert list(factories) == list(SINGLE_TURN) == dataset["environment"]
    assert [fits_tool_loop(t) for t in load_tasks()].count(True) == 6


def test_tool_methods_have_the_bfcl_schemas() -> None:
    """What TRL renders (transformers' get_json_schema of each method) is the tool's schema:
    names, types, required parameters, descriptions, for every BFCL tool."""
    from transformers.utils import get_json_schema

    kinds = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "object": "object"}
    seen = set()
    for task in load_tasks():
        for spec in tool_specs(task.tool_docs()):
            if spec.name in seen:
                continue
            seen.add(spec.name)
            want = spec.openai()["function"]
            got = get_json_schema(tool_method(spec))["function"]
            assert got["name"] == want["name"] and got["description"] == " ".join(want["description"].split())
            assert sorted(got["parameters"].get("required", [])) == sorted(want["parameters"].get("required", []))
            assert list(got["parameters"]["properties"]) == list(want["parameters"]["properties"])
            for name, prop in want["parameters"]["properties"].items():
                rendered = got["parameters"]["properties"][name]
                expected = "array" if prop["type"] == "array" else kinds[prop["type"]]
                assert rendered["type"] == expected, (spec.name, name)
                assert rendered["description"].startswith(" ".join(prop["description"].split())[:40])
    assert len(seen) > 100


# -- bad input ---------------------------------------------------------------------------------


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_bad_input_is_one_line() -> None:
    tokenizer = smollm2_tokenizer()
    trainer = fake_trainer(tiny_qwen2(0, tokenizer), tokenizer)
    rollout = BFCLRollout(sampling=GREEDY)
    with pytest.raises(ValueError) as excinfo:
        rollout([[{"role": "user", "content": "hi", "task_id": "multi_turn_base_999"}]], trainer)
    assert "multi_turn_base_999" in one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        rollout([[{"role": "user", "content": "hi"}]], trainer)
    assert "bfcl_dataset" in one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        rollout(["nonsense"], trainer)
    assert "nonsense" in one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        BFCLRollout()([TASK], fake_trainer(None, tokenizer, use_vllm=True))
    assert "use_vllm" in one_line_error(excinfo)
    masking = fake_trainer(None, tokenizer)
    masking.mask_truncated_completions = True
    with pytest.raises(ValueError) as excinfo:
        BFCLRollout()([TASK], masking)
    assert "mask_truncated_completions" in one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        BFCLRollout(call_format="nope")
    one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        bfcl_environment("multi_turn_base_0")
    assert "4 user turns" in one_line_error(excinfo) and "BFCLRollout" in str(excinfo.value)
    with pytest.raises(ValueError) as excinfo:
        bfcl_environments(["multi_turn_base_50", "multi_turn_miss_func_3"])
    assert "multi_turn_miss_func_3" in one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        bfcl_environment("multi_turn_base_4600")
    one_line_error(excinfo)
    environment = bfcl_environment("multi_turn_base_50")()
    with pytest.raises(ValueError) as excinfo:
        environment.reset(task_id="multi_turn_base_46")
    one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        bfcl_reward(["a"])
    one_line_error(excinfo)


def test_dataset_rows() -> None:
    dataset = bfcl_dataset("base", split="train")
    assert len(dataset) == 100 and set(dataset.column_names) == {"task_id", "prompt", "environment"}
    row = dataset[0]
    assert task_id_of(row["prompt"]) == row["task_id"] == row["environment"]
    assert row["prompt"][0]["content"] == get_task(row["task_id"]).turns[0][0].content
