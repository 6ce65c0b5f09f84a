"""The study's report: one row per label from its evaluation, the two Markdown tables, the
training curves from the RL phases' records, the weight change, and the files written to
``report_dir`` (never replacing a report that has more finished labels). A row whose run is
gone (a fresh machine) but whose settings are those of the row already in ``report_dir`` is
carried over from that report, marked, so that a study runs across sittings."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from envs._official import selected_version
from toolenv.data import data_version
from toolenv.structure import STATES
from trainers.records import read_step
from trainers.study.config import Study, structure_keys
from trainers.study.plots import plot_study


def finished_labels(study: Study) -> list[str]:
    """The labels whose evaluation is done (``OUT/LABEL/eval/report.json`` exists)."""
    return [label for label in study.labels if (study.out_dir / label / "eval" / "report.json").is_file()]


def reported_labels(study: Study) -> list[str]:
    """The labels with numbers in the report already in ``report_dir`` (none when there is no
    report). A report that cannot be read is refused: it may be all that is left of a run."""
    path = study.report_dir / "results.json"
    if not path.exists():
        if (study.report_dir / "results.md").exists():
            raise ValueError(
                f"{study.report_dir} holds results.md but no results.json, so it cannot be compared with "
                "the new table; move it away or pass --force to overwrite it"
            )
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        return [str(row["label"]) for row in rows if row.get("id") is not None]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"{path} is not a study report (unreadable rows); move it away or pass --force to overwrite it"
        ) from None


#: config keys added after reports began to record fingerprints, with their defaults. A key
#: at its default is left out of the fingerprint, so a row made before the key existed (when
#: the trainer behaved as the default does) still matches and is carried.
ADDED_KEYS: dict[tuple[str, str], Any] = {("grpo", "first_step"): 1}


def _fingerprinted_config(config: dict[str, Any]) -> dict[str, Any]:
    for (section, key), default in ADDED_KEYS.items():
        if config.get(section, {}).get(key) == default:
            config[section].pop(key)
    return config


def settings_fingerprint(study: Study, label: str) -> str:
    """sha256 of everything that decides a label's numbers: its training config (seed
    included), its method, the evaluation settings, the curriculum and the data release."""
    method = study.methods[label]
    settings = {
        "config": _fingerprinted_config(study.config_for(label).to_dict()),
        "method": method.to_dict() if method else None,
        "eval": asdict(study.evaluation),
        "curriculum": asdict(study.curriculum) if study.curriculum is not None else None,
        "data_release": selected_version(),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def carried_rows(study: Study, finished: Sequence[str]) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """label → (row, curves) from the report in ``report_dir``, for the labels not in
    ``finished`` whose row there has numbers and was made with the same settings
    (:func:`settings_fingerprint`). Rows written before reports recorded the fingerprint are
    not carried."""
    reported = reported_labels(study)  # refuses an unreadable report
    if not reported:
        return {}
    data = json.loads((study.report_dir / "results.json").read_text(encoding="utf-8"))
    carried = {}
    for row in data["rows"]:
        label = row["label"]
        if label in reported and label in study.labels and label not in finished:
            if row.get("settings_sha256") == settings_fingerprint(study, label):
                carried[label] = ({**row, "carried": True}, list(data.get("curves", {}).get(label, [])))
    return carried


def check_report_keeps(study: Study, finished: Sequence[str]) -> None:
    """Refuse to replace a report with one that has fewer finished labels: the committed
    tables were once overwritten with an empty one by a run whose out_dir did not exist.
    Rows that :func:`carried_rows` carries over are not lost."""
    kept = set(finished) | set(carried_rows(study, finished))
    lost = [label for label in reported_labels(study) if label not in kept]
    if lost:
        raise ValueError(
            f"refusing to overwrite {study.report_dir}: it has results for {', '.join(lost)}, which "
            f"{study.out_dir} lacks (no LABEL/eval/report.json) and were made with other settings; run them "
            "first, point [study] out_dir at their runs, or pass --force to replace the table anyway"
        )


def _percent(value: Any) -> float | None:
    return None if value is None else round(100.0 * float(value), 2)


def label_row(study: Study, label: str) -> dict[str, Any]:
    """One row of the table from the label's evaluation report (empty when not evaluated)."""
    method = study.methods[label]
    row: dict[str, Any] = {
        "label": label,
        "method": method.name if method else "base",
        "scheme": method.scheme if method else "—",
        "expected_id": study.expected.get(label),
        "settings_sha256": settings_fingerprint(study, label),
    }
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


