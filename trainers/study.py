"""``toolenv study``: train a list of supervision methods on one model and data split, evaluate
each in distribution and on a format-OOD and a content-OOD variant, and write one comparison
table with plots.

A study file (TOML) is a training configuration (the sections of :mod:`trainers.config`,
optionally on top of a ``base`` file) plus a ``[study]`` table::

    [study]
    name = "paper-qwen2.5-1.5b"
    out_dir = "runs/study-paper"              # one folder per label: LABEL/train, LABEL/eval
    report_dir = ""                           # where the table and plots go (default: out_dir)
    base = "../paper_grpo_qwen2.5_1.5b.toml"  # optional training config, relative to this file
    methods = ["base", "vanilla", "sft_rl", "ops", "hbg", "ets", "ets_difflr", "prs"]
    train_apis = []                           # optional: train only on tasks involving these APIs

    [study.settings.prs]                      # optional, per label: the method's keys ("method"
    reflector = "builtin"                     # names it when the label is not a method name)

    [study.settings.sft_rl_hilr]              # a label of its own for a method with other settings;
    method = "sft_rl"                         # "config" overrides training-config sections for
    config = { optim = { lr = 1e-5 } }        # this label only (here: RL at 10x the paper's lr)

    [study.eval]
    categories = ["base", "miss_func", "miss_param", "long_context"]
    split = "test"
    limit = 0                                 # 0 = every task of the split
    apis = []                                 # optional: only tasks involving these APIs
    format_ood = "python_list_format"         # OOD specs (see `toolenv ood list`); "" = none
    content_ood = "rename_tools+rename_params+shuffle_schema"
    ood_seed = 0
    engine = "transformers"                   # or "vllm"
    max_new_tokens = 2048
    batch_size = 8

    [study.expected]                          # published in-distribution averages (%), shown beside ours
    vanilla = 3.50

The label ``base`` evaluates the starting model without training. Everything resumes: a method
whose phases are done is not trained again (:func:`trainers.supervision.run.run_method`), an
evaluation continues where it stopped, and the report is rebuilt from whatever is finished.
``out_dir`` and ``report_dir`` are relative to the current folder. A report never replaces one
with fewer finished labels, and ``--report-only`` refuses labels without a finished
evaluation (both checked before anything runs; ``--force`` overrides): run from another folder,
the committed tables were once overwritten with an empty one.

Outputs in ``report_dir``: ``results.md`` (the table), ``results.json``, ``results.csv`` and
``plots/``: ``scores.png`` (in distribution vs the two OOD variants, per method),
``structure.png`` (the four structural states of the training rollouts over RL steps),
``probes.png`` (the control-token probes over RL steps), ``eval_structure.png`` (the
structural states of the evaluation messages, in distribution and under each OOD variant; also
the second table of ``results.md``) and ``reward.png`` (reward and states of the
policy's own rollouts: OPS's substituted expert rollouts are left out).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tomllib
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

BASE_LABEL = "base"
STUDY_KEYS = ("name", "out_dir", "report_dir", "base", "methods", "train_apis", "settings", "eval", "expected")
STATES = ("healthy_call", "healthy_response", "text_pollution", "full_collapse")
PROBES = ("p_healthy", "p_eot", "p_repeat", "p_opener_start")
VARIANT_COLUMNS = ("format_ood", "content_ood")


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
    ("study.eval", "limit"): (0, False), ("study.eval", "ood_seed"): (0, False),
    ("study.eval", "max_new_tokens"): (1, False), ("study.eval", "batch_size"): (1, False),
}


@dataclass
class Study:
    name: str
    out_dir: Path
    report_dir: Path
    config: Any  # trainers.config.TrainConfig
    labels: list[str]
    methods: dict[str, Any]  # label → Method, or None for the base model
    evaluation: EvalSettings
    expected: dict[str, float]
    train_apis: list[str]
    source: str
    label_configs: dict[str, Any] = field(default_factory=dict)  # label → TrainConfig where overridden
    label_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # label → the override table

    def config_for(self, label: str) -> Any:
        """The training configuration of one label: the study's, or its ``config`` override."""
        return self.label_configs.get(label, self.config)

    def variants(self) -> dict[str, str]:
        """Column → OOD spec (columns whose spec is empty are left out)."""
        specs = {"format_ood": self.evaluation.format_ood, "content_ood": self.evaluation.content_ood}
        return {column: spec for column, spec in specs.items() if spec}


