"""Single-id call tags (trainers/call_tokens.py): tokenizer, template, probes, structure, embeddings, save/load."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.tiny_model import tiny_qwen2
from toolenv.formats import get_codec
from toolenv.inference.smollm2 import ensure_smollm2
from toolenv.structure import classify
from trainers.call_tokens import CALL_TOKENS, add_call_tokens
from trainers.monitor import ProbeSpec
from trainers.tokenize import encode, tokenize_conversation

CALL = '<tool_call>\n{"name": "ls", "arguments": {"a": 1}}\n</tool_call>'


def fresh() -> tuple[Any, Any]:
    """A tokenizer of our own (the cached one in tests.tiny_model must stay unmodified)."""
    tok = AutoTokenizer.from_pretrained(ensure_smollm2(quiet=True))
    return tiny_qwen2(0, tok), tok


def test_single_ids_decode_codec_template_probe_structure() -> None:
    model, tok = fresh()
    before_ids = encode(tok, CALL)
    codec = get_codec("hermes")
    before = codec.parse(tok.decode(before_ids, skip_special_tokens=True))
    state = classify(tok.decode(before_ids, skip_special_tokens=True), codec)
    ids = add_call_tokens(model, tok)
    assert ids == [len(tok) - 2, len(tok) - 1] and len(tok) == 49154
    after_ids = encode(tok, CALL)
    assert after_ids[0] == ids[0] and after_ids[-1] == ids[1]
    text = tok.decode(after_ids, skip_special_tokens=True)
    assert text == CALL and codec.parse(text) == before and classify(text, codec) == state == "healthy_call"
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": CALL}]
    conv = tokenize_conversation(tok, messages)
    assert ids[0] in conv.completion_ids and ids[1] in conv.completion_ids
    spec = ProbeSpec.build(tok, "hermes")
    assert spec is not None and spec.opener == (ids[0], 198) and spec.repeat == ids[0]
    assert model.get_output_embeddings().weight.shape[0] == len(tok)


def test_rows_are_sub_token_means_and_old_logits_unchanged() -> None:
    model, tok = fresh()
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone() + 0.01)
    pieces = [encode(tok, t) for t in CALL_TOKENS]
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.lm_head.weight.detach().clone()
    x = torch.tensor([encode(tok, "hello world, how are you?")])
    with torch.no_grad():
        old_logits = model(x).logits
    ids = add_call_tokens(model, tok)
    new_in = model.get_input_embeddings().weight
    assert model.lm_head.weight is not new_in and model.lm_head.weight.shape[0] == len(tok)
    for new, old in zip(ids, pieces):
        assert torch.allclose(new_in[new], old_in[old].mean(0))
        assert torch.allclose(model.lm_head.weight[new], old_out[old].mean(0))
    with torch.no_grad():
        logits = model(x).logits
    assert torch.equal(logits[..., : old_logits.shape[-1]], old_logits)


def test_save_load_round_trip_is_idempotent(tmp_path: Any) -> None:
    model, tok = fresh()
    ids = add_call_tokens(model, tok)
    assert add_call_tokens(model, tok) == ids and len(tok) == 49154
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert encode(tok2, CALL)[0] == ids[0]
    rows = model2.get_input_embeddings().weight.shape[0]
    assert add_call_tokens(model2, tok2) == ids and len(tok2) == rows == 49154
    assert tok2.decode(encode(tok2, CALL), skip_special_tokens=True) == CALL
