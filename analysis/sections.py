"""The tables and figures of each analysis, bundled as a ``Section``, and the one place that writes them.

``ablation``, ``search`` and ``dynamics`` each take a loaded ``Results`` and return a ``Section``; the marimo
notebooks display one, ``python -m ablate.report`` writes all that apply with ``write_report``. A section writes
each table as ``NAME.csv`` (the numbers, full precision) and ``NAME.md`` (rounded, for reading) and each figure
as ``NAME.png``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from analysis import plots
from analysis import tables as T

SECTIONS = ("ablation", "search", "dynamics")


def heading(item: Table | Fig, level: int) -> str:
    """A table's or figure's markdown heading, with its caption as a paragraph below when it has one."""
    return f"{'#' * level} {item.title}" + (f"\n\n{item.caption}" if item.caption else "")


@dataclass
class Table:
    name: str
    title: str
    data: pl.DataFrame  # written to NAME.csv
    display: pl.DataFrame | None = None  # written to NAME.md (default: ``data``, floats rounded)
    caption: str = ""


@dataclass
class Fig:
    name: str
    title: str
    figure: Any  # a matplotlib Figure
    caption: str = ""


@dataclass
class Section:
    name: str
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Fig] = field(default_factory=list)

    def heading(self, level: int) -> str:
        """The section's markdown heading, with its notes as a list below."""
        return f"{'#' * level} {self.title}" + ("\n\n" + "\n".join(f"- {n}" for n in self.notes) if self.notes else "")

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def figure(self, name: str) -> Fig:
        return next(f for f in self.figures if f.name == name)

    def write(self, out: str | Path, close: bool = True) -> list[Path]:
        """Write every table (.csv, .md) and figure (.png, 150 dpi) into ``out``; return the paths written."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for t in self.tables:
            csv_ready = t.data.with_columns(
                [pl.col(c).cast(pl.String) for c, d in t.data.schema.items() if isinstance(d, (pl.List, pl.Struct))]
            )
            csv_ready.write_csv(out / f"{t.name}.csv")
            (out / f"{t.name}.md").write_text(
                heading(t, 1) + "\n\n" + to_markdown(t.display if t.display is not None else t.data) + "\n"
            )
            written += [out / f"{t.name}.csv", out / f"{t.name}.md"]
        for f in self.figures:
            f.figure.savefig(out / f"{f.name}.png", dpi=150, bbox_inches="tight")
            written.append(out / f"{f.name}.png")
            if close:
                plots.plt.close(f.figure)
        return written

    def markdown(self, prefix: str = "") -> str:
        """The section for an index page: notes, each table inline (with links to its files), each figure."""
        lines = [self.heading(2), ""]
        for t in self.tables:
            lines += [heading(t, 3), ""]
            lines += [
                to_markdown(t.display if t.display is not None else t.data),
                "",
                f"Files: [{t.name}.csv]({prefix}{t.name}.csv), [{t.name}.md]({prefix}{t.name}.md)",
                "",
            ]
        for f in self.figures:
            lines += [heading(f, 3), "", f"![{f.title}]({prefix}{f.name}.png)", ""]
        return "\n".join(lines)


# ---- formatting -----------------------------------------------------------------------------------------


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if column.endswith("_pct") or column in ("acc_mean", "acc_std", "mca_mean", "mca_std") or "gain" in column:
            return f"{value:.1f}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(frame: pl.DataFrame) -> str:
    """A GitHub-flavoured markdown table; floats rounded (``*_pct`` and accuracy columns to 0.1, others 4 digits)."""
    if not frame.width:
        return "_(empty)_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---:" if frame.schema[c].is_numeric() else "---" for c in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v, c) for v, c in zip(row, frame.columns)) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows]) if rows else "\n".join([header, rule]) + "\n\n_(no rows)_"


def _status_note(trials: pl.DataFrame) -> list[str]:
    counts = dict(trials.group_by("status").len().iter_rows()) if trials.height else {}
    notes = [
        f"{trials.height} trials: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("complete", "stopped", "error"))
    ]
    if counts.get("error") and "error" in trials.columns:
        first = trials.filter(pl.col("status") == "error")["error"].drop_nulls()
        if first.len():
            notes.append(f"first error: `{first[0][:300]}`")
    return notes


# ---- the three analyses ---------------------------------------------------------------------------------


def ablation(res: T.Results, which: str = "best") -> Section:
    """The ladder table (per budget and rung: mean ± std over seeds, gains, paired t-tests) and its bar chart."""
    trials, study = res.trials, res.study
    key = T.budget_key(trials, study)
    label = T.budget_label(key)
    ladder = T.ladder_table(trials, study, which=which)
    rungs = T.rung_order(study, trials)
    notes = _status_note(trials) + [
        f"ladder (in the study's order): {' ► '.join(rungs)}; budget key: `{key or 'none'}`",
        f"accuracies: the {which} test accuracy of each trial (the epoch it peaked at for `best`), in %; "
        "mean ± sample std over seeds; only complete trials count",
        "gains in percentage points; p: two-sided paired t-test over the seeds (trainer.seed, repeat) present in both rungs at that budget",
    ]
    section = Section("ablation", f"Ablation ladder ({res.name})", notes)
    section.tables.append(
        Table(
            "ladder",
            "Ablation ladder",
            ladder,
            T.format_ladder(ladder, label),
            f"{which} test accuracy and mean class accuracy per {label.lower()} and rung",
        )
    )
    baselines = T.chance_levels(res.epochs)
    if baselines:
        notes.append(
            f"floors: always predicting the majority class ({baselines['majority_class']}) scores {baselines['majority_pct']:.1f}% "
            f"accuracy, any constant prediction {baselines['chance_mca_pct']:.1f}% mean class accuracy (dashed lines)"
        )
    section.figures.append(
        Fig("ladder", "Ablation ladder", plots.ladder_figure(ladder, rungs, label, which, baselines=baselines))
    )
    return section


def search(res: T.Results, k: int = 10, importance_method: str | None = None) -> Section:
    """The best trials, each searched parameter against the metric, the parameters' importance, ASHA's stops."""
    trials, study = res.trials, res.study
    column, mode = T.search_metric(study)
    metric_label = T.metric_title(column)
    keys = T.searched_keys(study)
    notes = _status_note(trials) + [
        f"metric: `{column}` ({'higher' if mode == 'max' else 'lower'} is better); "
        "early-stopped trials are judged on their best-so-far value",
        f"searched: {', '.join(f'`{k}`' for k in keys) or 'nothing'}",
    ]
    importance, how = T.param_importance(trials, study, method=importance_method)
    notes.append(f"importance: {how}")
    stops = T.asha_stops(trials)
    scheduler = study.get("scheduler") or {}
    section = Section("search", f"Search ({res.name})", notes)
    best = T.best_trials(trials, study, k)
    section.tables += [
        Table(
            "best_trials",
            f"The {best.height} best trials" if best.height else "Best trials",
            best,
            caption=f"by {column}, in %" + ("" if best.height else "; no trial has the metric"),
        ),
        Table(
            "params",
            "Searched parameters against the metric",
            T.param_summary(trials, study),
            caption="spearman: rank correlation of a numeric parameter with the metric; best_level: the categorical "
            "value with the best mean metric (in %)",
        ),
        Table("importance", "Parameter importance", importance, caption=how),
        Table(
            "stops",
            "Where trials ended",
            stops,
            caption=f"trials per number of epochs trained, by status; scheduler: {scheduler.get('name', 'none')}",
        ),
    ]
    points = {key: T.param_points(trials, study, key) for key in keys}
    section.figures += [
        Fig(
            "params",
            "Each searched parameter against the metric",
            plots.param_scatter_figure(points, study.get("params") or {}, metric_label),
        ),
        Fig("importance", "Parameter importance", plots.importance_figure(importance, how)),
        Fig("stops", "Where trials ended", plots.asha_figure(stops, scheduler)),
    ]
    return section


# (epochs column, axis label); ``tables.curves`` reports each as ``<column>_pct``.
UNLABELED = (
    ("unlabeled_mask_rate", "Mask rate: unlabeled above threshold (%)"),
    ("unlabeled_pseudo_acc", "Pseudo-label accuracy, masked (%)"),
)
NEGATIVE = (
    ("unlabeled_candidate_holds_true", "Candidate set holds the true class (%)"),
    ("unlabeled_complementary_truly_wrong", "Complementary labels truly wrong (%)"),
    ("unlabeled_candidate_soft_mass", "Soft-label mass inside the candidate set (%)"),
)


def _pct_panels(panels):
    return [(f"{column}_pct", label) for column, label in panels]


def dynamics(res: T.Results) -> Section:
    """Per-class thresholds, mask rate and pseudo-label accuracy, the negative component's correctness over
    epochs, and the best trial's per-class accuracy and confusion matrix."""
    trials, epochs, study = res.trials, res.epochs, res.study
    best = T.best_trial_id(trials, study)
    notes = []
    section = Section("dynamics", f"Training dynamics ({res.name})", notes)
    by = "rung" if "variant" in trials.columns and trials["variant"].drop_nulls().len() else "trial"
    rungs = T.rung_order(study, trials) if by == "rung" else []
    legend = "Rung" if by == "rung" else f"Trial · {T.metric_title(T.search_metric(study)[0])}"
    notes.append(
        "curves: the unlabeled probe set (`trainer.eval_unlabeled` images) after each epoch, in %; "
        + ("mean over the seeds of each rung" if by == "rung" else "one line per trial, the 8 best")
    )

    with_thresholds, moving = T.threshold_trial(trials, epochs, study)
    thr = T.thresholds(epochs, with_thresholds) if with_thresholds else T.thresholds(epochs.clear(), "")
    if with_thresholds:
        notes.append(
            f"thresholds: trial {with_thresholds}, the best trial whose thresholds "
            + (
                "move (adaptive)"
                if moving
                else "exist (no trial's thresholds move: fixed, or adaptive ones that stayed at the floor)"
            )
        )
    section.tables.append(
        Table(
            "thresholds",
            "Per-class thresholds over epochs",
            thr.pivot(on="class", index="epoch", values="threshold") if thr.height else thr,
            caption=f"trial {with_thresholds}: confidence thresholds in [0, 1] after each epoch"
            if with_thresholds
            else "no trial recorded per-class thresholds (threshold component off)",
        )
    )
    section.figures.append(
        Fig("thresholds", "Per-class thresholds over epochs", plots.thresholds_figure(thr, with_thresholds or ""))
    )

    unl = T.curves(epochs, trials, study, [c for c, _ in UNLABELED])
    neg = T.curves(epochs, trials, study, [c for c, _ in NEGATIVE])
    section.tables += [
        Table("unlabeled", "Mask rate and pseudo-label accuracy over epochs", unl, caption="in %; n: trials averaged"),
        Table(
            "negative",
            "Negative learning's correctness over epochs",
            neg,
            caption="in %, on the unlabeled samples below the threshold; n: trials averaged",
        ),
    ]
    section.figures += [
        Fig(
            "unlabeled",
            "Mask rate and pseudo-label accuracy over epochs",
            plots.curves_figure(
                unl,
                _pct_panels(UNLABELED),
                "Unlabeled samples above the threshold, and how often their pseudo-label is right",
                legend,
                by == "rung",
                rungs,
            ),
        ),
        Fig(
            "negative",
            "Negative learning's correctness over epochs",
            plots.curves_figure(
                neg,
                _pct_panels(NEGATIVE),
                "Negative learning on the samples below the threshold: are its labels right?",
                legend,
                by == "rung",
                rungs,
            ),
        ),
    ]

    baselines = T.chance_levels(epochs)
    if baselines:
        notes.append(
            f"a model that learnt nothing: always predicting the majority class ({baselines['majority_class']}) scores "
            f"{baselines['majority_pct']:.1f}% accuracy on the {baselines['test_images']} test images, and any constant "
            f"prediction {baselines['chance_mca_pct']:.1f}% mean class accuracy"
        )
    epoch = T.best_epoch(epochs, best) if best else None
    if best is not None and epoch is not None:
        row = trials.filter(pl.col("trial_id") == best).row(0, named=True)
        key = T.budget_key(trials, study)
        what = ", ".join(f"{k} {row[k]}" for k in ("variant", key) if k and row.get(k) is not None)
        notes.append(
            f"best trial: {best}{f' ({what})' if what else ''} by {T.search_metric(study)[0]}; its per-class accuracy and "
            f"confusion matrix are at epoch {epoch}, where its test accuracy peaked"
        )
        per_class = T.per_class_accuracy(epochs, best, epoch)
        counts, percent = T.confusion(epochs, best, epoch), T.confusion(epochs, best, epoch, normalize=True)
    else:
        notes.append("no trial has a test accuracy: no per-class accuracy or confusion matrix")
        per_class, counts, percent = T.per_class_accuracy(epochs.clear(), "", 0), pl.DataFrame(), pl.DataFrame()
    section.tables += [
        Table(
            "per_class",
            "Per-class test accuracy of the best trial",
            per_class,
            caption=f"trial {best}, epoch {epoch}; accuracy in %, support: test images"
            if epoch is not None
            else "no trial has a test accuracy",
        ),
        Table(
            "confusion",
            "Test confusion matrix of the best trial",
            counts,
            caption=f"trial {best}, epoch {epoch}; rows: true class, columns: predicted; counts"
            if epoch is not None
            else "no trial has a test accuracy",
        ),
    ]
    section.figures += [
        Fig(
            "per_class",
            "Per-class test accuracy of the best trial",
            plots.per_class_figure(per_class, best or "", epoch),
        ),
        Fig(
            "confusion",
            "Test confusion matrix of the best trial",
            plots.confusion_figure(percent, counts, best or "", epoch),
        ),
    ]
    return section