# -- reading ---------------------------------------------------------------------------------


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
    """Read and validate a study file (see the module docstring); one-line ``ValueError``s."""
    from trainers.config import _check_minimum, _check_value, config_from_dict
    from trainers.supervision.schedule import method_from_dict

    path = Path(path)
    data = _read_toml(path)
    table = data.pop("study", None)
    if not isinstance(table, dict):
        raise ValueError(f"{path}: a study file needs a [study] table")
    _check_keys(f"{path}: [study]", table, STUDY_KEYS)
    if table.get("base"):
        data = _merge(_read_toml((path.parent / str(table["base"])).resolve()), data)
    config = config_from_dict(data, str(path))
    labels = table.get("methods")
    if not isinstance(labels, list) or not labels or not all(isinstance(m, str) for m in labels):
        raise ValueError(f'{path}: [study] methods must be a non-empty list of labels, e.g. ["base", "vanilla", "prs"]')
    if len(set(labels)) != len(labels):
        raise ValueError(f"{path}: [study] methods lists a label twice")
    settings = table.get("settings", {})
    stray = sorted(set(settings) - set(labels))
    if stray:
        raise ValueError(f"{path}: [study.settings.{stray[0]}] names a label that is not in [study] methods")
    methods: dict[str, Any] = {}
    label_configs: dict[str, Any] = {}
    label_overrides: dict[str, dict[str, Any]] = {}
    for label in labels:
        if label == BASE_LABEL:
            methods[label] = None
            continue
        spec = {"method": label, **settings.get(label, {})}
        override = spec.pop("config", None)
        if override is not None:
            if not isinstance(override, dict) or not all(isinstance(v, dict) for v in override.values()):
                raise ValueError(f"{path}: [study.settings.{label}] config must be a table of training-config "
                                 "sections, e.g. config = { optim = { lr = 1e-5 } }")
            label_configs[label] = config_from_dict(_merge(data, override), f"{path} [study.settings.{label}.config]")
            label_overrides[label] = override
        try:
            methods[label] = method_from_dict(spec)
        except ValueError as exc:
            raise ValueError(f"{path}: {label}: {exc}") from None
    eval_table = dict(table.get("eval", {}))
    _check_keys(f"{path}: [study.eval]", eval_table, [f.name for f in EvalSettings.__dataclass_fields__.values()])
    hints = typing.get_type_hints(EvalSettings)
    for key, value in eval_table.items():  # the same type and range checks as the training config's
        eval_table[key] = _check_value(str(path), "study.eval", key, hints[key], value)
        _check_minimum(str(path), "study.eval", key, eval_table[key], EVAL_MINIMUM)
    evaluation = EvalSettings(**eval_table)
    if evaluation.engine not in ("transformers", "vllm"):
        raise ValueError(f"{path}: [study.eval] engine = {evaluation.engine!r}; valid: transformers, vllm")
    import ood_variants  # noqa: F401  (registers the variant provider)
    from toolenv.registration import check_variant_spec

    for spec in (evaluation.format_ood, evaluation.content_ood):
        if spec:
            try:
                check_variant_spec(spec)
            except ValueError as exc:
                raise ValueError(f"{path}: [study.eval] {exc}") from None
    name = str(table.get("name") or path.stem)
    out_dir = Path(table.get("out_dir") or f"runs/study-{name}")
    expected = {str(k): float(v) for k, v in table.get("expected", {}).items()}
    return Study(name, out_dir, Path(table.get("report_dir") or out_dir), config, list(labels), methods, evaluation,
                 expected, [str(a) for a in table.get("train_apis", [])], str(path), label_configs, label_overrides)


# -- running ---------------------------------------------------------------------------------


def _filter_apis(tasks: Sequence[Any], apis: Sequence[str]) -> list[Any]:
    if not apis:
        return list(tasks)
    wanted = set(apis)
    kept = [task for task in tasks if wanted & set(task.involved_classes)]
    if not kept:
        raise ValueError(f"no task involves {', '.join(sorted(wanted))}")
    return kept


