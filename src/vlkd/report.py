"""`vlkd report RUN_DIR`: a markdown summary and PNG loss curves from a run's metrics.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vlkd.errors import VlkdError  # noqa: E402
from vlkd.io import atomic_path, write_text_atomic  # noqa: E402
from vlkd.rundir import read_metrics  # noqa: E402

_NOT_LOSSES = {"step", "epoch", "lr", "grad_norm", "tokens_per_s", "seconds"}


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if key in r]
    return [p[0] for p in points], [p[1] for p in points]


def plot_curves(records: list[dict[str, Any]], path: Path, title: str) -> list[str]:
    """One PNG: training losses (left) and validation metrics (right). Returns the plotted keys."""
    train_keys = sorted({k for r in records for k in r if k not in _NOT_LOSSES and not k.startswith("valid_")})
    valid_keys = sorted({k for r in records for k in r if k.startswith("valid_") and k != "valid_perplexity"})
    if len(train_keys) == 2:  # the total equals its single component: plot it once
        train_keys.remove("loss")
        valid_keys = [k for k in valid_keys if k != "valid_loss"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in train_keys:
        axes[0].plot(*_series(records, key), label=key)
    axes[0].set(title="training", xlabel="step", ylabel="loss")
    for key in valid_keys:
        axes[1].plot(*_series(records, key), marker="o", label=key)
    axes[1].set(title="validation", xlabel="step")
    for ax in axes:
        if ax.lines:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return train_keys + valid_keys


def summarize_run(run_dir: str | Path) -> str:
    """Write RUN_DIR/report.md and RUN_DIR/curves.png; return the markdown."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    if not records:
        raise VlkdError("no metrics.jsonl with records: not a vlkd run directory, or nothing logged yet", run_dir)
    train = [r for r in records if "loss" in r]
    valid = [r for r in records if any(k.startswith("valid_") for k in r)]
    lines = [f"# Run report: `{run_dir}`", ""]
    if train:
        first, last = train[0], train[-1]
        lines += ["## Training", "", "| | step | loss | tokens/s |", "|---|---|---|---|",
                  f"| first log | {first['step']} | {first['loss']:.4f} | {first.get('tokens_per_s', 0):,.0f} |",
                  f"| last log | {last['step']} | {last['loss']:.4f} | {last.get('tokens_per_s', 0):,.0f} |", ""]
    if valid:
        keys = sorted({k for r in valid for k in r if k.startswith("valid_")})
        lines += ["## Validation", "", "| step | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        lines += [f"| {r['step']} | " + " | ".join(f"{r[k]:.4f}" if k in r else "" for k in keys) + " |"
                  for r in valid]
        lines.append("")
    plot_curves(records, run_dir / "curves.png", str(run_dir))
    lines += ["![curves](curves.png)", ""]
    text = "\n".join(lines)
    write_text_atomic(run_dir / "report.md", text)
    return text
