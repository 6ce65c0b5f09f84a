"""The transforms. Each edits a :class:`~ood_variants.draft.Draft` in place, using only its own
seeded ``random.Random`` and an optional style; the registry (``ood_variants.registry``) names them.

Content OOD changes what the model reads about the tools (names, order, descriptions, extra
tools) or the values in the task; format OOD changes how tools are shown and calls are written.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from typing import Any

from envs import BACKEND_MODULES
from ood_variants import naming
from ood_variants.banks import FILLER_WORDS, OPAQUE_PARAM_PREFIXES, OPAQUE_PREFIXES, PHRASES
from ood_variants.draft import Draft, canonical_docs, map_descriptions, replace_words, word_pattern

#: every API, in envs.BACKEND_MODULES order (the one per-API table)
ALL_CLASSES = tuple(BACKEND_MODULES)


# -- names -------------------------------------------------------------------------------------


def rename_tools(draft: Draft, rng: random.Random, style: str) -> None:
    """Every tool (distractors too) gets a new name in ``style``; descriptions follow."""
    current = [doc["name"] for doc in draft.docs]
    if style == "opaque":
        prefix = rng.choice(OPAQUE_PREFIXES)
        numbers = rng.sample(range(len(current) * 3 + 10), len(current))  # codes that carry no order
        mapping = {name: f"{prefix}_{number:02d}" for name, number in zip(current, numbers)}
    else:
        mapping, taken = {}, set(current)
        for name in current:
            new = naming.tool_name(name, style, rng, taken)
            taken.add(new)
            mapping[name] = new
    draft.rename_tools(mapping)


def rename_params(draft: Draft, rng: random.Random, style: str) -> None:
    """Every parameter of every tool gets a new name in ``style`` (nested fields are values, kept)."""
    per_tool = {}
    for doc in draft.docs:
        params = list((doc.get("parameters", {}).get("properties") or {}))
        if style == "opaque":
            prefix = rng.choice(OPAQUE_PARAM_PREFIXES)
            order = rng.sample(range(len(params)), len(params))
            per_tool[doc["name"]] = {p: f"{prefix}{i}" for p, i in zip(params, order)}
        else:
            mapping, taken = {}, set(params)
            for p in params:
                new = naming.param_name(p, style, rng, taken)
                taken.add(new)
                mapping[p] = new
            per_tool[doc["name"]] = mapping
    draft.rename_params(per_tool)


# -- schema order ------------------------------------------------------------------------------


def _shuffled_dict(value: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    keys = list(value)
    rng.shuffle(keys)
    return {k: value[k] for k in keys}


def _shuffled_list(value: list[Any], rng: random.Random) -> list[Any]:
    copy = list(value)
    rng.shuffle(copy)
    return copy


def _shuffle_doc(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A doc with its keys, its parameters' order and keys, ``required`` and enums shuffled."""
    parameters = doc.get("parameters")
    if isinstance(parameters, dict):
        parameters = dict(parameters)
        properties = parameters.get("properties")
        if isinstance(properties, dict):
            shuffled = {}
            for key in _shuffled_list(list(properties), rng):
                schema = properties[key]
                if isinstance(schema, dict):
                    if isinstance(schema.get("enum"), list):
                        schema = {**schema, "enum": _shuffled_list(schema["enum"], rng)}
                    schema = _shuffled_dict(schema, rng)
                shuffled[key] = schema
            parameters["properties"] = shuffled
        if isinstance(parameters.get("required"), list):
            parameters["required"] = _shuffled_list(parameters["required"], rng)
        doc = {**doc, "parameters": _shuffled_dict(parameters, rng)}
    return _shuffled_dict(doc, rng)


def shuffle_schema(draft: Draft, rng: random.Random, style: str | None) -> None:
    """Tool order, parameter order, JSON key order (of each doc, its parameters and each
    parameter's schema), ``required`` order and enum order, all shuffled."""
    docs = [_shuffle_doc(doc, rng) for doc in draft.docs]
    rng.shuffle(docs)
    draft.docs = docs
    draft.changed.add("docs")


