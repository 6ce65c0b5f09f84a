"""A mechanism probe for the control-token collapse (issue #17 item 5): plain policy-gradient
updates on a FIXED batch of rollouts (no generation, so an update takes seconds), switching one
thing at a time, with the paper's logit-gradient split of the control token logged per update.

Why fixed batches: a real GRPO step mixes the effect of the update with the effect of new
samples; on a frozen batch each arm sees exactly the same tokens, so differences between arms
are the loss's doing alone.

The loss (on-policy, ratio = 1, no clip, no KL): per trained position t of rollout b with
sampled token ``y`` and advantage ``A_b`` (:func:`trainers.losses.group_advantages`),
``ℓ = −A_b·log p(y)``, aggregated as

* ``token_mean`` — ``Σ_{b,t} m·ℓ / Σ_{b,t} m`` (the trainer's aggregation, mini-batch wide);
* ``sequence_mean`` — ``(1/B) Σ_b (Σ_t m·ℓ / Σ_t m)``: each rollout weighs the same however long.

So every position carries a weight ``w = A_b·m / D`` (``D`` the aggregation's denominator) and
``loss = −Σ w·log p(y)``. Since ``∂(−log p(y))/∂z_v = p_v − 1[y=v]``, the loss gradient on the
control token's logit ``z_c`` at a position is ``−w·(1[y=c] − p_c)``.

**Sign convention** of the logged split: the *descent direction* on ``z_c``,
``−∂loss/∂z_c``, so a positive number means a gradient-descent step raises c's logit there:

* ``zc_self``  = ``Σ_{y=c} w·(1 − p_c)``: positions that sampled c; positive when A > 0;
* ``zc_other`` = ``−Σ_{y≠c} w·p_c``: positions that sampled another token; ≤ 0 when every
  A ≥ 0, and *positive* from rollouts with A < 0 (a negative advantage pushes every unsampled
  token up, c included, in proportion to p_c); ``zc_other_pos``/``zc_other_neg`` are its parts
  from rollouts with A > 0 and A < 0;
* ``zc_total = zc_self + zc_other = −Σ_t ∂loss/∂z_{t,c}`` over the trained positions (tested
  against autograd).

The control token c is the single id of ``<tool_call>`` when the tokenizer has it as one token
(Qwen), else the first id of its tokenisation (SmolLM2: ``<``, which also begins other text, so
its split is an upper bound on the tag's); rows say which (``control_single_token``).

Also logged per row: ``p_eot_after_opener`` (mean probability of the end-of-turn id at
positions right after a sampled opener, :func:`trainers.monitor.after_opener_positions`: an
empty call), ``p_c_message_start`` (mean p(c) at the first sampled position of each assistant
message), ``mean_p_c`` over trained positions, the loss and the gradient norm.

Rows: one per arm × update index ``k = 0..K``; row ``k`` describes the weights after ``k``
updates, and its loss, split and gradient norm are those of the gradient update ``k+1`` takes
(row K's is computed but not applied).

Arms (:data:`ARMS`) differ from ``baseline`` in one switch each: ``sequence_mean``,
``no_negatives`` (``A ← max(A, 0)``: rollouts with A < 0 contribute nothing, denominators
unchanged), ``mask_control`` (positions whose sampled token is c are dropped from the loss and
from its denominator).

Batches come from a run's ``RUN/rollouts/step_N.jsonl``. The trainer's records carry the ids
it trained on (``prompt_ids``/``completion_ids``/``loss_mask``), used as they are; records
written before they did keep only the conversation, which is then re-tokenised with
:func:`trainers.tokenize.tokenize_conversation` (the rollout layout, but the ids of the
canonical tokenisation, not necessarily the ones the engine sampled).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple, Sequence

import torch

from trainers.batching import collate, pack_by_prefix
from trainers.logprobs import LOGIT_CHUNK_TOKENS, token_logprobs
from trainers.losses import EPSILON, group_advantages
from trainers.monitor import ProbeSpec, after_opener_positions, message_starts
from trainers.tokenize import encode

Aggregation = Literal["token_mean", "sequence_mean"]


class FixedRollout(NamedTuple):
    """One rollout of the fixed batch: full ids (prompt + completion), the trained mask over the
    same ids (prompt 0), its reward and its group (rollouts of one task share it)."""

    ids: list[int]
    loss_mask: list[int]
    reward: float
    group: Any


@dataclass(frozen=True)
class ProbeSwitches:
    """The things an arm switches (see the module docstring)."""

    aggregation: Aggregation = "token_mean"
    negatives: bool = True
    mask_control: bool = False

    def __post_init__(self) -> None:
        if self.aggregation not in ("token_mean", "sequence_mean"):
            raise ValueError(f"unknown aggregation {self.aggregation!r}; valid: token_mean, sequence_mean")


#: baseline and one switch each from it
ARMS: dict[str, ProbeSwitches] = {
    "baseline": ProbeSwitches(),
    "sequence_mean": ProbeSwitches(aggregation="sequence_mean"),
    "no_negatives": ProbeSwitches(negatives=False),
    "mask_control": ProbeSwitches(mask_control=True),
}


@dataclass(frozen=True)
class ControlToken:
    """The probed ids: c, whether c is the whole ``<tool_call>``, the opener and end-of-turn."""

    id: int
    text: str
    single_token: bool
    opener: tuple[int, ...]
    end_of_turn: int

    @classmethod
    def build(cls, tokenizer: Any, call_format: str = "hermes", control_text: str = "<tool_call>") -> "ControlToken":
        """From :class:`trainers.monitor.ProbeSpec` (opener, end-of-turn) and the tokenisation of
        ``control_text`` (c is its first id)."""
        spec = ProbeSpec.build(tokenizer, call_format)
        if spec is None:
            raise ValueError(f"no default probe opener for call format {call_format!r}")
        ids = encode(tokenizer, control_text)
        if not ids:
            raise ValueError(f"{control_text!r} tokenises to nothing")
        return cls(ids[0], control_text, len(ids) == 1, spec.opener, spec.end_of_turn)


# -- the loss's per-position weights ---------------------------------------------------------


def advantages(batch: Sequence[FixedRollout], switches: ProbeSwitches, epsilon: float = EPSILON) -> list[float]:
    """GRPO advantages of the batch, with negatives clipped to 0 when switched off."""
    values = group_advantages([r.reward for r in batch], [r.group for r in batch], epsilon)
    return values if switches.negatives else [max(0.0, a) for a in values]


def trained_mask(rollout: FixedRollout, control_id: int, switches: ProbeSwitches) -> list[int]:
    """The rollout's trained mask over its ids, minus the positions that sampled c when
    ``mask_control`` is on."""
    if not switches.mask_control:
        return list(rollout.loss_mask)
    return [0 if token == control_id else m for token, m in zip(rollout.ids, rollout.loss_mask)]


def position_weights(
    batch: Sequence[FixedRollout], control_id: int, switches: ProbeSwitches, epsilon: float = EPSILON
) -> tuple[list[list[float]], list[float]]:
    """Per rollout, the weight ``w`` of each token (over ``ids``: index i is token i, scored by
    the logits at position i−1) such that ``loss = −Σ w·log p(token)``, and the advantages."""
    adv = advantages(batch, switches, epsilon)
    masks = [trained_mask(r, control_id, switches) for r in batch]
    weights: list[list[float]] = []
    if switches.aggregation == "token_mean":
        total = max(1, sum(sum(m) for m in masks))
        for a, mask in zip(adv, masks):
            weights.append([a * m / total for m in mask])
    else:
        rows = max(1, len(batch))
        for a, mask in zip(adv, masks):
            count = max(1, sum(mask))
            weights.append([a * m / (count * rows) for m in mask])
    return weights, adv


def control_split(
    p_c: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, adv: torch.Tensor, control_id: int
) -> dict[str, float]:
    """The descent-direction split ``−∂loss/∂z_c`` (module docstring) from, per position (any
    one shape for all four), the probability ``p_c`` of c, the sampled target, the loss weight
    and the rollout's advantage (only its sign is used, to split the other part); positions
    with weight 0 contribute nothing."""
    p_c, weights = p_c.double(), weights.double()
    is_c = targets == control_id
    self_part = torch.where(is_c, weights * (1.0 - p_c), torch.zeros_like(p_c))
    other = torch.where(is_c, torch.zeros_like(p_c), -weights * p_c)
    sign = adv.double()
    return {
        "zc_self": float(self_part.sum()),
        "zc_other": float(other.sum()),
        "zc_other_pos": float((other * (sign > 0)).sum()),
        "zc_other_neg": float((other * (sign < 0)).sum()),
        "zc_total": float(self_part.sum() + other.sum()),
    }


# -- one arm ---------------------------------------------------------------------------------


def _first_trained(rollout: FixedRollout) -> int:
    """Index of the rollout's first trained token (its length when none is trained)."""
    return next((j for j, m in enumerate(rollout.loss_mask) if m), len(rollout.ids))