def score_columns(study: Study) -> list[str]:
    """The numeric columns of a row: accuracy per category, ID avg, each OOD variant, and the
    share of non-flat GRPO groups."""
    return list(study.evaluation.categories) + ["id", *study.variants(), "nonflat_groups"]


def column_names(study: Study) -> dict[str, str]:
    """Headings of the columns that are not named by themselves (the categories are)."""
    return {
        "id": "ID avg",
        "format_ood": f"format OOD ({study.evaluation.format_ood})",
        "content_ood": f"content OOD ({study.evaluation.content_ood})",
        "nonflat_groups": "non-flat groups (RL steps)",
        "expected_id": "paper ID avg",
    }


def table_markdown(study: Study, rows: Sequence[dict[str, Any]]) -> str:
    columns = score_columns(study) + ["expected_id"]
    names = column_names(study)
    lines = [
        f"# Study {study.name}",
        "",
        f"Accuracy (%) per method: in distribution ({study.evaluation.split} split"
        f"{', ' + str(study.evaluation.limit) + ' tasks' if study.evaluation.limit else ''}"
        f"{', APIs ' + ', '.join(study.evaluation.apis) if study.evaluation.apis else ''}), and the same tasks as OOD variants "
        f"(seed {study.evaluation.ood_seed}). ID avg = unweighted mean of the categories. Non-flat groups = the "
        "share of GRPO groups whose rewards were not all equal (the only ones with a policy gradient), mean over "
        f"RL steps. Source: `{study.source}`. Data: `{data_version()}` (every row's settings fingerprint "
        "includes the release, so a carried row was made on it too).",
        "",
    ]
    if study.curriculum is not None:  # the numbers are on cut tasks, not the benchmark's
        lines += [
            f"**Curriculum tasks, not the full benchmark** ({study.curriculum.describe()}; "
            "ids `…@curriculum-t<turns>-f<tools>-s<seed>_<index>`): training and every column below.",
            "",
        ]
    lines += [
        "| method | scheme | " + " | ".join(names.get(c, c) for c in columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for row in rows:
        lines.append(f"| {_name(row)} | {row['scheme']} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    if any(row.get("carried") for row in rows):
        lines += [
            "",
            "\\* carried over from the report this one replaces: the label's run is not in out_dir (a later "
            "sitting), and its settings are the same (`settings_sha256`).",
        ]
    return "\n".join(lines + [""] + structure_markdown(study, rows)) + "\n"


def _name(row: dict[str, Any]) -> str:
    return f"{row['label']}\\*" if row.get("carried") else str(row["label"])


def structure_markdown(study: Study, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The second table: how the evaluation messages were built (the paper's four structural
    states, shares of assistant messages) and how the episodes ended, per method and column.
    Where every score is zero this is what tells the methods apart."""
    keys = structure_keys(study)
    short = {
        "healthy_call": "call",
        "healthy_response": "reply",
        "text_pollution": "polluted",
        "full_collapse": "collapsed",
    }
    lines = [
        "Structural state of the evaluation messages (share of assistant messages: healthy call / healthy "
        "reply / text pollution / full collapse), the episodes' failure kinds, and how far the RL phases "
        "moved the weights (||Δθ|| / ||θ||):",
        "",
        "| method | "
        + " | ".join(f"{name} {' / '.join(short.values())}" for name, _, _ in keys)
        + " | "
        + " | ".join(f"{name} failures" for name, _, _ in keys)
        + " | RL weight change |",
        "|---|" + "---:|" * len(keys) + "---|" * len(keys) + "---:|",
    ]
    for row in rows:
        change = row.get("rl_weight_change")
        moved = "—" if change is None else f"{change:.1e}"
        if "id" not in row:
            lines.append(f"| {_name(row)} | " + " | ".join("—" for _ in range(2 * len(keys))) + f" | {moved} |")
            continue
        shares = [" / ".join(f"{row.get(sk, {}).get(state, 0.0):.2f}" for state in short) for _, sk, _ in keys]
        ends = [", ".join(f"{kind} {count}" for kind, count in row.get(fk, {}).items()) or "—" for _, _, fk in keys]
        lines.append(f"| {_name(row)} | " + " | ".join(shares) + " | " + " | ".join(ends) + f" | {moved} |")
    return lines


def policy_step_metrics(run_dir: Path, step: int) -> dict[str, float]:
    """Reward and structural-state rates of one RL step over the *policy* rollouts only, from
    its ``rollouts/step_N.jsonl`` records (the trainer's own metrics include OPS's substituted
    expert rollouts, whose reward is 1 and whose messages are all healthy)."""
    records = read_step(run_dir, step)
    if not records:
        return {}
    rewards: list[float] = []
    states: dict[str, int] = {state: 0 for state in STATES}
    for record in records:
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
            rows.append(
                {
                    **r,
                    **policy_step_metrics(phase, int(r["step"])),
                    "rl_step": offset + int(r["step"]),
                    "phase": phase.name,
                }
            )
        offset += max((int(r["step"]) for r in phase_rows), default=0)
    return rows


def nonflat_share(curves: Sequence[dict[str, Any]]) -> float | None:
    """The share (%) of GRPO groups whose rewards were not all equal (the groups that carry a
    policy gradient), averaged over the label's RL steps; None without RL steps."""
    flat = [float(r["reward/flat_groups"]) for r in curves if "reward/flat_groups" in r]
    return None if not flat else _percent(1.0 - sum(flat) / len(flat))


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
    return squared**0.5 / reference if reference else None


def write_report(study: Study, force: bool = False) -> Path:
    """Write the table (Markdown, JSON, CSV) and the plots; returns the Markdown file. Unless
    ``force``, a report in ``report_dir`` with finished labels this one lacks is kept (one-line
    ``ValueError``). The files are built in a scratch folder and moved in at the end, so a
    failure half-way leaves the old report whole."""
    rows = [label_row(study, label) for label in study.labels]
    finished = [row["label"] for row in rows if row.get("id") is not None]
    if not force:
        check_report_keeps(study, finished)
    carried = carried_rows(study, finished)
    curves = {label: training_curves(study, label) for label in study.labels if study.methods[label] is not None}
    for index, row in enumerate(rows):
        label = row["label"]
        if label in carried:  # its run is gone; the row and curves are the previous report's
            rows[index], curves[label] = carried[label][0], carried[label][1]
        elif study.methods[label] is not None:
            row["rl_weight_change"] = rl_weight_change(study, label)
            row["nonflat_groups"] = nonflat_share(curves[label])
    final = study.report_dir
    out = final.parent / f".{final.name}.partial"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        _write_report_files(study, rows, curves, out)
        final.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            target = final / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return final / "results.md"


def _write_report_files(
    study: Study, rows: list[dict[str, Any]], curves: dict[str, list[dict[str, Any]]], out: Path
) -> None:
    (out / "results.md").write_text(table_markdown(study, rows))
    (out / "results.json").write_text(
        json.dumps(
            {
                "study": study.name,
                "source": study.source,
                "data_version": data_version(),
                "eval": asdict(study.evaluation),
                "expected": study.expected,
                "methods": {
                    label: (study.methods[label].to_dict() if study.methods[label] else None) for label in study.labels
                },
                "config_overrides": study.label_overrides,
                "rows": rows,
                "curves": {
                    label: [
                        {
                            k: v
                            for k, v in r.items()
                            if k in ("rl_step", "phase", "reward/mean", "reward/flat_groups", "policy/reward")
                            or k.startswith(("state/", "policy_state/", "probe/"))
                        }
                        for r in rows_
                    ]
                    for label, rows_ in curves.items()
                },
            },
            indent=1,
        )
    )
    columns = ["label", "method", "scheme", *score_columns(study), "expected_id"]
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot_study(study, rows, curves, out / "plots")
