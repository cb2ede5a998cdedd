"""Matplotlib figures (Agg backend: no display needed) drawn from the analyses' tables.

Every function takes a table and returns a ``matplotlib.figure.Figure``; none reads files or computes
statistics. Accuracies are drawn in %, thresholds as confidences in [0, 1], class names capitalised. What a
number is compared with (chance, the majority class, the supervised-only baseline) is drawn as labelled
horizontal ``Line``s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # before pyplot: figures are written to files, never shown in a window

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablate.results.layout import format_budget, pretty_class

STATUS_COLORS = {"complete": "#2a9d8f", "stopped": "#e9c46a", "diverged": "#6d597a", "error": "#e76f51"}
# The reference lines: what a number is compared with.
LINE_STYLES = {
    "chance": {"color": "dimgray", "linestyle": ":", "linewidth": 1.4},
    "majority": {"color": "black", "linestyle": "--", "linewidth": 1.2},
    "baseline": {"color": "#9d0208", "linestyle": "-.", "linewidth": 1.6},
}


@dataclass(frozen=True)
class Line:
    """A labelled horizontal line at ``value`` (in the axis' unit), drawn in the style of its ``kind``; with
    ``span`` = (x0, x1), only over that x range (a baseline's mean at one label budget)."""

    value: float
    label: str
    kind: str  # chance / majority / baseline
    span: tuple[float, float] | None = None


def floor_lines(reference, metric: str) -> list[Line]:
    """The chance and majority-class lines of a test metric ("acc" or "mca"), from a ``baselines.Reference``;
    one line when they coincide (always answering one class scores chance in mean class accuracy)."""
    if reference is None:
        return []
    chance = Line(reference.chance_pct, f"chance (1/{reference.classes}): {reference.chance_pct:.1f}%", "chance")
    majority_value = reference.majority_acc_pct if metric == "acc" else reference.majority_mca_pct
    who = pretty_class(reference.majority_class)
    if abs(majority_value - reference.chance_pct) < 1e-9:
        return [chance]  # the same line (and legend entry) as in an accuracy panel beside it
    return [chance, Line(majority_value, f"majority class (always {who}): {majority_value:.1f}%", "majority")]


def draw_lines(ax, lines: Sequence[Line]) -> float:
    """Draw ``lines`` on ``ax`` (labelled for the legend); return the highest value drawn (0 when none)."""
    for line in lines:
        style = LINE_STYLES[line.kind]
        if line.span is None:
            ax.axhline(line.value, zorder=3, label=line.label, **style)
        else:
            ax.hlines(line.value, *line.span, zorder=3, label=line.label, **style)
    return max((line.value for line in lines), default=0.0)


def _legend_entries(axes) -> tuple[list, list]:
    """The handles and labels of every axis, each label once, in order of appearance."""
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    return handles, labels


def _colors(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _integer_epochs(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")


def empty_figure(message: str, title: str = "") -> Figure:
    """A small figure that says why there is nothing to draw (instead of a blank or a crash)."""
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    if title:
        ax.set_title(title)
    return fig


# ---- ablation -------------------------------------------------------------------------------------------


def ladder_figure(
    ladder: pl.DataFrame,
    rungs: Sequence[str],
    budget_label: str = "Labels",
    what: str = "test at the best-validation epoch",
    title: str = "",
    reference=None,
    baseline: str | None = None,
) -> Figure:
    """Grouped bars: for each budget, one bar per rung (in ladder order), the mean over seeds with its 95 %
    t-interval as the error bar (clipped to 0-100; none for one seed); accuracy on
    the left, mean class accuracy on the right. The number on a bar is its mean. Horizontal lines: chance and
    the majority class (``reference``, a ``baselines.Reference``) across the panel, and the ``baseline`` rung's
    mean (e.g. supervised-only) over its own budget's bars."""
    if not ladder.height:
        return empty_figure("no complete ablation trials to draw", title)
    rungs = [r for r in rungs if r in set(ladder["rung"].to_list())]
    budgets = ladder["budget"].unique(maintain_order=True).to_list()
    panels = [("acc", "Test accuracy (%)"), ("mca", "Test mean class accuracy (%)")]
    panels = [p for p in panels if ladder[f"{p[0]}_mean"].null_count() < ladder.height]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(max(6.5, 1.2 + 0.55 * len(rungs) * len(budgets)) * len(panels) / 1.4, 4.8),
        squeeze=False,
    )
    width = 0.8 / max(1, len(rungs))
    colors = dict(zip(rungs, _colors(len(rungs))))
    for ax, (key, label) in zip(axes[0], panels):
        top = 0.0
        for j, rung in enumerate(rungs):
            rows = ladder.filter(pl.col("rung") == rung)
            xs, means, below, above = [], [], [], []
            for i, budget in enumerate(budgets):
                hit = rows.filter(pl.col("budget").is_null() if budget is None else pl.col("budget") == budget)
                if hit.height and hit[f"{key}_mean"][0] is not None:
                    r = hit.row(0, named=True)
                    low, high = r.get(f"{key}_low"), r.get(f"{key}_high")
                    xs.append(i - 0.4 + width * (j + 0.5))
                    means.append(r[f"{key}_mean"])
                    # the 95 % t-interval of the mean (none for one seed), clipped to the axis
                    below.append(0.0 if low is None else r[f"{key}_mean"] - max(0.0, low))
                    above.append(0.0 if high is None else min(100.0, high) - r[f"{key}_mean"])
            bars = ax.bar(
                xs,
                means,
                width * 0.92,
                yerr=[below, above],
                capsize=3,
                color=colors[rung],
                label=rung,
                error_kw={"elinewidth": 1},
            )
            for bar, mean, up in zip(bars, means, above):
                x = bar.get_x() + bar.get_width() / 2
                ax.text(x, mean + up + 0.6, f"{mean:.1f}", ha="center", va="bottom", fontsize=7)
                top = max(top, mean + up)
        lines = floor_lines(reference, key)
        if baseline is not None:
            for i, budget in enumerate(budgets):
                hit = ladder.filter(
                    (pl.col("rung") == baseline)
                    & (pl.col("budget").is_null() if budget is None else pl.col("budget") == budget)
                )
                if hit.height and hit[f"{key}_mean"][0] is not None:
                    lines.append(
                        Line(
                            hit[f"{key}_mean"][0],
                            f"{baseline} baseline: mean at each budget",
                            "baseline",
                            (i - 0.45, i + 0.45),
                        )
                    )
        top = max(top, draw_lines(ax, lines))
        ax.set_xticks(range(len(budgets)))
        ax.set_xticklabels([format_budget(b) for b in budgets])
        ax.set_xlabel(budget_label)
        ax.set_ylabel(label)
        ax.set_ylim(0, min(100.0, top * 1.15 + 3))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    n = ladder["n"].to_list()
    seeds = f"{min(n)}" if min(n) == max(n) else f"{min(n)}–{max(n)}"
    fig.suptitle(title or f"Ablation ladder: {what}; bars: mean over {seeds} seed(s), error bars: 95 % t-interval")
    handles, labels = _legend_entries(axes[0])
    order = sorted(
        range(len(labels)), key=lambda i: (labels[i] not in rungs, rungs.index(labels[i]) if labels[i] in rungs else i)
    )
    fig.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        title="Rung (in ladder order) and references",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        fontsize=9,
    )
    fig.tight_layout()
    return fig


# ---- search ---------------------------------------------------------------------------------------------


def param_scatter_figure(
    points: dict[str, pl.DataFrame],
    specs: dict[str, dict],
    metric_label: str,
    title: str = "",
    lines: Sequence[Line] = (),
) -> Figure:
    """One panel per searched parameter: its value (x) against ``metric_pct`` (y), one dot per trial, coloured
    by status. Categorical values are spread out a little so that equal values do not hide each other, in the
    order the study lists them; log-uniform parameters use a log x axis. ``specs``: study.json's params
    ({key: {distribution: values}}); ``lines``: the references drawn across every panel."""
    keys = [k for k, p in points.items() if p.height]
    if not keys:
        return empty_figure("no trial has both a searched value and the metric", title)
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.4 * rows), squeeze=False)
    seen = set()
    for ax, key in zip(axes.flat, keys):
        frame = points[key]
        kind, listed = next(iter(specs.get(key, {"uniform": []}).items()))
        numeric = (
            frame.schema["value"].is_numeric()
            and frame.schema["value"] != pl.Boolean
            and kind not in ("grid", "choice")
        )
        if numeric:
            x = frame["value"].to_list()
        else:
            levels = [str(v) for v in listed] if kind in ("grid", "choice") else []
            levels += [v for v in map(str, frame["value"].unique(maintain_order=True).to_list()) if v not in levels]
            index = {v: i for i, v in enumerate(levels)}
            x = [index[str(v)] + 0.12 * (((i * 7919) % 11) / 10 - 0.5) for i, v in enumerate(frame["value"].to_list())]
            ax.set_xticks(range(len(levels)))
            ax.set_xticklabels(
                levels,
                rotation=30 if max(len(v) for v in levels) > 6 else 0,
                ha="right" if max(len(v) for v in levels) > 6 else "center",
            )
        for status, color in STATUS_COLORS.items():
            mask = [s == status for s in frame["status"].to_list()]
            if any(mask):
                ax.scatter(
                    [v for v, m in zip(x, mask) if m],
                    [v for v, m in zip(frame["metric_pct"].to_list(), mask) if m],
                    s=28,
                    color=color,
                    edgecolor="black",
                    linewidth=0.4,
                    label=status if status not in seen else None,
                    alpha=0.9,
                )
                seen.add(status)
        draw_lines(ax, lines)
        if kind == "loguniform":
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(metric_label, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    handles, labels = _legend_entries(axes.flat)
    fig.legend(
        handles,
        labels,
        title="Trial status and references",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
    )
    fig.suptitle(
        title or f"Each searched parameter against the {metric_label[0].lower()}{metric_label[1:]}, one dot per trial"
    )
    fig.tight_layout()
    return fig


def importance_figure(importance: pl.DataFrame, how: str, title: str = "") -> Figure:
    """Horizontal bars: each searched parameter's importance (share of the total, in %), most important on top."""
    if not importance.height:
        return empty_figure(how, title or "Parameter importance")
    frame = importance.sort("importance")
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.45 * frame.height))
    values = [100 * v for v in frame["importance"].to_list()]
    ax.barh(frame["param"].to_list(), values, color="#457b9d")
    for y, v in enumerate(values):
        ax.text(v + 1, y, f"{v:.0f}%", va="center", fontsize=8)
    ax.set_xlim(0, 110)
    ax.set_xlabel("Importance (% of the total)")
    ax.set_title(title or "Parameter importance", fontsize=11)
    fig.text(0.01, 0.01, how, fontsize=7, color="dimgray", wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def asha_figure(stops: pl.DataFrame, scheduler: dict, title: str = "") -> Figure:
    """Stacked bars: how many trials ended after each number of epochs, by status."""
    if not stops.height:
        return empty_figure("no trials", title)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    epochs = stops["epochs_done"].to_list()
    xs = list(range(len(epochs)))  # one bar per number of epochs reached, evenly spaced
    bottom = [0] * len(xs)
    for status, color in STATUS_COLORS.items():
        counts = stops[status].to_list()
        if any(counts):
            ax.bar(xs, counts, bottom=bottom, color=color, label=status, width=0.7)
            bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set_xticks(xs)
    ax.set_xticklabels([str(e) for e in epochs])
    ax.set_xlim(-0.8, len(xs) - 0.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epochs trained before the trial ended")
    ax.set_ylabel("Trials")
    name = scheduler.get("name", "none")
    detail = (
        f"ASHA: grace period {scheduler.get('grace_period')}, max_t {scheduler.get('max_t')}, "
        f"reduction factor {scheduler.get('reduction_factor')}"
        if name == "asha"
        else "no early-stopping scheduler: 'stopped' means interrupted"
    )
    ax.set_title(title or f"Where trials ended ({detail})", fontsize=10)
    ax.legend(title="Status", frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


# ---- dynamics -------------------------------------------------------------------------------------------


def thresholds_figure(table: pl.DataFrame, trial: str, title: str = "") -> Figure:
    """One line per class: the threshold (a confidence in [0, 1]) over epochs."""
    if not table.height:
        return empty_figure(
            "no trial has per-class thresholds (threshold component off)", title or "Per-class thresholds"
        )
    fig, ax = plt.subplots(figsize=(7, 4))
    classes = table["class"].unique(maintain_order=True).to_list()
    for cls, color, style in zip(classes, _colors(len(classes)), ["-", "--", "-.", ":"] * 4):
        rows = table.filter(pl.col("class") == cls)
        ax.plot(rows["epoch"], rows["threshold"], style, marker="o", markersize=3, color=color, label=pretty_class(cls))
    _integer_epochs(ax)
    ax.set_ylabel("Confidence threshold")
    low = min(table["threshold"].min(), 0.5)
    ax.set_ylim(low - 0.02, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(title="Class", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title or f"Per-class thresholds over epochs (trial {trial})", fontsize=11)
    fig.tight_layout()
    return fig


def curves_figure(
    table: pl.DataFrame,
    panels: Sequence[tuple[str, str]],
    title: str,
    legend_title: str = "",
    split: bool = False,
    color_order: Sequence[str] = (),
    lines: dict[str, Sequence[Line]] | None = None,
) -> Figure:
    """One panel per (column, y label) of ``table`` (from ``dynamics_tables.curves``: values in %), one line per
    group. With ``split``, a group "rung · budget" takes its colour from the rung and its line style from the
    budget; ``color_order`` (the ladder) gives each rung the colour it has in the ladder figure; ``lines``: the
    references drawn on the panel of each column."""
    missing = [
        label.split(" (")[0] for c, label in panels if c not in table.columns or table[c].null_count() == table.height
    ]
    panels = [(c, label) for c, label in panels if c in table.columns and table[c].null_count() < table.height]
    if not panels:
        return empty_figure("nothing recorded for these curves (the components are off in every trial)", title)
    groups = table["group"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 2.2, 3.9), squeeze=False)
    heads = [g.split(" · ")[0] if split else g for g in groups]
    tails = [g.split(" · ", 1)[1] if split and " · " in g else "" for g in groups]
    keys = list(color_order) + [h for h in dict.fromkeys(heads) if h not in color_order]
    colors = dict(zip(keys, _colors(len(keys))))
    styles = dict(zip(dict.fromkeys(tails), ["-", "--", ":", "-."] * 4))
    for ax, (column, label) in zip(axes[0], panels):
        for group, head, tail in zip(groups, heads, tails):
            rows = table.filter((pl.col("group") == group) & pl.col(column).is_not_null())
            if rows.height:
                ax.plot(
                    rows["epoch"], rows[column], styles[tail], marker="o", markersize=3, color=colors[head], label=group
                )
        draw_lines(ax, (lines or {}).get(column, ()))
        _integer_epochs(ax)
        ax.set_ylabel(label)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    handles, labels = _legend_entries(axes[0])
    fig.legend(
        handles, labels, title=legend_title, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8
    )
    fig.suptitle(title, fontsize=11)
    if missing:
        fig.text(0.01, 0.005, "not recorded in any trial: " + "; ".join(missing), fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.04 if missing else 0, 1, 1))
    return fig


def per_class_figure(
    table: pl.DataFrame,
    trial: str,
    epoch: int | None,
    title: str = "",
    lines: Sequence[Line] = (),
    baseline: pl.DataFrame | None = None,
    baseline_label: str = "",
) -> Figure:
    """Bars: one trial's test accuracy per class (in %), with each class's test support under its name.
    ``lines`` (e.g. chance) run across; ``baseline`` (class, accuracy_pct: e.g. supervised-only's mean per
    class) is drawn as a short line over each class's bar, labelled ``baseline_label``."""
    if not table.height:
        return empty_figure("no per-class accuracy recorded", title)
    fig, ax = plt.subplots(figsize=(7.8, 4.2))
    names = [
        f"{pretty_class(c)}\n(n={s})" if s is not None else pretty_class(c)
        for c, s in zip(table["class"], table["support"])
    ]
    values = [0.0 if v is None else v for v in table["accuracy_pct"].to_list()]
    ax.bar(names, values, color=_colors(len(names)))
    for i, v in enumerate(values):
        ax.text(i, v + 1, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    drawn = list(lines)
    if baseline is not None and baseline.height:
        own = dict(zip(baseline["class"].to_list(), baseline["accuracy_pct"].to_list()))
        for i, cls in enumerate(table["class"].to_list()):
            if own.get(cls) is not None:
                drawn.append(Line(own[cls], baseline_label, "baseline", (i - 0.42, i + 0.42)))
    draw_lines(ax, drawn)
    if drawn:
        ax.legend(*_legend_entries([ax]), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("Test accuracy (%)")
    ax.set_xlabel("True class (n = test images)")
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(title or f"Per-class test accuracy of the best trial ({trial}, epoch {epoch})", fontsize=11)
    fig.tight_layout()
    return fig


def confusion_figure(
    percent: pl.DataFrame, counts: pl.DataFrame, trial: str, epoch: int | None, title: str = ""
) -> Figure:
    """Heatmap of the confusion matrix, each row in % of its true class, each cell also giving its count."""
    if not percent.height:
        return empty_figure("no confusion matrix recorded", title)
    names = percent["true"].to_list()
    matrix = [[float(v) for v in row[1:]] for row in percent.iter_rows()]
    raw = [[int(v) for v in row[1:]] for row in counts.iter_rows()] if counts.height else None
    fig, ax = plt.subplots(figsize=(6.8, 5.8))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=100)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if raw and raw[i][j] == 0:
                continue  # empty cells stay blank, so the eye finds the mistakes
            text = f"{value:.0f}%" + (f"\n({raw[i][j]})" if raw else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if value > 55 else "black")
    labels = [pretty_class(n) for n in names]
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(labels, rotation=35, ha="right")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(labels)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the true class")
    ax.set_title(
        title
        or f"Test confusion matrix of the best trial ({trial}, epoch {epoch})\n"
        "cells: % of the true class (count); blank: none",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def label_figure(fig: Figure, label: str) -> Figure:
    """Write ``label`` (e.g. "oracle (selected on test)") in red above everything else in the figure, so that
    nobody mistakes what it shows (saved with bbox_inches="tight", the page grows to hold it)."""
    fig.text(0.5, 1.0, label, ha="center", va="bottom", color="#9d0208", fontsize=12, weight="bold")
    return fig
