"""Plots of a training run's ``metrics.jsonl`` (matplotlib, headless).

One PNG per panel, written to ``RUN_DIR/plots/``: reward and validation scores per category;
structural-state rates (the paper's four states) of the training rollouts and of validation;
the control-token probes with the steps the early-warning flag fired marked; and the
optimisation signals (KL, entropy, gradient norm, loss, learning rate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from trainers.monitor import read_metrics

PANELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "reward": ("reward and validation score", ("reward/mean", "val/")),
    "structure": (
        "structural states of training messages",
        ("state/healthy_call", "state/healthy_response", "state/text_pollution", "state/full_collapse"),
    ),
    "val_structure": (
        "structural states of validation messages",
        ("val_state/healthy_call", "val_state/healthy_response", "val_state/text_pollution", "val_state/full_collapse"),
    ),
    "probes": (
        "control-token probes (after the call opener; opener at message start)",
        ("probe/p_healthy", "probe/p_eot", "probe/p_repeat", "probe/p_opener_start"),
    ),
    "optimisation": (
        "optimisation",
        ("train/kl", "train/entropy", "train/grad_norm", "train/pg_loss", "sft/loss", "sft/grad_norm"),
    ),
    "lr": ("learning rate", ("train/lr", "sft/lr")),
}


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            steps.append(int(row["step"]))
            values.append(float(value))
    return steps, values


def _keys(rows: Sequence[dict[str, Any]], patterns: Sequence[str]) -> list[str]:
    present = sorted({key for row in rows for key in row})
    out = []
    for pattern in patterns:
        if pattern.endswith("/"):
            out += [key for key in present if key.startswith(pattern) and key not in out]
        elif pattern in present:
            out.append(pattern)
    return out


def plot_run(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Write the panels that have data; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}/metrics.jsonl is empty")
    out = out or run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    warned = [int(row["step"]) for row in rows if row.get("warning")]
    written = []
    for name, (title, patterns) in PANELS.items():
        keys = _keys(rows, patterns)
        if not keys:
            continue
        figure, axis = plt.subplots(figsize=(7, 4))
        for key in keys:
            steps, values = _series(rows, key)
            axis.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=key)
        if name == "probes":
            for step in warned:
                axis.axvline(step, color="red", alpha=0.3, linewidth=1)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
        figure.tight_layout()
        path = out / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
