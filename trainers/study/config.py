"""Reading a study file: the ``[study]`` table on top of a training configuration (see
:mod:`trainers.study` for the format); one-line ``ValueError``s."""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from toolenv.inference import ENGINE_ALIASES, ENGINES, canonical_engine
from trainers.config import TrainConfig, check_minimum, check_value, config_from_dict
from trainers.study.curriculum import Curriculum
from trainers.supervision.method import Method
from trainers.supervision.schedule import method_from_dict

BASE_LABEL = "base"
STUDY_KEYS = (
    "name",
    "out_dir",
    "report_dir",
    "base",
    "methods",
    "train_apis",
    "settings",
    "eval",
    "expected",
    "curriculum",
)


@dataclass
class EvalSettings:
    categories: list[str] = field(default_factory=lambda: ["base", "miss_func", "miss_param", "long_context"])
    split: str = "test"
    limit: int = 0
    apis: list[str] = field(default_factory=list)
    format_ood: str = "python_list_format"
    content_ood: str = "rename_tools+rename_params+shuffle_schema"
    ood_seed: int = 0
    engine: str = "transformers"
    max_new_tokens: int = 2048
    batch_size: int = 8


#: the lowest value of each numeric [study.eval] key (see trainers.config._MINIMUM)
EVAL_MINIMUM: dict[tuple[str, str], tuple[float, bool]] = {
    ("study.eval", "limit"): (0, False),
    ("study.eval", "ood_seed"): (0, False),
    ("study.eval", "max_new_tokens"): (1, False),
    ("study.eval", "batch_size"): (1, False),
}


@dataclass
class Study:
    name: str
    out_dir: Path
    report_dir: Path
    config: TrainConfig
    labels: list[str]
    methods: dict[str, Method | None]  # label → method; None for the base model
    evaluation: EvalSettings
    expected: dict[str, float]
    train_apis: list[str]
    source: str
    label_configs: dict[str, TrainConfig] = field(default_factory=dict)  # label → its config where overridden
    label_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # label → the override table
    #: ``[study.curriculum]``: training and evaluation run on these cut tasks (None: the full tasks)
    curriculum: Curriculum | None = None

    def config_for(self, label: str) -> TrainConfig:
        """The training configuration of one label: the study's, or its ``config`` override."""
        return self.label_configs.get(label, self.config)

    def variants(self) -> dict[str, str]:
        """Column → OOD spec (columns whose spec is empty are left out)."""
        specs = {"format_ood": self.evaluation.format_ood, "content_ood": self.evaluation.content_ood}
        return {column: spec for column, spec in specs.items() if spec}


def structure_keys(study: Study) -> list[tuple[str, str, str]]:
    """(column name, structure key, failures key) for in distribution and each variant."""
    names = {"format_ood": "format OOD", "content_ood": "content OOD"}
    return [("ID", "structure", "failures")] + [(names[c], f"structure_{c}", f"failures_{c}") for c in study.variants()]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no study file at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Section-wise merge of two training configurations (``over`` wins key by key)."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in over.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _check_keys(where: str, table: dict[str, Any], valid: Sequence[str]) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def load_study(path: str | Path) -> Study:
    """Read and validate a study file (see :mod:`trainers.study`); one-line ``ValueError``s."""
    path = Path(path)
    data = _read_toml(path)
    table = data.pop("study", None)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: a study file needs a [study] table")
    _check_keys(f"{path}: [study]", table, STUDY_KEYS)
    if table.get("base"):
        data = _merge(_read_toml((path.parent / str(table["base"])).resolve()), data)
    config = config_from_dict(data, str(path))
    labels = _labels(path, table)
    methods, label_configs, label_overrides = _label_methods(path, data, labels, table.get("settings", {}))
    evaluation = _eval_settings(path, dict(table.get("eval", {})))
    name = str(table.get("name") or path.stem)
    out_dir = Path(table.get("out_dir") or f"runs/study-{name}")
    expected = {str(k): float(v) for k, v in table.get("expected", {}).items()}
    return Study(
        name,
        out_dir,
        Path(table.get("report_dir") or out_dir),
        config,
        list(labels),
        methods,
        evaluation,
        expected,
        [str(a) for a in table.get("train_apis", [])],
        str(path),
        label_configs,
        label_overrides,
        _curriculum(path, table.get("curriculum")),
    )