def _forward(
    model: Any,
    batch: Sequence[FixedRollout],
    weights: Sequence[Sequence[float]],
    adv: Sequence[float],
    masks: Sequence[Sequence[int]],
    control: ControlToken,
    pad_id: int,
    micro_batch_tokens: int,
    chunk_tokens: int,
    backward: bool,
) -> dict[str, Any]:
    """One pass over the batch through the chunked :func:`token_logprobs` (micro-batched,
    gradients accumulated when ``backward``): the loss, the split and the probes, at the
    model's current weights. The probabilities come from the same forward whose loss is
    back-propagated, so the split describes exactly the gradient the update takes."""
    device = next(model.parameters()).device
    loss_sum = 0.0
    p_c_all: list[torch.Tensor] = []
    targets_all: list[torch.Tensor] = []
    weights_all: list[torch.Tensor] = []
    adv_all: list[torch.Tensor] = []
    masks_all: list[torch.Tensor] = []
    p_eot: list[float] = []
    p_start: list[float] = []
    # a group's prompt is computed once per micro-batch (the trainer's shared-prefix forward:
    # the same loss and gradient, a fraction of the tokens on long prompts)
    prefixes = [r.ids[: max(0, _first_trained(r) - 1)] for r in batch]
    for indices in pack_by_prefix(prefixes, [len(r.ids) for r in batch], micro_batch_tokens):
        ids, attention, _ = collate([(batch[i].ids, batch[i].loss_mask) for i in indices], pad_id)
        ids, attention = ids.to(device), attention.to(device)
        width = ids.shape[1] - 1
        weight = torch.zeros(len(indices), width, dtype=torch.float64)
        mask = torch.zeros(len(indices), width, dtype=torch.bool)
        for row, i in enumerate(indices):  # token i is scored at position i - 1
            weight[row, : len(weights[i]) - 1] = torch.tensor(weights[i][1:], dtype=torch.float64)
            mask[row, : len(masks[i]) - 1] = torch.tensor(masks[i][1:]).bool()
        firsts = [_first_trained(batch[i]) for i in indices]
        start = max(0, min(firsts) - 1)
        log_p_c = torch.zeros(len(indices), width, dtype=torch.float64)
        wanted: dict[int, list[tuple[int, str]]] = {}  # position -> [(row, probe)]
        for row, i in enumerate(indices):
            r = batch[i]
            for j in after_opener_positions(r.ids, r.loss_mask, control.opener):
                wanted.setdefault(j - 1, []).append((row, "eot"))
            for j in message_starts(r.loss_mask):
                if j >= 1:
                    wanted.setdefault(j - 1, []).append((row, "start"))

        def probe(
            logprobs: torch.Tensor,
            first: int,
            log_p_c: torch.Tensor = log_p_c,
            wanted: dict[int, list[tuple[int, str]]] = wanted,
        ) -> None:
            span = logprobs.shape[1]
            log_p_c[:, first : first + span] = logprobs[:, :, control.id].double().cpu()
            for position in range(first, first + span):
                for row, kind in wanted.get(position, ()):
                    if kind == "eot":
                        p_eot.append(float(logprobs[row, position - first, control.end_of_turn].exp()))
                    else:
                        p_start.append(float(logprobs[row, position - first, control.id].exp()))

        with torch.set_grad_enabled(backward):
            shared = len(prefixes[indices[0]]) if len(indices) > 1 else 0
            logp, _ = token_logprobs(
                model, ids, attention, probe=probe, start=start, chunk_tokens=chunk_tokens, shared_prefix=shared
            )
            loss = -(weight.to(device=device, dtype=logp.dtype) * logp).sum()
            if backward:
                loss.backward()
        loss_sum += float(loss.detach())
        p_c_all.append(log_p_c.exp().flatten())
        targets_all.append(ids[:, 1:].cpu().flatten())
        weights_all.append(weight.flatten())
        masks_all.append(mask.flatten())
        row_adv = torch.tensor([adv[i] for i in indices], dtype=torch.float64)
        adv_all.append(row_adv.unsqueeze(-1).expand(-1, width).flatten())
    p_c, targets, weight = torch.cat(p_c_all), torch.cat(targets_all), torch.cat(weights_all)
    split = control_split(p_c, targets, weight, torch.cat(adv_all), control.id)
    trained = torch.cat(masks_all)
    return {
        "loss": loss_sum,
        **split,
        "n_trained": int(trained.sum()),
        "n_self": int((trained & (targets == control.id)).sum()),
        "mean_p_c": float(p_c[trained].mean()) if bool(trained.any()) else float("nan"),
        "p_eot_after_opener": sum(p_eot) / len(p_eot) if p_eot else float("nan"),
        "n_after_opener": len(p_eot),
        "p_c_message_start": sum(p_start) / len(p_start) if p_start else float("nan"),
        "n_message_starts": len(p_start),
    }