# -- descriptions ------------------------------------------------------------------------------

_COMPILED = tuple((re.compile(pattern), choices) for pattern, choices in PHRASES)


@lru_cache(maxsize=1 << 15)
def _phrases_in(text: str) -> tuple[int, ...]:
    """Which phrase patterns the (original) text contains; descriptions repeat across tasks."""
    return tuple(i for i, (pattern, _) in enumerate(_COMPILED) if pattern.search(text))


def _paraphrase(text: str, rng: random.Random) -> str:
    """Each bank phrase found in the original text is rewritten once, with a seeded choice."""
    for index in _phrases_in(text):
        pattern, choices = _COMPILED[index]
        text = pattern.sub(rng.choice(choices), text)
    return text


def _truncate(text: str, rng: random.Random) -> str:
    body = text.split("Tool description: ", 1)[-1]  # keep what the tool does, not the API preamble
    words = body.split()
    keep = rng.randint(4, 9)
    return body if len(words) <= keep else " ".join(words[:keep]) + " …"


def rewrite_descriptions(draft: Draft, rng: random.Random, style: str) -> None:
    """Descriptions (tools and parameters) paraphrased from the phrase bank, truncated, or dropped."""
    if style == "paraphrase":
        fn = lambda text: _paraphrase(text, rng)  # noqa: E731
    elif style == "truncate":
        fn = lambda text: _truncate(text, rng)  # noqa: E731
    else:  # drop
        fn = lambda text: ""  # noqa: E731
    for doc in draft.docs:
        map_descriptions(doc, fn)
    draft.changed.add("docs")


# -- distractors -------------------------------------------------------------------------------


def add_distractors(draft: Draft, rng: random.Random, style: str) -> None:
    """Non-callable extra tools: from APIs the task does not involve (``other_api``), or
    near-duplicates of the task's tools under new names (``near_duplicate``). The ground truth
    never uses them; calling one gives the unknown-function error."""
    taken = {doc["name"] for doc in draft.docs}
    if style == "other_api":
        pool = [
            text
            for cls in ALL_CLASSES
            if cls not in draft.base.involved_classes
            for text in canonical_docs(cls, draft.base.release)
        ]
        extra = [
            doc
            for doc in map(json.loads, rng.sample(pool, min(len(pool), rng.randint(3, 6))))
            if doc["name"] not in taken
        ]
    else:
        hidden = draft.hidden
        candidates = [doc for doc in draft.docs if doc["name"] in draft.names and doc["name"] not in hidden]
        extra = []
        for doc in rng.sample(candidates, min(len(candidates), rng.randint(1, 3))):
            copy = json.loads(json.dumps(doc))
            name = naming.tool_name(doc["name"], "synonym", rng, taken | naming.canonical_tool_names())
            if naming.words(name) == naming.words(doc["name"]):
                name = naming.join([name, rng.choice(FILLER_WORDS)], "snake")
            taken.add(name)
            copy["name"] = name
            extra.append(copy)
    renamed = {canonical: tool for tool, (canonical, _) in draft.names.items() if tool != canonical}
    pattern = word_pattern(renamed)
    for doc in extra:
        # tools renamed earlier in the spec are renamed in the newcomers' descriptions too
        map_descriptions(doc, lambda text: replace_words(text, pattern, renamed))
        draft.docs.insert(rng.randint(0, len(draft.docs)), doc)
        draft.distractors.add(doc["name"])
    draft.changed.add("docs")


# -- format ------------------------------------------------------------------------------------


def call_format(draft: Draft, rng: random.Random, style: str) -> None:
    draft.format["call_format"] = style


def doc_style(draft: Draft, rng: random.Random, style: str) -> None:
    draft.format["docs"] = style


def tools_in_user(draft: Draft, rng: random.Random, style: str | None) -> None:
    draft.format["tools_in"] = "user"


def result_style(draft: Draft, rng: random.Random, style: str) -> None:
    draft.format["results"] = style