def _curriculum(path: Path, table: Any) -> Curriculum | None:
    """``[study.curriculum]`` as a :class:`Curriculum` (None when absent); one-line errors."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [study.curriculum] must be a table (turns, max_tools, apis, categories)")
    try:
        return Curriculum.from_dict(dict(table))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: [study.curriculum] {exc}") from None


def _labels(path: Path, table: dict[str, Any]) -> list[str]:
    labels = table.get("methods")
    if not isinstance(labels, list) or not labels or not all(isinstance(m, str) for m in labels):
        raise ValueError(f'{path}: [study] methods must be a non-empty list of labels, e.g. ["base", "vanilla", "prs"]')
    if len(set(labels)) != len(labels):
        raise ValueError(f"{path}: [study] methods lists a label twice")
    stray = sorted(set(table.get("settings", {})) - set(labels))
    if stray:
        raise ValueError(f"{path}: [study.settings.{stray[0]}] names a label that is not in [study] methods")
    return labels


def _label_methods(
    path: Path, data: dict[str, Any], labels: Sequence[str], settings: dict[str, Any]
) -> tuple[dict[str, Method | None], dict[str, TrainConfig], dict[str, dict[str, Any]]]:
    """Each label's method (``[study.settings.LABEL]``), and the training configs of the labels
    that override sections of it (``config = {...}``) with those override tables."""
    methods: dict[str, Method | None] = {}
    label_configs: dict[str, TrainConfig] = {}
    label_overrides: dict[str, dict[str, Any]] = {}
    for label in labels:
        if label == BASE_LABEL:
            methods[label] = None
            continue
        spec = {"method": label, **settings.get(label, {})}
        override = spec.pop("config", None)
        if override is not None:
            if not isinstance(override, dict) or not all(isinstance(v, dict) for v in override.values()):
                raise ValueError(
                    f"{path}: [study.settings.{label}] config must be a table of training-config "
                    "sections, e.g. config = { optim = { lr = 1e-5 } }"
                )
            label_configs[label] = config_from_dict(_merge(data, override), f"{path} [study.settings.{label}.config]")
            label_overrides[label] = override
        try:
            methods[label] = method_from_dict(spec)
        except ValueError as exc:
            raise ValueError(f"{path}: {label}: {exc}") from None
    return methods, label_configs, label_overrides


def _eval_settings(path: Path, eval_table: dict[str, Any]) -> EvalSettings:
    _check_keys(f"{path}: [study.eval]", eval_table, [f.name for f in EvalSettings.__dataclass_fields__.values()])
    hints = typing.get_type_hints(EvalSettings)
    for key, value in eval_table.items():  # the same type and range checks as the training config's
        eval_table[key] = check_value(str(path), "study.eval", key, hints[key], value)
        check_minimum(str(path), "study.eval", key, eval_table[key], EVAL_MINIMUM)
    evaluation = EvalSettings(**eval_table)
    if evaluation.engine not in ENGINES + tuple(ENGINE_ALIASES):
        raise ValueError(f"{path}: [study.eval] engine = {evaluation.engine!r}; valid: transformers, vllm")
    evaluation.engine = canonical_engine(evaluation.engine)
    from toolenv.registration import check_variant_spec

    for spec in (evaluation.format_ood, evaluation.content_ood):
        if spec:
            try:
                check_variant_spec(spec)
            except ValueError as exc:
                raise ValueError(f"{path}: [study.eval] {exc}") from None
    return evaluation