def applicable(res: T.Results) -> list[str]:
    """The analyses that apply: ablation when the study has variants, search when it searched a
    hyper-parameter (a key other than the rung, the label budget and the seeds), dynamics always."""
    names = []
    if res.study.get("variants") or ("variant" in res.trials.columns and res.trials["variant"].drop_nulls().len()):
        names.append("ablation")
    if T.tuned_keys(res.study):
        names.append("search")
    return names + ["dynamics"]


def build(res: T.Results, name: str, which: str = "best") -> Section:
    if name == "ablation":
        return ablation(res, which)
    if name == "search":
        return search(res)
    if name == "dynamics":
        return dynamics(res)
    raise ValueError(f"unknown analysis {name!r}; allowed: {', '.join(SECTIONS)}")


def write_report(res: T.Results, out: str | Path, which: str = "best", only: Sequence[str] | None = None) -> Path:
    """Run the analyses that apply, write each into ``out/<analysis>/`` and an ``out/index.md`` linking them
    (and ``out/index.html``, the same page, when the ``markdown`` package is installed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# Report: {res.name}", "", f"Results: `{res.path}`  ", f"Study file: `{res.study.get('file', '?')}`", ""]
    for name in only or applicable(res):
        section = build(res, name, which)
        section.write(out / name)
        parts += [section.markdown(prefix=f"{name}/"), ""]
    index = out / "index.md"
    index.write_text("\n".join(parts))
    html = to_html("\n".join(parts), f"Report: {res.name}")
    if html is not None:
        (out / "index.html").write_text(html)
    return index


HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}code{background:#f6f6f6;padding:0 3px}"
)


def to_html(markdown_text: str, title: str) -> str | None:
    """``index.md`` as a standalone HTML page (the ``markdown`` package, which marimo installs); None without it."""
    try:
        import markdown
    except ImportError:
        return None
    body = markdown.markdown(markdown_text, extensions=["tables"])
    return f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title><style>{HTML_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"


# ---- notebooks ------------------------------------------------------------------------------------------


def notebook_args(name: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of a notebook: ``python analysis/NAME.py -- RESULTS [--out DIR] [--which best|last]``
    (or ``marimo run/edit/export analysis/NAME.py -- RESULTS ...``; marimo puts what follows ``--`` in sys.argv).
    With no RESULTS, ``folder`` is None and the notebook asks for one."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    p = argparse.ArgumentParser(
        prog=f"python analysis/{name}.py --", description=f"the {name} analysis of a results folder"
    )
    p.add_argument(
        "folder", nargs="?", help="a results folder (results/NAME) holding trials.parquet, epochs.parquet, study.json"
    )
    p.add_argument("--out", help="write the tables (.md, .csv) and figures (.png) into this folder")
    p.add_argument(
        "--which",
        choices=("best", "last"),
        default="best",
        help="each trial's best-epoch or last-epoch accuracy (ablation)",
    )
    return p.parse_args(args)


def notebook_setup(
    name: str, script: bool, argv: Sequence[str] | None = None
) -> tuple[argparse.Namespace, T.Results | None, str]:
    """A notebook's arguments and results, or the reason there are none. Run as a script (``script``), a
    missing folder or a bad one ends the run: the message on stderr, exit status 2; in marimo's editor or app
    the notebook shows the message instead."""
    args = notebook_args(name, argv)
    problem, res = "", None
    if args.folder is None:
        problem = (
            f"no results folder given: `python analysis/{name}.py -- results/NAME [--out DIR]` "
            f"or `marimo edit analysis/{name}.py -- results/NAME`"
        )
    else:
        try:
            res = T.load_results(args.folder)
        except T.ResultsError as err:
            problem = f"error: {err}"
    if problem and script:
        print(problem if problem.startswith("error") else f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return args, res, problem


def export_note(section: Section, out: str | None, close: bool = False) -> str:
    """Write ``section`` into ``out`` (when given) and say what was written, for the notebook and the terminal."""
    if not out:
        return "Pass `--out DIR` to export these tables (.md, .csv) and figures (.png)."
    written = section.write(out, close=close)
    message = f"wrote {len(written)} files ({section.name}) to {out}"
    print(message)
    return message
