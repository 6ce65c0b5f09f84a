"""The fixed-batch mechanism probe (trainers/study/probe.py) on the tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from tests.tiny_model import smollm2_tokenizer, tiny_qwen2
from trainers.losses import token_mean
from trainers.study import probe as P
from trainers.tokenize import encode


@pytest.fixture(scope="module")
def setup():
    tok = smollm2_tokenizer()
    control = P.ControlToken.build(tok, "hermes")
    prompt = encode(tok, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    texts = ['<tool_call>\n{"name": "a"}</tool_call>', "<tool_call>\n", "plain answer here, longer than the rest", "ok"]
    rewards = [1.0, 0.0, 0.5, 0.0]
    batch = []
    for text, reward, group in zip(texts, rewards, [0, 0, 1, 1]):
        completion = encode(tok, text) + [control.end_of_turn]
        batch.append(P.FixedRollout(prompt + completion, [0] * len(prompt) + [1] * len(completion), reward, group))
    return tok, control, batch


def autograd_dz(model, batch, control, switches):
    """d loss/d z_c summed over trained positions, from a plain (unchunked) forward's logits."""
    weights, _ = P.position_weights(batch, control.id, switches)
    width = max(len(r.ids) for r in batch)
    ids = torch.tensor([r.ids + [0] * (width - len(r.ids)) for r in batch])
    logits = model(input_ids=ids).logits[:, :-1].float().detach().requires_grad_(True)
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    w = torch.zeros(len(batch), width - 1, dtype=torch.float64)
    for i, r in enumerate(batch):
        w[i, : len(r.ids) - 1] = torch.tensor(weights[i][1:])
    loss = -(w * logp.double()).sum()
    loss.backward()
    return float(logits.grad[:, :, control.id].sum()), float(loss.detach()), logp.detach()


def row0(model, batch, control, switches, **kw):
    return P.run_arm(model, batch, control, switches, lr=1e-3, updates=0, pad_id=0, **kw)[0]


def test_split_matches_autograd_and_loss(setup):
    tok, control, batch = setup
    model = tiny_qwen2()
    assert not control.single_token and control.id == encode(tok, "<tool_call>")[0]
    for switches in P.ARMS.values():
        grad, loss, logp = autograd_dz(model, batch, control, switches)
        row = row0(model, batch, control, switches)
        # sign convention: the split is the descent direction, -d loss/d z_c
        assert abs(row["zc_self"] + row["zc_other"] + grad) < 1e-5
        assert abs(row["zc_total"] + grad) < 1e-5
        assert abs(row["loss"] - loss) < 1e-5
    # the token-mean loss is the trainer's token_mean of -A·logp
    adv = torch.tensor(P.advantages(batch, P.ARMS["baseline"]))
    mask = torch.zeros_like(logp)
    for i, r in enumerate(batch):
        mask[i, : len(r.ids) - 1] = torch.tensor(r.loss_mask[1:], dtype=mask.dtype)
    expected = float(token_mean(-adv[:, None] * logp, mask))
    assert abs(row0(model, batch, control, P.ARMS["baseline"])["loss"] - expected) < 1e-5


def test_positive_advantages_push_other_down(setup):
    _, control, batch = setup
    positive = [r._replace(reward=1.0 if i % 2 == 0 else 0.0) for i, r in enumerate(batch)]
    row = row0(tiny_qwen2(), positive, control, P.ProbeSwitches(negatives=False))
    assert row["zc_other"] < 0 and row["zc_self"] > 0 and row["zc_other_neg"] == 0


def test_no_negatives_and_mask_control(setup):
    _, control, batch = setup
    model = tiny_qwen2()
    base = row0(model, batch, control, P.ARMS["baseline"])
    assert base["zc_other_neg"] > 0  # negative advantages push c up at other positions
    neg = row0(model, batch, control, P.ARMS["no_negatives"])
    assert neg["zc_other_neg"] == 0 and neg["adv_neg"] == 0
    weights, _ = P.position_weights(batch, control.id, P.ARMS["no_negatives"])
    adv = P.advantages(batch, P.ARMS["baseline"])
    assert all(w == 0 for a, ws in zip(adv, weights) if a < 0 for w in ws)
    masked = row0(model, batch, control, P.ARMS["mask_control"])
    assert masked["zc_self"] == 0 and masked["n_self"] == 0 and base["n_self"] > 0


