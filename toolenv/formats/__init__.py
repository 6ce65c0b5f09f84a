"""Call formats (codecs): how tools are shown to a model and how its output becomes calls.

``get_codec(name)`` returns a codec by name; ``CODECS`` lists them:

- ``hermes``: ``<tool_call>{"name": …, "arguments": …}</tool_call>`` (Qwen2.5, the paper's format)
- ``python``: BFCL's python list ``[f(a=1), g(b=2)]`` with BFCL's default system prompt
- ``openai``: assistant message dicts with ``tool_calls``
- ``xml``: ``<function name="f"><param name="a" type="integer">1</param></function>``
- ``json_block``: a fenced JSON list of ``{"name", "arguments"}`` objects

Every codec also accepts an OpenAI-style assistant message dict with ``tool_calls`` and decodes
it the same way (:meth:`Codec.parse`, see :mod:`toolenv.formats.base`), so a server that
extracts the calls itself works with any format. Each codec takes an optional :class:`~toolenv.formats.style.PromptStyle` (docs as JSON, YAML-like
text or Python signatures; tools in the system or the first user message; result wrapping). The
default style is the codec's own output, unchanged.
"""

from __future__ import annotations

from toolenv.formats.base import REVEAL_SENTENCE, Codec, ParseResult, ToolSpec, tool_specs
from toolenv.formats.hermes import HermesCodec
from toolenv.formats.json_block import JSONBlockCodec
from toolenv.formats.openai import OpenAICodec
from toolenv.formats.python_list import PythonListCodec
from toolenv.formats.style import PromptStyle
from toolenv.formats.xml_tags import XMLCodec

CODECS: dict[str, type[Codec]] = {
    codec.name: codec for codec in (HermesCodec, PythonListCodec, OpenAICodec, XMLCodec, JSONBlockCodec)
}


def get_codec(name: str, style: PromptStyle | None = None, keep_positional: bool = False) -> Codec:
    """A codec instance by name (with a prompt style; default: the codec's own layout;
    ``keep_positional``: see :class:`Codec`); a one-line ``ValueError`` listing the valid
    names otherwise."""
    cls = CODECS.get(name) or _provided_codec(name)
    if cls is None:
        raise ValueError(f"unknown call format {name!r}; valid: {', '.join(CODECS)}")
    return cls(style, keep_positional)


def _provided_codec(name: str) -> type[Codec] | None:
    """A call format that the installed OOD variant builder defines (BFCL V4 format-grid
    configurations, e.g. in a task file exported from another process), or ``None``."""
    from toolenv.registration import variant_codec

    return variant_codec(name)


__all__ = ["CODECS", "Codec", "ParseResult", "PromptStyle", "REVEAL_SENTENCE", "ToolSpec", "get_codec", "tool_specs"]
