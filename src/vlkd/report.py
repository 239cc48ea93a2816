"""`vlkd report RUN_DIR`: a markdown summary and PNG curves from a run's metrics.jsonl, and the figure kinds
the quickstart's report draws (grouped bars with error bars, one metric across runs).

Every metric is drawn on an axis of its own kind: each loss term on its own panel (its training and
validation values together), perplexity on a log scale, rates in [0, 1] (accuracy, recall) on a 0-1 axis.
Counts and bookkeeping (gallery size, median rank, lr, throughput) are not curves: they belong in tables.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vlkd.errors import VlkdError  # noqa: E402
from vlkd.io import atomic_path, write_text_atomic  # noqa: E402
from vlkd.rundir import RunDir, read_metrics  # noqa: E402

_NOT_CURVES = {"step", "epoch", "lr", "grad_norm", "tokens_per_s", "seconds", "gallery_size", "median_rank"}
_RATE = re.compile(r"^(accuracy|acc_.+|r\d+|f1|exact_match|em)$")


def metric_kind(key: str) -> str | None:
    """'loss', 'perplexity', 'rate' (in [0, 1]) or None (a count or bookkeeping: not plotted)."""
    base = key.removeprefix("valid_")
    if base in _NOT_CURVES or key in _NOT_CURVES or base.endswith("_chance"):
        return None
    if "perplexity" in base:
        return "perplexity"
    return "rate" if _RATE.match(base) else "loss"


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _natural(key: str) -> list[tuple[int, int, str]]:
    """Sort key with numbers compared as numbers: valid_r5 before valid_r10."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", key)]


def _panels(keys: list[str]) -> list[tuple[str, list[str]]]:
    """(panel name, keys) in drawing order: one panel per loss term, then perplexity, then rates."""
    losses: dict[str, list[str]] = {}
    perplexity, rates = [], []
    for key in keys:
        kind = metric_kind(key)
        if kind == "loss":
            losses.setdefault(key.removeprefix("valid_"), []).append(key)
        elif kind == "perplexity":
            perplexity.append(key)
        elif kind == "rate":
            rates.append(key)
    if "loss" in losses and len(losses) == 2:  # the total equals its single term: draw the term only
        del losses["loss"]
    panels = [(name, sorted(group)) for name, group in losses.items()]
    return panels + ([("perplexity", perplexity)] if perplexity else []) + \
        ([("rates", sorted(rates, key=_natural))] if rates else [])


def plot_curves(records: list[dict[str, Any]], path: Path, title: str) -> list[str]:
    """One PNG with a panel per metric kind (see the module docstring). Returns the plotted keys."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    panels = _panels(keys)
    if not panels:
        raise VlkdError("no metric to plot (only counts and bookkeeping were logged)", path)
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, group) in zip(axes.flat, panels):
        for key in group:
            steps, values = _series(records, key)
            valid = key.startswith("valid_")
            ax.plot(steps, values, marker="o" if valid else None, markersize=3,
                    label=("validation " if valid else "training ") + key.removeprefix("valid_"))
        if name == "perplexity":
            ax.set(yscale="log", ylabel="perplexity (log scale)", title="perplexity")
        elif name == "rates":
            ax.set(ylim=(0, 1.02), ylabel="rate (0-1)", title="accuracy / recall")
        else:
            ax.set(ylabel="loss", title="total loss" if name == "loss" else f"loss: {name}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    _save(fig, path)
    return [k for _, group in panels for k in group]


def plot_runs(runs: dict[str, list[dict[str, Any]]], key: str, path: Path, title: str, ylabel: str,
              log: bool = False) -> None:
    """One metric of several runs on one axis (e.g. two students' held-out perplexity)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, records in runs.items():
        ax.plot(*_series(records, key), marker="o", markersize=3, label=label)
    ax.set(xlabel="step", ylabel=ylabel + (" (log scale)" if log else ""), title=title)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


@dataclass
class BarPanel:
    """One axis of grouped bars: `values[series][i]` is (mean, std) for category i (std 0: one value)."""

    title: str
    ylabel: str
    categories: list[str]
    values: dict[str, list[tuple[float, float]]]
    ylim: tuple[float, float] | None = None
    lines: dict[str, float] = field(default_factory=dict)  # label -> y (chance, majority class)


def plot_bars(panels: list[BarPanel], path: Path, title: str) -> None:
    """Grouped bar charts with error bars (± one std over seeds), one axis per panel and scale."""
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.0, 1.1 * sum(len(p.categories) for p in panels) + 2.5
                                                          * len(panels)), 3.8), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        width = 0.8 / max(1, len(panel.values))
        for j, (series, cells) in enumerate(panel.values.items()):
            xs = [i + (j - (len(panel.values) - 1) / 2) * width for i in range(len(panel.categories))]
            ax.bar(xs, [m for m, _ in cells], width, yerr=[s for _, s in cells], capsize=3, label=series)
        for k, (label, y) in enumerate(panel.lines.items()):
            ax.axhline(y, color="grey", linestyle=("--", ":", "-.")[k % 3], linewidth=1, label=label)
        ax.set_xticks(range(len(panel.categories)), panel.categories, fontsize=8)
        ax.set(ylabel=panel.ylabel, title=panel.title)
        if panel.ylim:
            ax.set_ylim(*panel.ylim)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def summarize_run(run_dir: str | Path) -> str:
    """Write RUN_DIR/report.md and RUN_DIR/curves.png; return the markdown."""
    run_dir = Path(run_dir)
    path = RunDir(run_dir).metrics
    records = read_metrics(path, say=lambda note: print(f"vlkd: note: {note}", file=sys.stderr))
    if not records:
        raise VlkdError("no metrics.jsonl with records: not a vlkd run directory, or nothing logged yet", run_dir)
    for number, record in enumerate(records, 1):
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, bool) or not isinstance(step, int):
            raise VlkdError(f"record {number} has no integer 'step' (every vlkd metrics record has one)", path)
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
    plot_curves(records, RunDir(run_dir).curves, str(run_dir))
    lines += [f"![curves]({RunDir(run_dir).curves.name})", ""]
    text = "\n".join(lines)
    write_text_atomic(RunDir(run_dir).report, text)
    return text