def train_label(study: Study, label: str, log: Callable[[str], None]) -> Path:
    """Train one label's method (resumably); returns its final model folder."""
    from trainers.supervision.run import run_method
    from trainers.train import model_path, train_tasks

    method = study.methods[label]
    if method is None:
        return model_path(study.config.model.path)
    config = study.config_for(label)
    tasks = _filter_apis(train_tasks(config), study.train_apis) if study.train_apis else None
    return run_method(config, method, study.out_dir / label / "train", tasks=tasks, log=log)


def eval_tasks(study: Study) -> list[Any]:
    """The in-distribution evaluation tasks, then each OOD variant of them. With ``apis``, the
    tasks involving them are selected first and ``limit`` then applies to those (round-robin
    over the categories from a seeded shuffle of entry indices, as ``toolenv eval`` does)."""
    from toolenv.data import select_tasks
    from toolenv.registration import make_variant

    settings = study.evaluation
    pool = select_tasks(settings.categories, settings.split, apis=settings.apis or None,
                        limit=settings.limit or None, seed=study.config.run.seed)
    return pool + [make_variant(task, spec, settings.ood_seed) for spec in study.variants().values() for task in pool]


def evaluate_label(study: Study, label: str, model_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Evaluate one model (resumably) into ``OUT/LABEL/eval``; returns its report dict."""
    from evaluators.runner import (TRAJECTORIES, Progress, RunConfig, episode_key, finished_keys, prepare_run_dir,
                                   run_episodes, score_and_report)
    from toolenv.data import data_version
    from toolenv.models import load_model
    from toolenv.models.base import GenerationConfig
    from toolenv.trajectory import append_jsonl, read_jsonl

    settings = study.evaluation
    out = study.out_dir / label / "eval"
    rollout = study.config.rollout  # the same context budget as in training
    generation = GenerationConfig(max_new_tokens=settings.max_new_tokens, temperature=0.0,
                                  max_prompt_tokens=rollout.max_prompt_tokens + rollout.max_response_tokens)
    config = RunConfig(model=str(model_dir), call_format=study.config.data.call_format,
                       categories=tuple(settings.categories), split=settings.split, limit=settings.limit or None,
                       max_steps_per_turn=study.config.rollout.max_steps_per_turn, batch_size=settings.batch_size,
                       seed=study.config.run.seed, generation=generation.to_dict(), data_version=data_version(),
                       ood=tuple(study.variants().values()), ood_seed=settings.ood_seed)
    prepare_run_dir(out, config, f"toolenv study {study.source} ({label}; apis={settings.apis})")
    path = out / TRAJECTORIES
    tasks = eval_tasks(study)
    done = finished_keys(path)
    todo = [task for task in tasks if episode_key(task) not in done]
    if todo:
        model = load_model(str(model_dir), engine=settings.engine, generation=generation)
        bar = Progress(len(tasks), len(tasks) - len(todo), progress)
        run_episodes(model, todo, config, lambda t: (append_jsonl(path, [t]), bar.update(t.reward)))
        del model
    wanted = {episode_key(task) for task in tasks}
    trajectories = [t for t in read_jsonl(path) if episode_key(t) in wanted]
    meta = {"model": {"name": label, "path": str(model_dir)}, "call_format": config.call_format, "seed": config.seed,
            "ood": list(config.ood), "ood_seed": config.ood_seed, "command": f"toolenv study {study.source}",
            "data_version": config.data_version, "config": config.to_dict()}
    score_and_report(out, trajectories, meta)
    return json.loads((out / "report.json").read_text())


def finished_labels(study: Study) -> list[str]:
    """The labels whose evaluation is done (``OUT/LABEL/eval/report.json`` exists)."""
    return [label for label in study.labels if (study.out_dir / label / "eval" / "report.json").is_file()]


def reported_labels(study: Study) -> list[str]:
    """The labels with numbers in the report already in ``report_dir`` (none when there is no
    report). A report that cannot be read is refused: it may be all that is left of a run."""
    path = study.report_dir / "results.json"
    if not path.exists():
        if (study.report_dir / "results.md").exists():
            raise ValueError(f"{study.report_dir} holds results.md but no results.json, so it cannot be compared with "
                             "the new table; move it away or pass --force to overwrite it")
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        return [str(row["label"]) for row in rows if row.get("id") is not None]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a study report (unreadable rows); move it away or pass --force to "
                         "overwrite it") from None


def check_report_keeps(study: Study, finished: Sequence[str]) -> None:
    """Refuse to replace a report with one that has fewer finished labels: the committed
    tables were once overwritten with an empty one by a run whose out_dir did not exist."""
    lost = [label for label in reported_labels(study) if label not in finished]
    if lost:
        raise ValueError(f"refusing to overwrite {study.report_dir}: it has results for {', '.join(lost)}, which "
                         f"{study.out_dir} lacks (no LABEL/eval/report.json); run them first, point [study] out_dir "
                         "at their runs, or pass --force to replace the table anyway")


def run_study(study: Study, only: Sequence[str] | None = None, report_only: bool = False,
              log: Callable[[str], None] | None = None, force: bool = False) -> Path:
    """Train and evaluate every label (or those in ``only``), then write the report. With
    ``report_only`` the report is rebuilt from the finished runs, and refused when a selected
    label has none; a report with fewer finished labels than the one in ``report_dir`` is
    refused before anything runs. ``force`` lifts both refusals."""
    say = log or (lambda text: print(f"[study] {text}", file=sys.stderr, flush=True))
    unknown = sorted(set(only or ()) - set(study.labels))
    if unknown:
        raise ValueError(f"unknown label(s) {', '.join(unknown)}; this study has: {', '.join(study.labels)}")
    selected = [label for label in study.labels if not only or label in only]
    finished = finished_labels(study)
    if report_only and not force:
        missing = [label for label in selected if label not in finished]
        if missing:
            # the usual cause: a relative out_dir read from another folder than the one the runs were made in
            where = "" if study.out_dir.is_absolute() else f"; out_dir is relative to the current folder {Path.cwd()}"
            raise ValueError(f"--report-only: no finished evaluation for {', '.join(missing)} in {study.out_dir} "
                             f"(LABEL/eval/report.json{where}); run `toolenv study "
                             f"{study.source}` to produce them, or pass --force to write a table without them")
    if not force:
        # checked before training too: finding out after hours of training would be too late
        check_report_keeps(study, finished if report_only else sorted(set(finished) | set(selected)))
    if not report_only:
        check_study_sizes(study, selected)
        for label in selected:
            say(f"{label}: training")
            final = train_label(study, label, say)
            say(f"{label}: evaluating {final}")
            evaluate_label(study, label, final)
    return write_report(study, force=force)


def check_study_sizes(study: Study, labels: Sequence[str]) -> None:
    """On a CPU, refuse labels whose training relies on the paper's GPU-sized defaults
    (:func:`trainers.config.check_cpu_sizes`); the method decides its phases' epochs (and, for
    interleaved methods, steps), so those keys do not count."""
    from trainers.config import check_cpu_sizes
    from trainers.supervision.schedule import phase_plan
    from trainers.train import resolve_device

    for label in labels:
        method = study.methods[label]
        config = study.config_for(label)
        if method is None or resolve_device(config.model.device).type != "cpu":
            continue
        modes = sorted({"grpo" if phase.kind == "rl" else "sft" for phase in phase_plan(method, config.grpo.steps)})
        decided = {"sft.epochs"} | ({"grpo.steps"} if hasattr(method, "phases") else set())
        try:
            check_cpu_sizes(config, modes, decided)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None


# -- the report --------------------------------------------------------------------------------


def _percent(value: Any) -> float | None:
    return None if value is None else round(100.0 * float(value), 2)


def label_row(study: Study, label: str) -> dict[str, Any]:
    """One row of the table from the label's evaluation report (empty when not evaluated)."""
    method = study.methods[label]
    row: dict[str, Any] = {"label": label, "method": method.name if method else "base",
                           "scheme": method.scheme if method else "—", "expected_id": study.expected.get(label)}
    report_file = study.out_dir / label / "eval" / "report.json"
    if not report_file.exists():
        return row
    report = json.loads(report_file.read_text())
    summary = report.get("summary", report)
    categories = summary.get("categories", {})
    for category in study.evaluation.categories:
        row[category] = _percent(categories.get(category, {}).get("accuracy"))
    row["id"] = _percent(summary.get("overall"))
    variants = {v["spec"]: v for v in report.get("ood", {}).get("variants", [])}
    row["structure"] = summary.get("structure", {})
    row["failures"] = summary.get("failures", {})
    for column, spec in study.variants().items():
        variant = variants.get(spec, {})
        row[column] = _percent(variant.get("overall"))
        row[f"structure_{column}"] = variant.get("structure", {})
        row[f"failures_{column}"] = variant.get("failures", {})
    return row


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def table_markdown(study: Study, rows: Sequence[dict[str, Any]]) -> str:
    columns = list(study.evaluation.categories) + ["id"] + list(study.variants()) + ["expected_id"]
    names = {"id": "ID avg", "format_ood": f"format OOD ({study.evaluation.format_ood})",
             "content_ood": f"content OOD ({study.evaluation.content_ood})", "expected_id": "paper ID avg"}
    lines = [f"# Study {study.name}", "",
             f"Accuracy (%) per method: in distribution ({study.evaluation.split} split"
             f"{', ' + str(study.evaluation.limit) + ' tasks' if study.evaluation.limit else ''}"
             f"{', APIs ' + ', '.join(study.evaluation.apis) if study.evaluation.apis else ''}), and the same tasks as OOD variants "
             f"(seed {study.evaluation.ood_seed}). ID avg = unweighted mean of the categories. Source: `{study.source}`.", "",
             "| method | scheme | " + " | ".join(names.get(c, c) for c in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for row in rows:
        lines.append(f"| {row['label']} | {row['scheme']} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines + [""] + structure_markdown(study, rows)) + "\n"


def _structure_keys(study: Study) -> list[tuple[str, str, str]]:
    """(column name, structure key, failures key) for in distribution and each variant."""
    names = {"format_ood": "format OOD", "content_ood": "content OOD"}
    return [("ID", "structure", "failures")] + [(names[c], f"structure_{c}", f"failures_{c}") for c in study.variants()]


def structure_markdown(study: Study, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The second table: how the evaluation messages were built (the paper's four structural
    states, shares of assistant messages) and how the episodes ended, per method and column.
    Where every score is zero this is what tells the methods apart."""
    keys = _structure_keys(study)
    short = {"healthy_call": "call", "healthy_response": "reply", "text_pollution": "polluted", "full_collapse": "collapsed"}
    lines = ["Structural state of the evaluation messages (share of assistant messages: healthy call / healthy "
             "reply / text pollution / full collapse), the episodes' failure kinds, and how far the RL phases "
             "moved the weights (||Δθ|| / ||θ||):", "",
             "| method | " + " | ".join(f"{name} {' / '.join(short.values())}" for name, _, _ in keys)
             + " | " + " | ".join(f"{name} failures" for name, _, _ in keys) + " | RL weight change |",
             "|---|" + "---:|" * len(keys) + "---|" * len(keys) + "---:|"]
    for row in rows:
        change = row.get("rl_weight_change")
        moved = "—" if change is None else f"{change:.1e}"
        if "id" not in row:
            lines.append(f"| {row['label']} | " + " | ".join("—" for _ in range(2 * len(keys))) + f" | {moved} |")
            continue
        shares = [" / ".join(f"{row.get(sk, {}).get(state, 0.0):.2f}" for state in short) for _, sk, _ in keys]
        ends = [", ".join(f"{kind} {count}" for kind, count in row.get(fk, {}).items()) or "—" for _, _, fk in keys]
        lines.append(f"| {row['label']} | " + " | ".join(shares) + " | " + " | ".join(ends) + f" | {moved} |")
    return lines


def policy_step_metrics(run_dir: Path, step: int) -> dict[str, float]:
    """Reward and structural-state rates of one RL step over the *policy* rollouts only, from
    ``rollouts/step_N.jsonl`` (the trainer's own metrics include OPS's substituted expert
    rollouts, whose reward is 1 and whose messages are all healthy)."""
    path = run_dir / "rollouts" / f"step_{step:06d}.jsonl"
    if not path.exists():
        return {}
    rewards: list[float] = []
    states: dict[str, int] = {state: 0 for state in STATES}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("source", "policy") == "ground_truth":
            continue
        rewards.append(float(record.get("reward", 0.0)))
        for turn in record.get("turns", []):
            for step_record in turn.get("steps", []):
                if step_record.get("structure") in states:
                    states[step_record["structure"]] += 1
    messages = sum(states.values())
    out = {"policy/reward": sum(rewards) / len(rewards)} if rewards else {}
    if messages:
        out.update({f"policy_state/{state}": count / messages for state, count in states.items()})
    return out


def training_curves(study: Study, label: str) -> list[dict[str, Any]]:
    """The label's RL metrics rows with ``rl_step`` counted across its RL phases, plus the
    policy-only reward and structural states of each step (:func:`policy_step_metrics`)."""
    from trainers.monitor import read_metrics

    train_dir = study.out_dir / label / "train"
    rows: list[dict[str, Any]] = []
    offset = 0
    for phase in sorted(p for p in train_dir.glob("*-rl") if p.is_dir()):
        phase_rows = [r for r in read_metrics(phase) if r.get("step", 0) > 0 and "reward/mean" in r]
        for r in phase_rows:
            rows.append({**r, **policy_step_metrics(phase, int(r["step"])), "rl_step": offset + int(r["step"]),
                         "phase": phase.name})
        offset += max((int(r["step"]) for r in phase_rows), default=0)
    return rows


def _safetensors(folder: Path) -> dict[str, Any] | None:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    weights: dict[str, Any] = {}
    for file in files:
        weights.update(load_file(str(file)))
    return weights


def rl_weight_change(study: Study, label: str) -> float | None:
    """How far the label's RL phases moved the weights: sqrt(Σ over RL phases of
    ||θ_end − θ_start||²) / ||θ_start|| of the first, from each phase's starting model (its
    ``config.json`` [model] path) and its ``final/``. None where a phase is unfinished or its
    weights are not safetensors. It tells a policy that was really updated from one whose
    structure only varied with the sampled task (flat groups leave nothing but the KL term)."""
    from trainers.train import model_path

    train_dir = study.out_dir / label / "train"
    phases = sorted(p for p in train_dir.glob("*-rl") if p.is_dir())
    if not phases:
        return None
    squared, reference = 0.0, None
    for phase in phases:
        try:
            start = model_path(json.loads((phase / "config.json").read_text())["model"]["path"])
        except (OSError, ValueError, KeyError):
            return None
        before, after = _safetensors(start), _safetensors(phase / "final")
        if before is None or after is None or set(before) != set(after):
            return None
        squared += sum(float(((after[k].double() - before[k].double()) ** 2).sum()) for k in before)
        if reference is None:
            reference = sum(float((before[k].double() ** 2).sum()) for k in before) ** 0.5
    return squared ** 0.5 / reference if reference else None


def write_report(study: Study, force: bool = False) -> Path:
    """Write the table (Markdown, JSON, CSV) and the plots; returns the Markdown file. Unless
    ``force``, a report in ``report_dir`` with finished labels this one lacks is kept (one-line
    ``ValueError``). The files are built in a scratch folder and moved in at the end, so a
    failure half-way leaves the old report whole."""
    import os
    import shutil

    rows = [label_row(study, label) for label in study.labels]
    if not force:
        check_report_keeps(study, [row["label"] for row in rows if row.get("id") is not None])
    for row in rows:
        if study.methods[row["label"]] is not None:
            row["rl_weight_change"] = rl_weight_change(study, row["label"])
    final = study.report_dir
    out = final.parent / f".{final.name}.partial"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        _write_report_files(study, rows, out)
        final.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            target = final / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return final / "results.md"


def _write_report_files(study: Study, rows: list[dict[str, Any]], out: Path) -> None:
    (out / "results.md").write_text(table_markdown(study, rows))
    curves = {label: training_curves(study, label) for label in study.labels if study.methods[label] is not None}
    (out / "results.json").write_text(json.dumps({
        "study": study.name, "source": study.source, "eval": asdict(study.evaluation), "expected": study.expected,
        "methods": {label: (study.methods[label].to_dict() if study.methods[label] else None) for label in study.labels},
        "config_overrides": study.label_overrides,
        "rows": rows,
        "curves": {label: [{k: v for k, v in r.items() if k in ("rl_step", "phase", "reward/mean", "policy/reward")
                            or k.startswith(("state/", "policy_state/", "probe/"))}
                           for r in rows_] for label, rows_ in curves.items()},
    }, indent=1))
    columns = ["label", "method", "scheme"] + list(study.evaluation.categories) + ["id"] + list(study.variants()) + ["expected_id"]
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot_study(study, rows, curves, out / "plots")


def plot_study(study: Study, rows: Sequence[dict[str, Any]], curves: dict[str, list[dict[str, Any]]], folder: Path) -> list[Path]:
    """The study's plots (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    labels = [r["label"] for r in rows]
    columns = ["id"] + list(study.variants())
    names = {"id": "in distribution", "format_ood": "format OOD", "content_ood": "content OOD"}
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels)), 4))
    width = 0.8 / len(columns)
    for k, column in enumerate(columns):
        values = [r.get(column) or 0.0 for r in rows]
        ax.bar([i + (k - (len(columns) - 1) / 2) * width for i in range(len(rows))], values, width, label=names[column])
    expected = [(i, r["expected_id"]) for i, r in enumerate(rows) if r.get("expected_id") is not None]
    if expected:
        ax.scatter([i for i, _ in expected], [v for _, v in expected], marker="*", s=120, color="black", zorder=3,
                   label="paper (ID avg)")
    ax.set_xticks(range(len(rows)), labels, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{study.name}: score per method, in distribution vs OOD")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(folder / "scores.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    written.append(plot_eval_structure(study, rows, folder / "eval_structure.png"))
    panels = {
        "structure": ("structural states of the policy's training messages", [f"policy_state/{s}" for s in STATES]),
        "probes": ("control-token probes after the call opener, and of the opener at message starts", [f"probe/{p}" for p in PROBES]),
        "reward": ("training reward of the policy's rollouts", ["policy/reward"]),
    }
    for name, (title, keys) in panels.items():
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
        for ax, key in zip(axes[0], keys):
            for label, series in curves.items():
                points = [(r["rl_step"], r[key]) for r in series if isinstance(r.get(key), (int, float))]
                if points:
                    ax.plot([p for p, _ in points], [v for _, v in points], marker=".", label=label)
            ax.set_title(key.split("/", 1)[1], fontsize=10)
            ax.set_xlabel("RL step (all phases)")
        if axes[0][0].lines:
            axes[0][0].legend(fontsize=7)
        else:
            axes[0][0].text(0.5, 0.5, "no data yet", ha="center", transform=axes[0][0].transAxes)
        fig.suptitle(f"{study.name}: {title}")
        fig.tight_layout()
        written.append(folder / f"{name}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def plot_eval_structure(study: Study, rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Stacked bars: the structural states of each method's evaluation messages, in
    distribution and under each OOD variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = _structure_keys(study)
    colours = {"healthy_call": "tab:green", "healthy_response": "tab:blue", "text_pollution": "tab:orange",
               "full_collapse": "tab:red"}
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(rows)), 4))
    width = 0.8 / len(keys)
    for k, (name, structure_key, _) in enumerate(keys):
        xs = [i + (k - (len(keys) - 1) / 2) * width for i in range(len(rows))]
        bottom = [0.0] * len(rows)
        for state, colour in colours.items():
            values = [float(r.get(structure_key, {}).get(state, 0.0)) for r in rows]
            ax.bar(xs, values, width * 0.92, bottom=bottom, color=colour, label=state if k == 0 else None,
                   hatch=("", "//", "..")[k % 3], edgecolor="white", linewidth=0.4)
            bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=20)
    ax.set_ylabel("share of assistant messages")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{study.name}: evaluation messages by state (bars: " + ", ".join(n for n, _, _ in keys)
                 + "; hatching marks the OOD bars)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- command line ------------------------------------------------------------------------------


def _cmd_study(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    path = run_study(study, only=args.only, report_only=args.report_only, force=args.force)
    print(path)
    print(path.read_text())
    return 0


def add_study_command(commands: "argparse._SubParsersAction[Any]") -> None:
    """Register ``toolenv study STUDY.toml [--only LABEL …] [--report-only] [--force]``."""
    from trainers.cli import DefaultsHelpFormatter

    parser = commands.add_parser("study", help="train and evaluate a list of supervision methods; one comparison table",
                                 description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    parser.add_argument("study", help="the study file (TOML), e.g. recipes/study_smollm2_cpu/study.toml; its "
                        "[study] out_dir and report_dir are relative to the current folder")
    parser.add_argument("--only", nargs="+", metavar="LABEL",
                        help="train and evaluate only these labels (default: every label in [study] methods)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: rebuild the table and plots from the finished runs in [study] out_dir "
                        "(refused when a label has none)")
    parser.add_argument("--force", action="store_true",
                        help="write the report even when labels are unfinished or it replaces a report in "
                        "[study] report_dir that has more finished labels")
    parser.set_defaults(handler=_cmd_study)
