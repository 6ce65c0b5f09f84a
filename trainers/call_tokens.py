"""Single-id call tags: give a vocabulary the one control token the paper's collapse mechanism needs.

The paper's collapse signal (docs/paper-methods.md §6.3, :mod:`trainers.monitor`) is a spike in
the probability of *one* control token, Qwen2.5's ``<tool_call>`` (id 151657). In SmolLM2's
vocabulary the same text is five ordinary sub-word pieces (``<`` ``tool`` ``_`` ``call`` ``>``),
so no single id can spike and the probes only see the first, very common piece. This module
adds the call tags as whole tokens, the way Qwen2.5's tokenizer has them:

* an **added, non-special** token (``special=False``, ``normalized=False``, no strip): like
  Qwen2.5's, ``decode(..., skip_special_tokens=True)`` (what :mod:`trainers.rollout` and
  :mod:`toolenv.inference.chat` use) keeps the text, so the hermes codec parses a decoded call
  exactly as before; only the ids change;
* the new embedding rows start at the **mean of the old sub-token rows** of the text, so the
  model's first view of the new id is close to what it saw for the pieces (and untied output
  rows the same, so its initial probability is in a sensible range rather than random);
* the resize is exact (``pad_to_multiple_of=None``): every row the model can sample is an id the
  tokenizer can decode, and the logits of the old vocabulary are untouched.

It is idempotent: texts that already encode to one id (a second call, a model folder saved
after the first and loaded again, or Qwen2.5 itself) add nothing, and their ids are returned.
"""

from __future__ import annotations

from typing import Any, Sequence

#: the hermes call tags (opener, closer), as Qwen2.5 has them as single ids
CALL_TOKENS: tuple[str, ...] = ("<tool_call>", "</tool_call>")


def _ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of ``text`` as the trainer encodes templated text (no bos/eos)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def add_call_tokens(model: Any, tokenizer: Any, texts: Sequence[str] = CALL_TOKENS) -> list[int]:
    """Make each of ``texts`` one token of ``tokenizer`` and ``model``; returns their ids in order.

    Mutates both in place. Texts that already encode to a single id are left alone. For the
    others the tokenizer gets an added non-special token (see the module docstring for why not
    special), the model's embeddings grow to cover it (never shrink: a model whose matrix is
    already padded past ``len(tokenizer)``, as Qwen's is, keeps its size and the new ids use
    padding rows), and each new row (input, and output when it is not tied to the input) is
    set to the mean of the rows of the text's old sub-tokens.
    """
    import torch
    from tokenizers import AddedToken

    pieces: dict[str, list[int]] = {}
    for text in dict.fromkeys(texts):
        ids = _ids(tokenizer, text)
        if not ids:
            raise ValueError(f"call token {text!r} encodes to no ids")
        if len(ids) > 1:
            pieces[text] = ids

    if pieces:
        rows = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} ids but the model only {rows} embedding rows; "
                "load the model that was saved with this tokenizer"
            )
        tokenizer.add_tokens(
            [
                AddedToken(text, special=False, normalized=False, single_word=False, lstrip=False, rstrip=False)
                for text in pieces
            ]
        )
        new_ids = {text: _ids(tokenizer, text) for text in pieces}
        for text, ids in new_ids.items():
            if len(ids) != 1:
                raise RuntimeError(f"adding {text!r} as a token did not make it one id (got {ids})")
        with torch.no_grad():
            if len(tokenizer) > rows:
                # mean_resizing=False: the new rows are overwritten below, so skip the (slow, random)
                # covariance-based initialisation; pad_to_multiple_of=None: no undecodable rows
                model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=None, mean_resizing=False)
            inputs = model.get_input_embeddings().weight
            output_layer = model.get_output_embeddings()
            outputs = None
            if output_layer is not None and output_layer.weight is not inputs:
                outputs = output_layer.weight
            for text, old in pieces.items():
                new = new_ids[text][0]
                inputs[new] = inputs[old].mean(dim=0)
                if outputs is not None:
                    outputs[new] = outputs[old].mean(dim=0)
                    bias = getattr(output_layer, "bias", None)
                    if bias is not None:
                        bias[new] = bias[old].mean()

    result = []
    for text in texts:
        ids = _ids(tokenizer, text)
        if len(ids) != 1:
            raise RuntimeError(f"call token {text!r} is not one id after adding ({ids})")
        result.append(ids[0])
    return result
