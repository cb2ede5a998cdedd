"""The pretrained-starts evidence (search_spaces/pretrained_starts.yaml): one study per start, read together.

A start's budgets may come from several studies (one at 100 labels, another at 1000), never the same budget twice.

Per start and label budget: supervised-only and each method, test accuracy at the validation-selected epoch,
mean [95 % t-interval] over seeds, and each method's gain over supervised-only from the same start (the mean
paired difference over the seeds both ran, its t-interval, its paired t-test). Then, per budget, each pretrained
start's supervised-only against the random start's (same split and seeds, so paired). Two questions, two
families, each Holm-adjusted over its own p-values (ablate.results.stats): the methods' gains (the first table), and
the starts' effect on supervised-only (the lines after it); the words follow the adjusted p. Rows below the
majority class's rate are flagged (not a result), and so are gains over a supervised-only that is. A figure draws
the gains with their intervals against the label budget, one panel per start, one line per method.

    python benchmarks/pretrained_starts.py results/pretrained_starts_imagenet results/pretrained_starts_random \\
        results/pretrained_starts_pretrain --out results/pretrained_starts.png

Summary lines at the end, one per start and method: ``pretrained_starts imagenet lion 100 labels: gain +N.N
[low, high] pp, p (Holm, m = M) P``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

from ablate.report.ladder import ladder_table, runs_frame
from ablate.results.baselines import BELOW_MAJORITY, Reference, below_majority, reference_levels
from ablate.results.reader import load_results
from ablate.results.stats import holm, paired_t_test, verdict

START_NAMES = {None: "random", "imagenet": "imagenet", "pretrain": "pretrain"}
START_ORDER = {"imagenet": 0, "pretrain": 1, "random": 2}
TITLES = {"imagenet": "ImageNet start", "pretrain": "self-supervised start (SimCLR)", "random": "random start"}


def start_of(study: dict) -> str:
    weights = study["base"]["model"].get("weights")
    return START_NAMES.get(weights, str(weights))


def interval(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return "[–]"
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"[{f.format(low)}, {f.format(high)}]"


def rows_of(folder: str) -> tuple[str, list[dict], pl.DataFrame, Reference | None]:
    res = load_results(folder)
    table = ladder_table(res.trials, res.study)
    return (
        start_of(res.study),
        table.to_dicts(),
        runs_frame(res.trials, res.study),
        reference_levels(res.study, res.epochs),
    )


def below(r: dict, reference: Reference | None) -> bool:
    return below_majority(r["acc_mean"], r["mca_mean"], reference)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="the studies' results folders: one per start, or per start and budgets")
    p.add_argument("--out", default=None, help="where to write the figure (PNG); none by default")
    args = p.parse_args(argv)

    studies = [rows_of(f) for f in args.folders]
    lines = []  # (start, budget, what, mean text, gain, low, high, p)
    low_refs = set()  # (start, budget) whose supervised-only is below the majority class
    for start, rows, _, reference in studies:
        for r in rows:
            r = {**r, "below": below(r, reference)}
            if r["below"] and r["rung"] == r["ref_rung"]:
                low_refs.add((start, r["budget"]))
            if r["rung"] == r["ref_rung"]:
                lines.append((start, r["budget"], r["rung"], r, None, None, None, None))
            else:
                lines.append(
                    (start, r["budget"], r["rung"], r, r["acc_diff_ref"], r["acc_low_ref"], r["acc_high_ref"],
                     r["acc_p_ref"])
                )  # fmt: skip
    # the start itself: each pretrained start's supervised-only against the random start's, paired by seed
    frames: dict[str, pl.DataFrame] = {}  # a start's runs at different budgets read as one
    for start, _, frame, _ in studies:
        if start in frames:
            both = sorted(int(b) for b in set(frames[start]["budget"].to_list()) & set(frame["budget"].to_list()))
            if both:
                p.error(f"two {start} folders both hold {both} labels: give one folder per start and budget")
            frame = pl.concat([frames[start], frame], how="diagonal_relaxed")
        frames[start] = frame
    lines.sort(key=lambda line: (START_ORDER.get(line[0], 9), line[0], line[1]))  # stable: supervised-only first
    refs = {start: rows[0]["ref_rung"] for start, rows, _, _ in studies if rows}
    start_lines = []
    if "random" in frames:
        base = frames["random"].filter(pl.col("rung") == refs["random"])
        for start, frame in frames.items():
            if start == "random":
                continue
            mine = frame.filter(pl.col("rung") == refs[start])
            for budget in sorted(set(base["budget"].to_list())):
                a = dict(base.filter(pl.col("budget") == budget).select("pair", "acc").iter_rows())
                b = dict(mine.filter(pl.col("budget") == budget).select("pair", "acc").iter_rows())
                common = [k for k in a if k in b]
                test = paired_t_test([a[k] for k in common], [b[k] for k in common])
                start_lines.append((start, budget, test))
    # two questions, two families: does a method gain over supervised-only from the same start; does a start
    # change supervised-only
    p_values = [line[7] for line in lines if line[4] is not None]
    adjusted, m = iter(holm(p_values)), sum(v is not None for v in p_values)
    start_p = [t.p for _, _, t in start_lines]
    adjusted_start, m_start = iter(holm(start_p)), sum(v is not None for v in start_p)

    print(f"{'start':<9} {'labels':>6} {'method':<11} {'test acc % [95 % CI]':<22} {'gain pp [95 % CI]':<24} "
          f"{'p':>6} {'p (Holm, m = ' + str(m) + ')':>16}")  # fmt: skip
    summaries, points = [], []
    for start, budget, rung, r, gain, low, high, praw in lines:
        acc = f"{r['acc_mean']:.1f} {interval(r['acc_low'], r['acc_high'])} (n {r['n']})"
        flag = f" ({BELOW_MAJORITY})" if r["below"] else ""
        if gain is None:
            print(f"{start:<9} {budget:>6.0f} {rung:<11} {acc:<22}{flag}")
            continue
        padj = next(adjusted)
        gain_text = f"{gain:+.1f} {interval(low, high, True)}"
        if not flag and (start, budget) in low_refs:
            flag = " (over a supervised-only below the majority class)"
        print(f"{start:<9} {budget:>6.0f} {rung:<11} {acc:<22} {gain_text:<24} {praw:>6.3f} {padj:>9.3f} "
              f"{verdict(padj)}{flag}")  # fmt: skip
        summaries.append(
            f"pretrained_starts {start} {rung} {budget:.0f} labels: gain {gain_text} pp, p (Holm, m = {m}) {padj:.3f}"
        )
        points.append((start, rung, budget, gain, low, high))
    for start, budget, test in start_lines:
        padj = next(adjusted_start)
        if test.n == 0:
            print(f"{start} supervised-only over random's, {budget:.0f} labels: not run at this budget")
            continue
        text = f"{test.mean_diff:+.1f} {interval(test.low, test.high, True)}" if test.p is not None else "–"
        raw = "–" if test.p is None else f"{test.p:.3f}"
        held = "–" if padj is None else f"{padj:.3f}"
        floor = " (random's supervised-only is below the majority class)" if ("random", budget) in low_refs else ""
        print(f"{start} supervised-only over random's, {budget:.0f} labels: {text} pp over {test.n} seeds, "
              f"p {raw}, p (Holm, m = {m_start}) {held}: {verdict(padj)}{floor}")  # fmt: skip
        summaries.append(f"pretrained_starts {start} start {budget:.0f} labels: supervised gain {text} pp")
    if args.out:
        write_figure(points, Path(args.out))
        print(f"figure: {args.out}")
    for line in summaries:
        print(line)
    return 0


def write_figure(points: list[tuple], out: Path) -> None:
    """Each method's gain over supervised-only from the same start against the label budget, with intervals: one
    panel per start, so that the starts' lines do not hide each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts = sorted({s for s, *_ in points}, key=lambda s: (START_ORDER.get(s, 9), s))
    rungs = sorted({r for _, r, *_ in points})
    budgets = sorted({b for _, _, b, *_ in points})
    fig, axes = plt.subplots(
        1, len(starts), figsize=(3.6 * len(starts) + 0.8, 4.2), sharex=True, sharey=True, squeeze=False
    )
    for ax, start in zip(axes[0], starts, strict=True):
        for i, rung in enumerate(rungs):
            mine = sorted((b, g, lo, hi) for s, r, b, g, lo, hi in points if (s, r) == (start, rung))
            if not mine:
                continue
            x = [b * (1 + 0.06 * (i - (len(rungs) - 1) / 2)) for b, *_ in mine]  # nudged apart, log axis
            y = [g for _, g, _, _ in mine]
            err = [[g - (lo if lo is not None else g) for _, g, lo, _ in mine],
                   [(hi if hi is not None else g) - g for _, g, _, hi in mine]]  # fmt: skip
            ax.errorbar(x, y, yerr=err, fmt="o-", capsize=3, label=rung, color=f"C{i}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(budgets)
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.get_xaxis().set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("Labels (FER2013)")
        ax.set_title(TITLES.get(start, f"{start} start"), fontsize=10)
    axes[0][0].set_ylabel("Gain over supervised-only, same start (pp)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Semi-supervised gain by start and label budget: mean paired difference, 95 % t-interval over seeds",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