def run_arm(
    model: Any,
    batch: Sequence[FixedRollout],
    control: ControlToken,
    switches: ProbeSwitches,
    lr: float,
    updates: int,
    optimizer: str = "adamw",
    pad_id: int = 0,
    max_grad_norm: float | None = None,
    seed: int = 0,
    micro_batch_tokens: int = 16384,
    chunk_tokens: int = LOGIT_CHUNK_TOKENS,
    arm: str = "",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """``updates`` plain policy-gradient steps of ``model`` on ``batch`` (in place: the caller
    restores the weights, :func:`run_probe`), one row per update index 0..K (module docstring);
    ``progress(row)`` is called as each row is made."""
    torch.manual_seed(seed)
    weights, adv = position_weights(batch, control.id, switches)
    masks = [trained_mask(r, control.id, switches) for r in batch]
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: adamw, sgd")
    rows = []
    for k in range(updates + 1):
        began = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        stats = _forward(
            model, batch, weights, adv, masks, control, pad_id, micro_batch_tokens, chunk_tokens, backward=True
        )
        grads = [p.grad for p in params if p.grad is not None]
        grad_norm = (
            float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
            if grads
            else 0.0
        )
        if k < updates:
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
        rows.append(
            {
                "arm": arm,
                "update": k,
                **asdict(switches),
                "optimizer": optimizer,
                "lr": lr,
                **stats,
                "grad_norm": grad_norm,
                "adv_pos": sum(1 for a in adv if a > 0),
                "adv_neg": sum(1 for a in adv if a < 0),
                "control_id": control.id,
                "control_text": control.text,
                "control_single_token": control.single_token,
                "seconds": round(time.perf_counter() - began, 4),
            }
        )
        if progress is not None:
            progress(rows[-1])
    opt.zero_grad(set_to_none=True)
    return rows


def run_probe(
    model: Any,
    batch: Sequence[FixedRollout],
    control: ControlToken,
    lr: float,
    updates: int,
    arms: dict[str, ProbeSwitches] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Every arm from the same initial weights: a CPU snapshot is taken once, each arm trains the
    model in place, and the weights are restored after each (so the caller's model is unchanged
    and only one copy of the model lives on the device)."""
    initial = {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
    was_training = model.training
    model.train(False)
    rows: list[dict[str, Any]] = []
    try:
        for name, switches in (arms or ARMS).items():
            rows += run_arm(model, batch, control, switches, lr, updates, arm=name, **kwargs)
            model.load_state_dict(initial)
    finally:
        model.load_state_dict(initial)
        model.train(was_training)
    return rows


# -- batches from a run's rollout records ----------------------------------------------------


def batch_from_records(
    records: Sequence[dict[str, Any]], tokenizer: Any, sources: Sequence[str] | None = ("policy",)
) -> list[FixedRollout]:
    """A fixed batch from the lines of a ``RUN/rollouts/step_N.jsonl`` (module docstring)."""
    from trainers.tokenize import tokenize_conversation

    batch = []
    for record in records:
        if sources is not None and record.get("source", "policy") not in sources:
            continue
        if "completion_ids" in record and "loss_mask" in record:
            prompt = list(record.get("prompt_ids", []))
            ids, mask = prompt + list(record["completion_ids"]), [0] * len(prompt) + list(record["loss_mask"])
        else:
            conversation = tokenize_conversation(tokenizer, record["messages"])
            ids = conversation.input_ids
            mask = [0] * len(conversation.prompt_ids) + conversation.loss_mask
        batch.append(FixedRollout(ids, mask, float(record["reward"]), record.get("group", 0)))
    if not batch:
        raise ValueError("no rollout records to probe")
    return batch


def mixed_groups(batch: Sequence[FixedRollout]) -> list[FixedRollout]:
    """The rollouts of the groups whose rewards are not all equal. A flat group's advantages
    are all 0, so it adds nothing to any arm's gradient; dropping it only shrinks the token-mean
    denominator (a common positive factor of every position's weight) and the probes' sample."""
    by_group: dict[Any, set[float]] = {}
    for rollout in batch:
        by_group.setdefault(rollout.group, set()).add(rollout.reward)
    return [r for r in batch if len(by_group[r.group]) > 1]


#: the intervention table's columns: (row key, heading)
SUMMARY_COLUMNS = (
    ("zc_self", "self A(1−p)"),
    ("zc_other_pos", "other, A>0"),
    ("zc_other_neg", "other, A<0"),
    ("zc_total", "total"),
)


def summary_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The intervention table: per arm, the control token's logit-gradient split at the first
    update (descent direction, ×10⁴: positive raises c's logit) and how p(end-of-turn | opener),
    p(c) at message starts and the mean p(c) over trained positions moved from update 0 to K."""
    lines = [
        "| arm | "
        + " | ".join(f"{name} ×1e4" for _, name in SUMMARY_COLUMNS)
        + " | p(eot·opener) 0→K | p(c) at message start 0→K | mean p(c) 0→K | grad norm (update 0) |",
        "|---|" + "---:|" * (len(SUMMARY_COLUMNS) + 4),
    ]
    for arm in dict.fromkeys(row["arm"] for row in rows):
        arm_rows = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["update"])
        first, last = arm_rows[0], arm_rows[-1]

        lines.append(
            f"| {arm} | "
            + " | ".join(f"{1e4 * first[key]:+.3f}" for key, _ in SUMMARY_COLUMNS)
            + "".join(
                f" | {first[key]:.4f} → {last[key]:.4f}"
                for key in ("p_eot_after_opener", "p_c_message_start", "mean_p_c")
            )
            + f" | {first['grad_norm']:.3g} |"
        )
    return "\n".join(lines) + "\n"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a rollouts file, one a line."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_rows(rows: Sequence[dict[str, Any]], out: Path) -> None:
    """JSON Lines, or CSV when ``out`` ends in ``.csv``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        with open(out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        with open(out, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")


def main(argv: Sequence[str] | None = None, load: Callable[[str], tuple[Any, Any]] | None = None) -> int:
    """``python -m trainers.study.probe``: the arms on one step's rollouts, rows to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m trainers.study.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", required=True, type=Path, help="RUN/rollouts/step_N.jsonl")
    parser.add_argument("--model", required=True, help="model folder or hub id (weights and tokenizer)")
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--out", required=True, type=Path, help="rows: .jsonl, or .csv")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--max-grad-norm", type=float, default=0.0, help="0: no clipping")
    parser.add_argument("--call-format", default=None, help="default: the records' own")
    parser.add_argument("--max-rollouts", type=int, default=0, help="0: all of the step's policy rollouts")
    parser.add_argument("--micro-batch-tokens", type=int, default=16384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--groups",
        choices=("all", "mixed"),
        default="all",
        help="mixed: only the groups whose rewards differ (a flat group adds no gradient in any arm)",
    )
    parser.add_argument("--table", type=Path, default=None, help="also write the intervention table (Markdown)")
    args = parser.parse_args(argv)
    unknown = [a for a in args.arms.split(",") if a not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; valid: {', '.join(ARMS)}")
    model, tokenizer = (load or _load)(args.model)
    records = read_records(args.rollouts)
    batch = batch_from_records(records, tokenizer)
    if args.groups == "mixed":
        batch = mixed_groups(batch)
        if not batch:
            parser.error(f"{args.rollouts}: every group is flat (equal rewards): no arm has a gradient")
    if args.max_rollouts:
        batch = batch[: args.max_rollouts]
    call_format = args.call_format or next((r.get("call_format") for r in records if r.get("call_format")), "hermes")
    control = ControlToken.build(tokenizer, call_format)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    arms = args.arms.split(",")
    sys.stderr.write(
        f"probe: {len(batch)} rollouts in {len({r.group for r in batch})} groups, "
        f"{sum(len(r.ids) for r in batch)} tokens; {len(arms)} arms x {args.updates + 1} passes\n"
    )
    began = time.perf_counter()
    rows = run_probe(
        model,
        batch,
        control,
        args.lr,
        args.updates,
        arms={a: ARMS[a] for a in arms},
        optimizer=args.optimizer,
        pad_id=pad_id,
        max_grad_norm=args.max_grad_norm or None,
        seed=args.seed,
        micro_batch_tokens=args.micro_batch_tokens,
        progress=lambda row: sys.stderr.write(
            f"probe: {row['arm']} update {row['update']}/{args.updates}: zc_total {row['zc_total']:+.3e}, "
            f"p(eot|opener) {row['p_eot_after_opener']:.4f}, {row['seconds']:.1f}s\n"
        ),
    )
    write_rows(rows, args.out)
    if args.table is not None:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(summary_markdown(rows), encoding="utf-8")
    kind = "the single id" if control.single_token else "the first id of the tokenisation"
    sys.stderr.write(
        f"control token c = {control.id} ({kind} of {control.text!r}); {len(batch)} rollouts, "
        f"{len(rows)} rows in {time.perf_counter() - began:.1f}s -> {args.out}\n"
    )
    return 0


def _load(path: str) -> tuple[Any, Any]:
    """The model (bf16 on a GPU, fp32 on CPU) and tokenizer: the inference stack's one loader."""
    from toolenv.inference.hf_engine import load_transformers

    return load_transformers(path)


if __name__ == "__main__":
    raise SystemExit(main())
