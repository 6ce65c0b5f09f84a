"""The named transforms, the spec string parser and the variant builder.

A spec is transform names joined by ``+``, applied left to right: ``rename_tools+shuffle_schema
+python_list_format``. A name may carry an option after a colon (``rename_tools:opaque``);
without one, the option is drawn from the seed (once per spec and seed, the same for every
task, so a variant has one style). A variant is named by its spec and seed.

Determinism: each transform's ``random.Random`` is seeded from SHA-256 of (normalised spec,
seed, task id, position in the spec), so a variant depends on nothing else: not on task order,
not on which other tasks are generated, not on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from ood_variants import format_grid
from ood_variants import transforms as t
from ood_variants.draft import Draft
from ood_variants.naming import PARAM_STYLES, TOOL_STYLES
from ood_variants.values import perturb_values
from toolenv.data import Task
from toolenv.formats import CODECS
from toolenv.seeding import derived_rng

Apply = Callable[[Draft, random.Random, "str | None"], None]


@dataclass(frozen=True)
class Transform:
    """A named transform: ``kind`` is ``content`` or ``format``; at most one transform of each
    ``group`` may appear in a spec (two call formats, or two renamings of tools, contradict)."""

    name: str
    kind: str
    group: str
    summary: str
    apply: Apply
    options: tuple[str, ...] = ()
    fixed: str | None = None  # the option a fixed-style alias always uses
    #: an open option grammar instead of ``options``: the option's canonical text, or a
    #: one-line ``ValueError`` (``bfcl_format``'s configuration strings)
    parse_option: Callable[[str], str] | None = None
    #: the options to draw from when none is given, by release (for an open grammar)
    draw_options: Callable[[str], tuple[str, ...]] | None = None
    #: the option alone names the step: a spec token that parses as its option stands for it
    bare: bool = False
    #: how ``describe`` names an open option
    option_help: str = ""

    def describe(self) -> str:
        if self.parse_option is not None:
            return f"{self.name}[:{self.option_help}]"
        return f"{self.name}[:{'|'.join(self.options)}]" if self.options and self.fixed is None else self.name

    def choices(self, release: str) -> tuple[str, ...]:
        """What a step without an option draws from (the same for every task of a release)."""
        return self.options or (self.draw_options(release) if self.draw_options is not None else ())


def _registry() -> dict[str, Transform]:
    items = [
        Transform(
            "rename_tools",
            "content",
            "tool_names",
            "new tool names (synonyms, paraphrase, opaque codes, naming styles)",
            t.rename_tools,
            TOOL_STYLES,
        ),
        Transform(
            "rename_params",
            "content",
            "param_names",
            "new parameter names (synonyms, opaque codes, camelCase)",
            t.rename_params,
            PARAM_STYLES,
        ),
        Transform(
            "shuffle_schema",
            "content",
            "schema_order",
            "tool, parameter, JSON key, required and enum order shuffled",
            t.shuffle_schema,
        ),
        Transform(
            "rewrite_descriptions",
            "content",
            "descriptions",
            "descriptions paraphrased, truncated or dropped",
            t.rewrite_descriptions,
            ("paraphrase", "truncate", "drop"),
        ),
        Transform(
            "add_distractors",
            "content",
            "distractors",
            "non-callable extra tools (other APIs or near-duplicates)",
            t.add_distractors,
            ("other_api", "near_duplicate"),
        ),
        Transform(
            "perturb_values",
            "content",
            "values",
            "file/folder and user names replaced in scenario, turns and ground truth",
            perturb_values,
        ),
        Transform(
            "drop_types",
            "content",
            "types",
            "argument types (and the phrases stating them) removed from the docs",
            t.drop_types,
            ("all", "some"),
        ),
        Transform("call_format", "format", "call_format", "another call format (codec)", t.call_format, tuple(CODECS)),
        Transform(
            "doc_style",
            "format",
            "docs",
            "tool docs written as JSON, YAML-like text or Python signatures",
            t.doc_style,
            ("json", "yaml", "python"),
        ),
        Transform(
            "tools_in_user",
            "format",
            "tools_in",
            "tools in the first user message, not the system prompt",
            t.tools_in_user,
        ),
        Transform(
            "result_style",
            "format",
            "results",
            "tool results wrapped as JSON, plain text or tags",
            t.result_style,
            ("json", "plain", "tagged"),
        ),
        Transform(
            format_grid.TRANSFORM,
            "format",
            "call_format",
            "a BFCL V4 format-sensitivity configuration: return format, tool-call tag, doc format, layout, wording",
            format_grid.bfcl_format,
            parse_option=format_grid.normalize_config,
            draw_options=format_grid.official_configs,
            bare=True,
            option_help="CONFIG",
        ),
    ]
    registry = {item.name: item for item in items}
    # fixed-style aliases: the names users reach for first
    aliases = {f"{'python_list' if c == 'python' else c}_format": ("call_format", c) for c in CODECS}
    aliases.update({f"{s}_docs": ("doc_style", s) for s in ("json", "yaml", "python")})
    aliases.update({f"{s}_results": ("result_style", s) for s in ("json", "plain", "tagged")})
    aliases.update(
        {
            "paraphrase_descriptions": ("rewrite_descriptions", "paraphrase"),
            "truncate_descriptions": ("rewrite_descriptions", "truncate"),
            "drop_descriptions": ("rewrite_descriptions", "drop"),
            "opaque_tool_names": ("rename_tools", "opaque"),
        }
    )
    for alias, (target, option) in aliases.items():
        base = registry[target]
        registry[alias] = Transform(
            alias, base.kind, base.group, f"{base.summary.split(' (')[0]}: {option}", base.apply, base.options, option
        )
    return registry


TRANSFORMS: dict[str, Transform] = _registry()


def valid_names() -> str:
    return ", ".join(item.describe() for item in TRANSFORMS.values())


@dataclass(frozen=True)
class TransformStep:
    transform: Transform
    option: str | None

    @property
    def text(self) -> str:
        if self.transform.bare and self.option:
            return self.option
        return self.transform.name + (f":{self.option}" if self.option and self.transform.fixed is None else "")


def parse_spec(spec: str) -> tuple[TransformStep, ...]:
    """The steps of a spec; a one-line ``ValueError`` listing the valid names when a name or
    option is unknown, or when two transforms of one group are composed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty OOD spec; valid transforms: {valid_names()}")
    steps, groups = [], {}
    for token in (part.strip() for part in spec.split("+")):
        name, _, option = token.partition(":")
        name, option = name.strip(), option.strip() or None
        if option is None and format_grid.looks_like_config(name):  # a configuration string alone
            name, option = format_grid.TRANSFORM, name
        transform = TRANSFORMS.get(name)
        if transform is None:
            raise ValueError(f"unknown OOD transform {name!r} in {spec!r}; valid: {valid_names()}")
        if option is not None and transform.parse_option is not None:
            option = transform.parse_option(option)  # its own one-line error (a grammar)
        elif option is not None and (transform.fixed is not None or option not in transform.options):
            allowed = "none" if transform.fixed is not None or not transform.options else "|".join(transform.options)
            raise ValueError(
                f"unknown option {option!r} for OOD transform {name!r} (options: {allowed}); valid: {valid_names()}"
            )
        if transform.group in groups:
            raise ValueError(
                f"incompatible OOD spec {spec!r}: {groups[transform.group]!r} and {name!r} both set "
                f"{transform.group}; use one; valid: {valid_names()}"
            )
        groups[transform.group] = name
        steps.append(TransformStep(transform, transform.fixed or option))
    return tuple(steps)


