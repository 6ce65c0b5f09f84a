"""Shared pieces of the rollout and engine tests: a tiny random Qwen2 (built from a config, no
download; tokenizer = SmolLM2's), a scripted chat environment, and engine doubles that record
what the driver asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

from toolenv.inference.types import Generation, SamplingParams


@lru_cache(maxsize=1)
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from toolenv.inference.smollm2 import ensure_smollm2

    return AutoTokenizer.from_pretrained(ensure_smollm2())


def tiny_qwen(seed: int = 0) -> Any:
    """A 2-layer random Qwen2 with SmolLM2's vocabulary (3.2 M parameters, built in ~0.1 s)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.set_num_threads(1)
    tok = tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.train(False)
    return model


@dataclass
class _Trajectory:
    messages: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


class ScriptEnv:
    """A chat environment in ``observation_mode="messages"`` style: ``steps`` assistant
    messages per episode; after odd ones a tool result comes back, after even ones a new user
    turn; the last one ends the episode with reward ``reward``."""

    def __init__(self, task_id: str, steps: int = 4, reward: float = 0.5, system: str = "You call tools.") -> None:
        self.task_id = task_id
        self.steps = steps
        self.reward = reward
        self.system = system
        self.received: list[str] = []
        self.trajectory = _Trajectory()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        self.received = []
        first = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": f"Task {self.task_id}: do it."},
        ]
        self.trajectory = _Trajectory(list(first))
        return [dict(m) for m in first], {"tools": []}

    def step(self, action: str) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        self.received.append(action)
        self.trajectory.messages.append({"role": "assistant", "content": action})
        k = len(self.received)
        if k >= self.steps:
            return [], self.reward, True, False, {}
        new = (
            [{"role": "tool", "name": "f", "content": f"result {k} of {self.task_id}"}]
            if k % 2
            else [{"role": "user", "content": f"Next request {k}."}]
        )
        self.trajectory.messages.extend(new)
        return new, 0.0, False, False, {}


class RecordingEngine:
    """Wraps an engine and records every call's prompts, settings and outputs."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.stop_ids = engine.stop_ids
        self.calls: list[tuple[list[list[int]], list[SamplingParams], list[Generation]]] = []

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Any) -> list[Generation]:
        out = self.engine.generate(prompts, sampling)
        params = list(sampling) if not isinstance(sampling, SamplingParams) else [sampling] * len(prompts)
        self.calls.append(([list(p) for p in prompts], params, out))
        return out

    def sync_weights(self, model: Any) -> None:
        self.engine.sync_weights(model)


class ScriptedEngine:
    """Returns scripted id lists: ``script(call_index, position, prompt) -> (ids, finish)``."""

    def __init__(self, script: Any, stop_ids: Sequence[int] = (2,)) -> None:
        self.tokenizer = tokenizer()
        self.stop_ids = list(stop_ids)
        self.script = script
        self.n = 0

    def generate(self, prompts: Sequence[Sequence[int]], sampling: Any) -> list[Generation]:
        out = []
        for position, prompt in enumerate(prompts):
            ids, finish = self.script(self.n, position, list(prompt))
            out.append(Generation(list(ids), [-0.5] * len(ids), finish))
        self.n += 1
        return out

    def sync_weights(self, model: Any) -> None:  # nothing to sync
        pass