def test_sequence_mean_vs_token_mean(setup):
    _, control, batch = setup
    model = tiny_qwen2()
    tm, sm = (row0(model, batch, control, P.ARMS[a]) for a in ("baseline", "sequence_mean"))
    assert abs(tm["loss"] - sm["loss"]) > 1e-6
    same = [r._replace(ids=batch[0].ids, loss_mask=batch[0].loss_mask) for r in batch]
    tm, sm = (row0(model, same, control, P.ARMS[a]) for a in ("baseline", "sequence_mean"))
    assert abs(tm["loss"] - sm["loss"]) < 1e-9 and abs(tm["zc_total"] - sm["zc_total"]) < 1e-9


def test_run_probe_deterministic_restores_weights_and_probes(setup):
    _, control, batch = setup
    model = tiny_qwen2()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runs = [P.run_probe(model, batch, control, lr=1e-2, updates=2, pad_id=0, seed=3) for _ in range(2)]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rows] for rows in runs]
    assert strip[0] == strip[1] and len(runs[0]) == 4 * 3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    first = runs[0][0]
    assert first["n_after_opener"] == 2 and first["n_message_starts"] == 4
    assert runs[0][2]["loss"] < runs[0][0]["loss"]  # the updates do descend


def test_cli_on_records(tmp_path, setup):
    tok, _, _ = setup
    tiny_qwen2().save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    system = {"role": "system", "content": "tools"}
    records = [
        {
            "messages": [system, {"role": "user", "content": "q"}, {"role": "assistant", "content": c}],
            "reward": r,
            "group": 0,
            "source": "policy",
            "call_format": "hermes",
        }
        for c, r in (('<tool_call>\n{"name": "a"}\n</tool_call>', 1.0), ("<tool_call>\n", 0.0), ("no", 0.0))
    ]
    path = tmp_path / "step_000001.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in records))
    model = str(tmp_path / "model")
    out = tmp_path / "rows.jsonl"
    assert P.main(["--rollouts", str(path), "--model", model, "--updates", "5", "--lr", "1e-3", "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 4 * 6 and rows[0]["control_single_token"] is False
    csv_out = tmp_path / "rows.csv"
    P.main(["--rollouts", str(path), "--model", model, "--updates", "1", "--arms", "baseline", "--out", str(csv_out)])
    assert csv_out.read_text().startswith("arm,update")
    # mixed groups only, with the intervention table: one row per arm, headed as documented
    mixed = [dict(records[0], group=1), dict(records[1], group=1), dict(records[2], group=2, reward=1.0)]
    mixed.append(dict(records[2], group=2))
    mixed.append(dict(records[0], group=3))
    mixed.append(dict(records[0], group=3))  # group 3 is flat: both rewards 1
    path.write_text("".join(json.dumps(x) + "\n" for x in mixed))
    table = tmp_path / "table.md"
    argv = ["--rollouts", str(path), "--model", model, "--updates", "2", "--groups", "mixed"]
    assert P.main([*argv, "--out", str(out), "--table", str(table)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert {r["adv_pos"] + r["adv_neg"] for r in rows if r["arm"] == "baseline"} == {4}  # groups 1, 2: none flat
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| arm | self A(1−p) ×1e4") and len(lines) == 2 + len(P.ARMS)
    assert [line.split(" | ")[0] for line in lines[2:]] == [f"| {arm}" for arm in P.ARMS]


def test_records_keep_the_trained_ids_and_the_probe_replays_them(tmp_path):
    """With [monitor] rollout_ids the step records carry the ids it trained on, and the probe's batch is exactly
    those ids and mask (no re-tokenisation: a non-canonical sampled tokenisation survives)."""
    from trainers.modes import Episode
    from trainers.records import read_step, write_step
    from trainers.types import Rollout

    prompt, completion, mask = [5, 6, 7], [8, 9, 10, 11], [1, 1, 0, 1]
    rollouts = [
        Rollout("t", 0, k, prompt, completion[: 4 - k], mask[: 4 - k], [0.0] * (4 - k), float(k), None)
        for k in range(2)
    ]
    write_step(tmp_path, 4, [Episode.of(r) for r in rollouts])  # the default: no ids
    assert not any("prompt_ids" in record for record in P.read_records(tmp_path / "rollouts" / "step_000004.jsonl"))
    write_step(tmp_path, 3, [Episode.of(r, keep_ids=True) for r in rollouts])
    batch = P.batch_from_records(read_step(tmp_path, 3), tokenizer=None)
    assert [r.ids for r in batch] == [prompt + completion, prompt + completion[:3]]
    assert [r.loss_mask for r in batch] == [[0, 0, 0] + mask, [0, 0, 0] + mask[:3]]
    assert [(r.reward, r.group) for r in batch] == [(0.0, 0), (1.0, 0)]