# -- types -------------------------------------------------------------------------------------

_TYPE = r"(?:str|string|int|integer|float|double|number|bool|boolean|list|array|dict|dictionary|object|tuple|any)"
_PLURAL_TYPE = r"(?:str|strings|ints|integers|floats|bools|booleans|dicts|dictionaries)"


def _plain_opening(match: re.Match[str]) -> str:
    """``[Optional] The list of cities`` → ``[Optional] The cities``; ``List of tags`` → ``Tags``."""
    optional, article = match.group(1) or "", match.group(2)
    return optional + (f"{article} " if article and article.lower() == "the" else "")


#: phrases that state a parameter's type, and what replaces them (conservative: a word such
#: as "number" stays unless it is written as a type: "(number)", "list of numbers")
_TYPE_PHRASES: tuple[tuple[re.Pattern[str], Any], ...] = (
    # "(string)", "(int, optional)", "(type: integer)", "(list of str)", "(List[str])"
    (
        re.compile(
            rf"\s*\((?:type\s*[:=]\s*)?(?:optional\s*,\s*)?(?:(?:list|array) of )?{_TYPE}s?(?:\[[\w ,\[\]]*\])?"
            r"(?:\s*,\s*optional)?\)",
            re.I,
        ),
        lambda m: " (optional)" if "optional" in m.group(0).lower() else "",
    ),
    # "Type: string."
    (re.compile(rf"\btype\s*:\s*{_TYPE}\b\.?\s*", re.I), ""),
    # "list of str", "array of integers" → "values"
    (re.compile(rf"\b(?:an? )?(?:list|array) of {_PLURAL_TYPE}\b", re.I), "values"),
    # "an integer", "a string" → "a value" (not "an empty string": a default, not a type)
    (re.compile(r"\b([Aa])n? (?:integer|int|string|str|float|boolean|bool)\b"), r"\1 value"),
    # a description that opens with its type: "List of tags for the tweet" → "Tags for the tweet"
    (
        re.compile(r"^(\[Optional\] )?(?:(The|A) )?(?:list|array|dictionary|dict) (?:of|containing) ", re.I),
        _plain_opening,
    ),
)


def drop_type_words(text: str) -> str:
    """A parameter description without the phrases that state its type (:data:`_TYPE_PHRASES`)."""
    new = text
    for pattern, replacement in _TYPE_PHRASES:
        new = pattern.sub(replacement, new)
    if new == text:
        return text
    new = new if text[:1].isspace() else new.lstrip()
    return new[:1].upper() + new[1:] if text[:1].isupper() else new


def _strip_types(schema: Any) -> None:
    """Remove ``type`` from a parameter schema and every schema nested in it (``items``,
    ``properties``, ``additionalProperties``, ``anyOf``/``oneOf``/``allOf``), and the type
    phrases from their descriptions; an ``items`` left empty goes too (it only said "array")."""
    if not isinstance(schema, dict):
        return
    schema.pop("type", None)
    if isinstance(schema.get("description"), str):
        schema["description"] = drop_type_words(schema["description"])
    for key in ("items", "additionalProperties"):
        _strip_types(schema.get(key))
        if key == "items" and schema.get(key) == {}:
            del schema[key]
    for sub in (schema.get("properties") or {}).values() if isinstance(schema.get("properties"), dict) else ():
        _strip_types(sub)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or () if isinstance(schema.get(key), list) else ():
            _strip_types(sub)


def drop_types(draft: Draft, rng: random.Random, style: str) -> None:
    """Argument types removed from the tool docs: every parameter's (``all``), or those of a
    seeded half of the parameters (``some``, each with probability 1/2), recursively, with the
    phrases in their descriptions that state a type. The backends never read the docs."""
    for doc in draft.docs:
        properties = (doc.get("parameters") or {}).get("properties")
        if not isinstance(properties, dict):
            continue
        for schema in properties.values():
            if style == "all" or rng.random() < 0.5:
                _strip_types(schema)
    draft.changed.add("docs")
