"""The analyses of a results folder, each bundled as a ``Section`` of tables and figures: the summary (the best
config against chance, the majority class and the baselines; the trials that did not finish), the ablation
ladder, the search and the training dynamics.

Every builder takes a loaded ``Results`` and ``which`` (the shown numbers, see ``ablate.results.selection``) and
labels what was selected on test with ``ORACLE_LABEL``. The marimo notebooks display one section each;
``ablate.report.page`` writes all that apply.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ablate.report import dynamics as dynamics_tables
from ablate.report import ladder, plots, searches
from ablate.report.section import Fig, Section, Table
from ablate.results import summary as summaries
from ablate.results.baselines import baseline_at, reference_levels, reference_rung
from ablate.results.layout import (
    baseline_names,
    budget_key,
    budget_label,
    has_rungs,
    rung_order,
    searched_keys,
    tuned_keys,
)
from ablate.results.reader import Results
from ablate.results.records import STATUSES
from ablate.results.selection import (
    ORACLE_LABEL,
    best_config,
    did_not_finish,
    labelled,
    ranking,
    selected_epoch,
    shown_numbers,
)
from ablate.results.stability import selection_stability, stability_frame, stability_text

SECTIONS = ("summary", "ablation", "search", "dynamics")


def status_note(trials: pl.DataFrame) -> str:
    counts = dict(trials.group_by("status").len().iter_rows()) if trials.height else {}
    return f"{trials.height} trials: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)


def _oracle(fig, oracle: bool):
    return plots.label_figure(fig, ORACLE_LABEL) if oracle else fig


def _metric_kind(column: str) -> str:
    return "mca" if "mean_class" in column else "acc"


# ---- the summary ------------------------------------------------------------------------------------------


def summary(res: Results, which: str = "val") -> Section:
    """The best config beside chance, the majority class, each baseline and its gain over supervised-only (with
    intervals, a paired t-test across seeds, Holm-adjusted, and the seeds it needs for 80 % power), and the trials
    that did not finish."""
    s = summaries.summary(res.trials, res.epochs, res.study, which)
    min_effect = (res.study.get("report") or {}).get("min_effect")
    power = [summaries.power_text(r, "acc", min_effect) for r in s.data.filter(pl.col("row") == "gain").to_dicts()]
    stable = stability_text(selection_stability(res.trials, res.epochs, res.study))
    notes = [status_note(res.trials), *s.notes, *(f"{p}" for p in power if p), stable]
    section = Section("summary", f"Summary ({res.name})", notes)
    section.tables.append(
        Table(
            "summary",
            labelled("The best config against chance, the majority class and the baselines", s.oracle),
            s.data,
            summaries.display(s.data),
            f"{s.shown.what}, in %: mean [95 % t-interval] over seeds; gains in percentage points: the mean paired "
            "difference [95 % t-interval], p of a two-sided paired t-test across seeds, and p (Holm, m = N) adjusted "
            "over the table's gains, which the words follow",
        )
    )
    failed = did_not_finish(res.trials)
    section.tables.append(
        Table(
            "did_not_finish",
            "Trials that did not finish",
            failed,
            caption="diverged and error trials: never ranked nor averaged"
            + ("" if failed.height else "; none in this study"),
        )
    )
    return section


# ---- the ablation ladder ----------------------------------------------------------------------------------


def ablation(res: Results, which: str = "val") -> Section:
    """The ladder table (per budget and rung: means with 95 % t-intervals over seeds, gains with the intervals of
    the paired differences, paired t-tests Holm-adjusted as one family) and its bar chart."""
    trials, study = res.trials, res.study
    shown = shown_numbers(trials, which)
    key = budget_key(trials, study)
    label = budget_label(key)
    table = ladder.ladder_table(trials, study, which=which)
    rungs = rung_order(study, trials)
    ref = reference_levels(study, res.epochs)
    against = ladder.reference_rung_name(trials, study)
    notes = [
        status_note(trials),
        f"ladder (in the study's order): {' ► '.join(rungs)}; budget key: `{key or 'none'}`",
        f"numbers: {shown.what} of each trial, in %; mean [95 % t-interval] over seeds; only complete trials count",
        f"gains in percentage points, over the previous rung and over {against or 'the first rung at each budget'}, "
        "each with the 95 % t-interval of the mean paired difference; p: two-sided paired t-test across the seeds "
        "both rungs ran at that budget; the table's comparisons are one family: p (Holm, m = N) is Holm-adjusted "
        "over its N distinct tests, and the words (significant, no difference found) follow the adjusted p",
    ]
    if shown.note:
        notes.append(shown.note)
    if ref is not None:
        notes.append(
            f"floors (lines): chance {ref.chance_pct:.1f}%; always answering {ref.majority_class} scores "
            f"{ref.majority_acc_pct:.1f}% accuracy and {ref.majority_mca_pct:.1f}% mean class accuracy"
        )
    section = Section("ablation", f"Ablation ladder ({res.name})", notes)
    section.tables.append(
        Table(
            "ladder",
            labelled("Ablation ladder", shown.oracle),
            table,
            ladder.format_ladder(table, label, ref),
            f"{shown.what}: accuracy and mean class accuracy per {label.lower()} and rung",
        )
    )
    aggregate = ladder.aggregate_table(trials, study, which=which)
    section.tables.append(
        Table(
            "aggregate",
            labelled("Across budgets: IQM and probability of improvement", shown.oracle),
            aggregate,
            ladder.format_aggregate(aggregate),
            f"{shown.what}, every run of a rung pooled over the budgets it ran at (rliable's aggregates): the "
            "interquartile mean (the mean of the middle 50 % of the runs) and the probability that a run of the "
            f"rung beats one of {against or 'the first rung'} at the same budget (ties count a half), averaged over "
            "the budgets; [95 % CI]: percentile interval of the stratified bootstrap (each budget's runs resampled "
            "separately, 2000 resamples); none where a budget has a single run",
        )
    )
    figure = plots.ladder_figure(table, rungs, label, shown.what, reference=ref, baseline=against)
    caption = (
        f"{shown.what}, in %: each bar is a rung's mean over its seeds, its error bar the 95 % t-interval of that "
        "mean (Student's t, n - 1 degrees of freedom; none for one seed); lines: chance, the majority class and "
        f"{against or 'no'} baseline"
    )
    section.figures.append(
        Fig("ladder", labelled("Ablation ladder", shown.oracle), _oracle(figure, shown.oracle), caption)
    )
    return section


# ---- the search -------------------------------------------------------------------------------------------


def _baseline_line(res: Results, column: str) -> list[plots.Line]:
    """The supervised-only (reference) baseline's mean of ``column`` as a line, at the best config's budget."""
    name = reference_rung(baseline_names(res.trials, res.study))
    if name is None or column not in res.trials.columns:
        return []
    ids = best_config(res.trials, res.study)
    values = baseline_at(res.trials, res.study, name, ids[0] if ids else None)[column].drop_nulls()
    if not values.len():
        return []
    mean = 100 * values.mean()
    return [plots.Line(mean, f"{name} baseline ({values.len()} seeds): {mean:.1f}%", "baseline")]


def search(res: Results, which: str = "val", k: int = 10, importance_method: str | None = None) -> Section:
    """The best trials, each searched parameter against the numbers, the parameters' importance, ASHA's stops."""
    trials, study = res.trials, res.study
    rank, shown = ranking(study, trials), shown_numbers(trials, which)
    column = searches.shown_for_ranking(rank, shown)
    kind = _metric_kind(column)
    y_label = f"Test {'mean class accuracy' if kind == 'mca' else 'accuracy'} (%)"
    keys = searched_keys(study)
    notes = [
        status_note(trials),
        f"ranked on `{rank.column}` ({'higher' if rank.descending else 'lower'} is better); "
        "early-stopped trials are judged on their best-so-far value; baselines, diverged and error trials are "
        "not ranked",
        f"numbers: {shown.what} and last-epoch test, in %",
        f"searched: {', '.join(f'`{k}`' for k in keys) or 'nothing'}",
    ]
    notes += [n for n in (rank.note, shown.note) if n]
    stable = selection_stability(trials, res.epochs, study)
    notes.append(stability_text(stable))
    importance, how = searches.param_importance(trials, study, method=importance_method)
    notes.append(f"importance: {how}")
    stops = searches.asha_stops(trials)
    scheduler = study.get("scheduler") or {}
    section = Section("search", f"Search ({res.name})", notes)
    best = searches.best_trials(trials, study, shown, k)
    chosen = rank.oracle or shown.oracle
    section.tables += [
        Table(
            "best_trials",
            labelled(f"The {best.height} best trials" if best.height else "Best trials", chosen),
            best,
            caption=f"by {rank.column}, in %" + ("" if best.height else "; no finished search trial has the metric"),
        ),
        Table(
            "params",
            labelled("Searched parameters against the numbers", shown.oracle),
            searches.param_summary(trials, study, shown),
            caption=f"spearman: rank correlation of a numeric parameter with `{column}`; best_trial_value and "
            f"best_level (the categorical value with the best mean): by `{rank.column}` (in %)",
        ),
        Table("importance", labelled("Parameter importance", rank.oracle), importance, caption=how),
        Table(
            "selection_stability",
            "How stable the validation's choice is",
            stability_frame(stable),
            caption="kept_share: the share of bootstrap resamples of the validation faces (one draw for every "
            "trial) that select the study's config; val_gap_pp: its validation lead over the runner-up; "
            "resolvable_gap_pp: the 95 % half-width of a difference of two accuracies on this many faces",
        ),
        Table(
            "stops",
            "Where trials ended",
            stops,
            caption=f"trials per number of epochs trained, by status; scheduler: {scheduler.get('name', 'none')}",
        ),
    ]
    points = {key: searches.param_points(trials, study, key, shown) for key in keys}
    lines = plots.floor_lines(reference_levels(study, res.epochs), kind) + _baseline_line(res, column)
    scatter = plots.param_scatter_figure(
        points,
        study.get("params") or {},
        y_label,
        title=f"Each searched parameter against the {y_label[0].lower()}{y_label[1:-4]}, one dot per trial\n"
        f"{shown.what[0].upper()}{shown.what[1:]}",
        lines=lines,
    )
    section.figures += [
        Fig(
            "params",
            labelled("Each searched parameter against the numbers", shown.oracle),
            _oracle(scatter, shown.oracle),
        ),
        Fig(
            "importance",
            labelled("Parameter importance", rank.oracle),
            _oracle(plots.importance_figure(importance, how), rank.oracle),
        ),
        Fig("stops", "Where trials ended", plots.asha_figure(stops, scheduler)),
    ]
    return section


# ---- the training dynamics ------------------------------------------------------------------------------

# (epochs column, axis label); ``dynamics_tables.curves`` reports each as ``<column>_pct``.
ACCURACY = (
    ("val_acc", "Validation accuracy (%)"),
    ("test_acc", "Test accuracy (%)"),
    ("test_mean_class_acc", "Test mean class accuracy (%)"),
)
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


def _curve_lines(ref) -> dict[str, list[plots.Line]]:
    """The references of the accuracy curves: chance on the balanced validation split and on the pseudo-labels
    (a guess), chance and the majority class on the test split."""
    if ref is None:
        return {}
    chance = [plots.Line(ref.chance_pct, f"chance (1/{ref.classes}): {ref.chance_pct:.1f}%", "chance")]
    return {
        "val_acc_pct": chance,
        "test_acc_pct": plots.floor_lines(ref, "acc"),
        "test_mean_class_acc_pct": plots.floor_lines(ref, "mca"),
        "unlabeled_pseudo_acc_pct": chance,
    }


def dynamics(res: Results, which: str = "val") -> Section:
    """Accuracy, per-class thresholds, mask rate and pseudo-label accuracy, the negative component's correctness
    over epochs, and the best trial's per-class accuracy and confusion matrix."""
    trials, epochs, study = res.trials, res.epochs, res.study
    rank, shown = ranking(study, trials), shown_numbers(trials, which)
    ref = reference_levels(study, epochs)
    ladder_like = has_rungs(trials)
    rungs = rung_order(study, trials) if ladder_like else []
    legend = "Rung" if ladder_like else f"Trial · {rank.column} (%)"
    notes = [
        "curves: accuracy on the validation and test splits, and the unlabeled probe set (`trainer.eval_unlabeled` "
        "images) after each epoch, in %; "
        + ("mean over the seeds of each rung" if ladder_like else "one line per trial, the 8 best, and each baseline")
        + "; diverged and error trials left out"
    ]
    section = Section("dynamics", f"Training dynamics ({res.name})", notes)
    picked = rank.oracle and not ladder_like  # the search's curves show its best trials: chosen by the ranking

    with_thresholds, moving = dynamics_tables.threshold_trial(trials, epochs, study)
    thr = (
        dynamics_tables.thresholds(epochs, with_thresholds)
        if with_thresholds
        else dynamics_tables.thresholds(epochs.clear(), "")
    )
    if with_thresholds:
        notes.append(
            f"thresholds: trial {with_thresholds}, the best-ranked trial whose thresholds "
            + (
                "move (adaptive)"
                if moving
                else "exist (no trial's thresholds move: fixed, or adaptive ones that stayed at the floor)"
            )
        )
    section.tables.append(
        Table(
            "thresholds",
            labelled("Per-class thresholds over epochs", rank.oracle),
            thr.pivot(on="class", index="epoch", values="threshold") if thr.height else thr,
            caption=f"trial {with_thresholds}: confidence thresholds in [0, 1] after each epoch"
            if with_thresholds
            else "no trial recorded per-class thresholds (threshold component off)",
        )
    )
    section.figures.append(
        Fig(
            "thresholds",
            labelled("Per-class thresholds over epochs", rank.oracle),
            _oracle(plots.thresholds_figure(thr, with_thresholds or ""), rank.oracle),
        )
    )

    lines = _curve_lines(ref)
    for name, title, panels, suptitle, caption in (
        ("accuracy", "Accuracy over epochs", ACCURACY, "Validation and test accuracy after each epoch", "in %"),
        (
            "unlabeled",
            "Mask rate and pseudo-label accuracy over epochs",
            UNLABELED,
            "Unlabeled samples above the threshold, and how often their pseudo-label is right",
            "in %",
        ),
        (
            "negative",
            "Negative learning's correctness over epochs",
            NEGATIVE,
            "Negative learning on the samples below the threshold: are its labels right?",
            "in %, on the unlabeled samples below the threshold",
        ),
    ):
        table = dynamics_tables.curves(epochs, trials, study, [c for c, _ in panels])
        section.tables.append(Table(name, labelled(title, picked), table, caption=f"{caption}; n: trials averaged"))
        figure = plots.curves_figure(table, _pct_panels(panels), suptitle, legend, ladder_like, rungs, lines=lines)
        section.figures.append(Fig(name, labelled(title, picked), _oracle(figure, picked)))

    _best_trial_tables(res, section, shown, rank, ref)
    return section


