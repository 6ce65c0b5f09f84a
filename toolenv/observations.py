"""A variant's observations, worded with the variant's tool and parameter names.

Under a renamed variant the backends still run with their canonical names, and a few of their
texts say those names: GorillaFileSystem's errors start with the command (``cd: …``), some
MathAPI errors use their tool's name as a word, one TravelAPI error names a parameter, and
Python's argument-binding errors name the method and its parameters. :func:`reword` rewrites
exactly those places, and nothing else, so that a model never learns a canonical name from a
result. The executor's variant path (:meth:`toolenv.executor.Session.execute` with a name map)
is the only caller: the environment and both sides of the checker's replay go through it, so
they all see the same texts, and a verdict stays what it is for the canonical episode.

Data is never rewritten: a file's content, a tweet, a message, a ticket or a value the model
passed may contain ``cat`` or ``sort`` and comes back as it is. Every rule is anchored to the
whole result (its start, or its exact text) and to the method that was called; the parts of a
message that carry data are kept byte for byte.

The rules, by kind (the leak sites; ``docs/ood.md``, section Observations, lists them too):

1. Command prefix. An error dict whose message starts with the called method's own name and a
   colon, ``{"error": "cd: …"}``: the name becomes the variant's (GorillaFileSystem, every
   tool that reports errors, both releases).
2. Fixed messages that name a tool or a code-like parameter as a word (:data:`TEMPLATES`): the
   named words become the variant's; the rest of the message, and whatever follows the fixed
   part, stay.
3. Python's argument-binding errors, ``Error during execution: Class.method() missing 1
   required positional argument: 'folder'`` (also ``takes N positional arguments``, ``got
   multiple values for argument``, ``got an unexpected keyword argument``): the qualified
   method becomes the variant's tool name and each quoted parameter the variant's parameter.

Deliberately left: result keys (``{"booking_id": …}``) even where a key is also a parameter
name (they are the documented output fields, which the variant's docs still show), and plain
English words that happen to be a parameter's name (``Invalid mode``, ``path not allowed in
destination``), which the variant's descriptions keep as words too (``rename_params`` rewrites
only code-like mentions). Python's other exception texts name builtins and types, never a tool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from toolenv.executor import NameMap

EXECUTION_PREFIX = "Error during execution: "
_ERROR_DICT = '{"error": "'

#: Fixed backend texts that name a tool (``{t:NAME}``) or a parameter of the called method
#: (``{p:NAME}``), by the method that produces them: a result that starts with the text (slots
#: filled with the canonical names) gets the variant's names in the slots. The rest of such a
#: result (a file name, a list of card ids) is data and stays.
TEMPLATES: tuple[tuple[str, str], ...] = (
    # GorillaFileSystem: a second tool name after the command prefix (rule 1 does the prefix)
    ("touch", '{"error": "{t:touch}: cannot {t:touch} \''),
    ("echo", '{"error": "{t:echo}: cannot {t:touch} \''),  # 2025.10.2's echo says "touch"
    ("wc", '{"error": "{t:wc}: invalid {p:mode} \''),  # the argument, by its name
    # MathAPI
    ("mean", '{"error": "Cannot calculate {t:mean} of an empty list"}'),
    ("min_value", '{"error": "Cannot {t:find} minimum of an empty list"}'),
    ("max_value", '{"error": "Cannot {t:find} maximum of an empty list"}'),
    ("divide", '{"error": "Cannot {t:divide} by zero"}'),
    # TravelAPI
    ("get_credit_card_balance", '{"error": "Card not registered. Here are a list of {p:card_id}\'s: '),
)

_SLOT = re.compile(r"\{([tp]):(\w+)\}")

#: Python's argument-binding messages after ``method() ``: the tail holds parameter names
#: (quoted) except for ``takes …``, which only counts arguments
_BINDING = re.compile(
    r"(missing \d+ required (?:positional|keyword-only) arguments?: "
    r"|got multiple values for argument "
    r"|got an unexpected keyword argument "
    r"|takes )(.*)\Z",
    re.S,
)
_QUOTED_NAMES = re.compile(r"'\w+'(?:(?:,| and|, and) '\w+')*\Z")
_QUOTED = re.compile(r"'(\w+)'")
_QUALIFIED = re.compile(r"(?:\w+\.)?(\w+)\Z")


@dataclass(frozen=True)
class _Names:
    """A name map turned around: canonical tool → variant tool, and per canonical tool its
    canonical parameter → variant parameter."""

    tools: Mapping[str, str]
    params: Mapping[str, Mapping[str, str]]

    def fill(self, template: str, method: str, canonical: bool) -> str:
        def slot(match: re.Match[str]) -> str:
            kind, name = match.groups()
            if canonical:
                return name
            if kind == "t":
                return self.tools.get(name, name)
            return self.params.get(method, {}).get(name, name)

        return _SLOT.sub(slot, template)


def _names(name_map: "NameMap") -> _Names:
    """The turned-around map, built once per name map (kept in the frozen map's ``__dict__``)."""
    cached = name_map.__dict__.get("_observation_names")
    if cached is None:
        tools: dict[str, str] = {}
        params: dict[str, dict[str, str]] = {}
        for variant, (canonical, variant_params) in name_map.tools.items():
            tools.setdefault(canonical, variant)
            own = params.setdefault(canonical, {})
            for name, target in variant_params.items():
                own.setdefault(target, name)
        cached = _Names(tools, params)
        name_map.__dict__["_observation_names"] = cached
    return cached


def _templates(names: _Names, method: str) -> list[tuple[str, str]]:
    """``(canonical prefix, variant prefix)`` of the method's templates that change anything."""
    found = []
    for owner, template in TEMPLATES:
        if owner == method:
            before, after = names.fill(template, method, True), names.fill(template, method, False)
            if before != after:
                found.append((before, after))
    return found


def reword(name_map: "NameMap", tool: str, method: str, text: str) -> str:
    """``text``, a result of the canonical ``method`` called as the variant's ``tool``, with the
    canonical names that the backend or Python put into it replaced by the variant's (rules in
    the module docstring). Returns ``text`` itself when nothing applies."""
    if text.startswith(_ERROR_DICT):
        return _reword_error_dict(_names(name_map), tool, method, text)
    if text.startswith(EXECUTION_PREFIX):
        return _reword_binding(_names(name_map), tool, method, text)
    return text


def _reword_error_dict(names: _Names, tool: str, method: str, text: str) -> str:
    for before, after in _templates(names, method):
        if text.startswith(before):
            return after + text[len(before) :]
    prefix = f"{_ERROR_DICT}{method}: "
    if tool != method and text.startswith(prefix):
        return f"{_ERROR_DICT}{tool}: {text[len(prefix) :]}"
    return text


def _reword_binding(names: _Names, tool: str, method: str, text: str) -> str:
    message = text[len(EXECUTION_PREFIX) :]
    head, separator, tail = message.partition("() ")
    qualified = _QUALIFIED.fullmatch(head) if separator else None
    if qualified is None or qualified.group(1) != method:
        return text  # not about the called method (a builtin's or a type's message, or data)
    binding = _BINDING.match(tail)
    if binding is None:
        return text
    kind, rest = binding.groups()
    if kind != "takes ":
        if not _QUOTED_NAMES.fullmatch(rest):
            return text
        params = names.params.get(method, {})
        rest = _QUOTED.sub(lambda m: f"'{params.get(m.group(1), m.group(1))}'", rest)
    return f"{EXECUTION_PREFIX}{tool}() {kind}{rest}"
