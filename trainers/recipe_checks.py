"""Recipe checks that refuse nonsense budgets before training spends hours on them.

Why: the old CPU study trained SFT with ``[sft] max_length = 768`` while its prompts were
2–5k tokens; left truncation (trainers/sft.py ``_to_sample``) keeps the *end* of a sequence, so
every sample lost its system prompt (the tool list) and the run learned calls without tools.
Its ``[rollout] max_new_tokens`` also cut about 10% of the ground-truth assistant messages, so
a correct answer could not even be written out. These checks measure, with the run's own
tokenizer and tokenisation paths, how many samples / prompts / messages exceed each budget,
and refuse (one-line ``ValueError`` naming the file, the key, the share and the fix) when the
share is above what the config allows (``[sft] max_truncated_share``,
``[rollout] max_long_prompt_share``, ``[rollout] max_cut_share``); an allowed non-zero share
is reported with a one-line warning.

Compute, too: ``[model] autocast_bf16`` on a CPU that has no bf16 instructions is emulated
(:func:`check_cpu_bf16` warns in one line). On the 2-core AVX2-only EPYC build machine of
2026-12-03, a SmolLM2-135M forward + backward of 1,100 tokens took 306 s under bf16 autocast
and 16.9 s in fp32; on the AVX-512 BF16 machine of the sittings before, bf16 was the faster.

One mechanism: SFT lengths come from :func:`trainers.sft.build_samples`' own tokenisation,
first prompts from :class:`trainers.rollout.RolloutDriver`'s episode start, ground-truth
messages from :func:`trainers.tokenize.assistant_ids` (what both SFT and rollouts train).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from toolenv.inference.template import end_of_message_id
from trainers.tokenize import assistant_ids


@dataclass
class LengthReport:
    """How many of ``total`` measured sequences are longer than ``budget``."""

    what: str  # "SFT samples", "first rollout prompts", "ground-truth assistant messages"
    total: int
    over: int
    longest: int
    budget: int

    @property
    def share(self) -> float:
        return self.over / self.total if self.total else 0.0


def sft_lengths(tokenizer: Any, conversations: Sequence[Sequence[dict[str, Any]]], mode: str) -> list[int]:
    """Lengths of the SFT sequences :func:`trainers.sft.build_samples` makes before truncation."""
    from trainers.sft import sample_parts

    return [len(part.input_ids) for messages in conversations for part in sample_parts(tokenizer, messages, mode)]


def first_prompt_lengths(tokenizer: Any, task_ids: Sequence[str], call_format: str) -> list[int]:
    """Lengths of each task's first rollout prompt, built by the rollout driver's own episode
    start (environment reset, first messages, template), so the check cannot drift from it."""
    from trainers.rollout import RolloutDriver, default_env_factory

    driver = RolloutDriver(None, tokenizer, default_env_factory(call_format))  # type: ignore[arg-type]
    return [len(driver.first_prompt_ids(task_id)) for task_id in task_ids]


def message_lengths(tokenizer: Any, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[int]:
    """Tokens of each ground-truth assistant message as sampled: content + end-of-turn."""
    eot = end_of_message_id(tokenizer)
    return [
        len(assistant_ids(tokenizer, m.get("content") or "", eot))
        for messages in conversations
        for m in messages
        if m["role"] == "assistant"
    ]


def report(what: str, lengths: Sequence[int], budget: int) -> LengthReport:
    return LengthReport(what, len(lengths), sum(n > budget for n in lengths), max(lengths, default=0), budget)


def check(result: LengthReport, allowed: float, where: str, key: str, share_key: str) -> None:
    """Refuse when more than ``allowed`` of the measured sequences exceed the budget ``key``;
    warn (one line) when some do but within ``allowed``."""
    if not result.over:
        return
    line = (
        f"{where}: {result.over}/{result.total} {result.what} ({result.share:.1%}) are longer than "
        f"{key} = {result.budget} (longest {result.longest})"
    )
    if result.share > allowed:
        raise ValueError(f"{line}; raise {key} to {result.longest} (or allow it with {share_key} ≥ {result.share:.3f})")
    warnings.warn(f"{line}; within {share_key} = {allowed:g}", stacklevel=2)


def check_sft(tokenizer: Any, conversations: Sequence[Sequence[dict[str, Any]]], config: Any) -> LengthReport:
    """SFT: samples longer than ``[sft] max_length`` lose their start (the system prompt)."""
    result = report("SFT samples", sft_lengths(tokenizer, conversations, config.sft.samples), config.sft.max_length)
    check(
        result,
        config.sft.max_truncated_share,
        config.source or "config",
        "[sft] max_length",
        "[sft] max_truncated_share",
    )
    return result


def check_rollout(
    tokenizer: Any, tasks: Sequence[Any], conversations: Sequence[Sequence[dict[str, Any]]], config: Any
) -> tuple[LengthReport, LengthReport]:
    """GRPO: first prompts vs ``[rollout] max_prompt_tokens`` and ground-truth assistant
    messages vs ``[rollout] max_new_tokens``."""
    where = config.source or "config"
    rollout = config.rollout
    prompts = report(
        "first rollout prompts",
        first_prompt_lengths(tokenizer, [t.id for t in tasks], config.data.call_format),
        rollout.max_prompt_tokens,
    )
    check(
        prompts, rollout.max_long_prompt_share, where, "[rollout] max_prompt_tokens", "[rollout] max_long_prompt_share"
    )
    messages = report(
        "ground-truth assistant messages", message_lengths(tokenizer, conversations), rollout.max_new_tokens
    )
    check(messages, rollout.max_cut_share, where, "[rollout] max_new_tokens", "[rollout] max_cut_share")
    return prompts, messages


#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic: x86 AVX-512 BF16 and AMX, Arm BF16
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``); None where unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def check_cpu_bf16(config: Any, flags: set[str] | None = None) -> None:
    """Warn (one line) when bf16 autocast would run on a CPU without native bf16 (``flags``:
    the CPU's, read from ``/proc/cpuinfo`` when not given; unknown flags give no warning)."""
    flags = cpu_flags() if flags is None else flags
    if flags is None or flags & set(NATIVE_BF16_FLAGS):
        return
    warnings.warn(
        f"{config.source or 'config'}: [model] autocast_bf16 = true on a CPU without bf16 instructions "
        f"(none of {', '.join(NATIVE_BF16_FLAGS)} in /proc/cpuinfo): bf16 is emulated, and a training "
        "step can take 18x longer than in fp32; set autocast_bf16 = false on this machine",
        stacklevel=2,
    )