def _best_trial_tables(res: Results, section: Section, shown, rank, ref) -> None:
    """The best trial's per-class accuracy (with chance and supervised-only per class) and confusion matrix, at
    the epoch its shown numbers come from."""
    trials, epochs, study = res.trials, res.epochs, res.study
    ids = best_config(trials, study)
    best = ids[0] if ids else None
    epoch = selected_epoch(trials, epochs, best, shown) if best else None
    chosen = rank.oracle or shown.oracle
    if best is not None and epoch is not None:
        row = trials.filter(pl.col("trial_id") == best).row(0, named=True)
        what = summaries.describe(row, study, budget_key(trials, study))
        section.notes.append(
            f"best trial: {best}{f' ({what})' if what else ''}, the best seed of the best config by "
            f"`{rank.column}`; its per-class accuracy and confusion matrix are at epoch {epoch}, "
            f"its {shown.epoch_words}"
        )
        per_class = dynamics_tables.per_class_accuracy(epochs, best, epoch)
        counts = dynamics_tables.confusion(epochs, best, epoch)
        percent = dynamics_tables.confusion(epochs, best, epoch, normalize=True)
    else:
        section.notes.append("no finished search trial has a test accuracy: no per-class accuracy or confusion matrix")
        per_class = dynamics_tables.per_class_accuracy(epochs.clear(), "", 0)
        counts, percent = pl.DataFrame(), pl.DataFrame()
    against = reference_rung(baseline_names(trials, study))
    base_ids = baseline_at(trials, study, against, best)["trial_id"].to_list() if against else []
    base = dynamics_tables.mean_per_class_accuracy(epochs, trials, base_ids, shown)
    lines = []
    if ref is not None:
        lines.append(plots.Line(ref.chance_pct, f"chance (1/{ref.classes}): {ref.chance_pct:.1f}%", "chance"))
    where = f"trial {best}, epoch {epoch} ({shown.epoch_words})"
    section.tables += [
        Table(
            "per_class",
            labelled("Per-class test accuracy of the best trial", chosen),
            per_class,
            caption=f"{where}; accuracy in %, support: test images" if epoch is not None else "no trial to show",
        ),
        Table(
            "confusion",
            labelled("Test confusion matrix of the best trial", chosen),
            counts,
            caption=f"{where}; rows: true class, columns: predicted; counts"
            if epoch is not None
            else "no trial to show",
        ),
    ]
    per_class_fig = plots.per_class_figure(
        per_class,
        best or "",
        epoch,
        lines=lines,
        baseline=base,
        baseline_label=f"{against} baseline, mean of {len(base_ids)} seed(s)" if against else "",
    )
    section.figures += [
        Fig("per_class", labelled("Per-class test accuracy of the best trial", chosen), _oracle(per_class_fig, chosen)),
        Fig(
            "confusion",
            labelled("Test confusion matrix of the best trial", chosen),
            _oracle(plots.confusion_figure(percent, counts, best or "", epoch), chosen),
        ),
    ]


# ---- which analyses apply -------------------------------------------------------------------------------


def applicable(res: Results) -> list[str]:
    """The analyses that apply: the summary always first; the ablation when the study has variants; the search
    when it searched a hyper-parameter (a key other than the rung, the label budget and the seeds); the dynamics
    always."""
    names = ["summary"]
    if res.study.get("variants") or has_rungs(res.trials):
        names.append("ablation")
    if tuned_keys(res.study):
        names.append("search")
    return names + ["dynamics"]


def build(res: Results, name: str, which: str = "val", **options: Any) -> Section:
    builders = {"summary": summary, "ablation": ablation, "search": search, "dynamics": dynamics}
    if name not in builders:
        raise ValueError(f"unknown analysis {name!r}; allowed: {', '.join(SECTIONS)}")
    return builders[name](res, which, **options)