def normalize_spec(spec: str) -> str:
    """The canonical text of a spec (``" rename_tools + shuffle_schema"`` → ``"rename_tools+shuffle_schema"``)."""
    return "+".join(step.text for step in parse_spec(spec))


def check_spec(spec: str) -> None:
    parse_spec(spec)


def make_variant(task: Task, spec: str, seed: int = 0) -> Task:
    """The variant of an official ``task`` named by ``spec`` and ``seed`` (see module docstring)."""
    return build_draft(task, spec, seed).build(normalize_spec(spec), int(seed))


def build_draft(task: Task, spec: str, seed: int = 0) -> Draft:
    """The transformed draft (it also records the value replacements, for validation)."""
    steps = parse_spec(spec)
    name = "+".join(step.text for step in steps)
    draft = Draft.from_task(task)
    for position, step in enumerate(steps):
        option = step.option
        choices = step.transform.choices(task.release) if option is None else ()
        if choices:  # one style per (spec, seed), for every task
            option = derived_rng(name, seed, position, "style").choice(choices)
        step.transform.apply(draft, derived_rng(name, seed, task.id, position), option)
    return draft


def make_variants(tasks: list[Task], spec: str, seed: int = 0) -> list[Task]:
    return [make_variant(task, spec, seed) for task in tasks]


def codec(name: str) -> type | None:
    """The codec of a call format this package defines (a BFCL V4 format-grid configuration
    string), registered on first use; ``None`` for any other name. The core's
    ``get_codec`` asks here for names it does not know (``toolenv.registration``)."""
    try:
        return CODECS[format_grid.register_codec(name)]
    except ValueError:
        return None
