"""The study's plots (matplotlib, headless): scores per method in distribution and under
OOD, the structural states of the evaluation messages, and the policy's training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from toolenv.structure import STATES
from trainers.study.config import Study, structure_keys

PROBES = ("p_healthy", "p_eot", "p_repeat", "p_opener_start")


#: the training-curve figures: file name → (title, metric keys, one panel each)
CURVE_PANELS: dict[str, tuple[str, list[str]]] = {
    "structure": ("structural states of the policy's training messages", [f"policy_state/{s}" for s in STATES]),
    "probes": (
        "control-token probes after the call opener, and of the opener at message starts",
        [f"probe/{p}" for p in PROBES],
    ),
    "reward": ("training reward of the policy's rollouts", ["policy/reward"]),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: studies run on servers
    import matplotlib.pyplot as plt

    return plt


def plot_study(
    study: Study, rows: Sequence[dict[str, Any]], curves: dict[str, list[dict[str, Any]]], folder: Path
) -> list[Path]:
    """The study's plots (see :mod:`trainers.study`)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        plot_scores(study, rows, folder / "scores.png"),
        plot_eval_structure(study, rows, folder / "eval_structure.png"),
    ]
    for name, (title, keys) in CURVE_PANELS.items():
        written.append(plot_curves(study, curves, title, keys, folder / f"{name}.png"))
    return written


def plot_scores(study: Study, rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Bars: each method's score in distribution and under each OOD variant; stars: the paper's."""
    plt = _pyplot()
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
        ax.scatter(
            [i for i, _ in expected],
            [v for _, v in expected],
            marker="*",
            s=120,
            color="black",
            zorder=3,
            label="paper (ID avg)",
        )
    ax.set_xticks(range(len(rows)), labels, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{study.name}: score per method, in distribution vs OOD")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(
    study: Study, curves: dict[str, list[dict[str, Any]]], title: str, keys: Sequence[str], path: Path
) -> Path:
    """One panel per metric key: each label's values over its RL steps (all phases)."""
    plt = _pyplot()
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_eval_structure(study: Study, rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Stacked bars: the structural states of each method's evaluation messages, in
    distribution and under each OOD variant."""
    plt = _pyplot()

    keys = structure_keys(study)
    colours = {
        "healthy_call": "tab:green",
        "healthy_response": "tab:blue",
        "text_pollution": "tab:orange",
        "full_collapse": "tab:red",
    }
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(rows)), 4))
    width = 0.8 / len(keys)
    for k, (_, structure_key, _) in enumerate(keys):
        xs = [i + (k - (len(keys) - 1) / 2) * width for i in range(len(rows))]
        bottom = [0.0] * len(rows)
        for state, colour in colours.items():
            values = [float(r.get(structure_key, {}).get(state, 0.0)) for r in rows]
            ax.bar(
                xs,
                values,
                width * 0.92,
                bottom=bottom,
                color=colour,
                label=state if k == 0 else None,
                hatch=("", "//", "..")[k % 3],
                edgecolor="white",
                linewidth=0.4,
            )
            bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=20)
    ax.set_ylabel("share of assistant messages")
    ax.set_ylim(0, 1.05)
    ax.set_title(
        f"{study.name}: evaluation messages by state (bars: "
        + ", ".join(n for n, _, _ in keys)
        + "; hatching marks the OOD bars)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
