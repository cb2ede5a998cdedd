"""Turn a study's results into tables and figures: ``python -m ablate.report results/NAME [--out DIR]``.

Runs the analyses that apply (the summary always first: the best config against chance, the majority class and
the baselines, and the trials that did not finish; the ablation ladder when the study has variants; the search
when it searched hyper-parameters; the training dynamics always) and writes ``DIR/<analysis>/`` (each table as .md and
.csv, each figure as .png) and ``DIR/index.md`` (and ``index.html``) linking them; DIR defaults to
``results/NAME/report``. The analyses live in ``analysis/`` (the marimo notebooks show the same tables and
figures), so launching runs and analysing them stay separate: this module never trains.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ablate.cli import guarded
from ablate.errors import AblateError

ANALYSES = ("summary", "ablation", "search", "dynamics")
WHICH = ("val", "last", "oracle")  # ablate.results.selection.WHICH, named here so that --help works without the extra


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ablate.report", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "results",
        help="a results folder written by `python -m ablate.run` (trials.parquet, epochs.parquet, study.json)",
    )
    p.add_argument("--out", help="where the report goes (default: RESULTS/report)")
    p.add_argument(
        "--which",
        choices=WHICH,
        default="val",
        help="the test numbers every table and figure shows: at each trial's best-validation epoch (val, default), "
        "at its last epoch (last), or at its best test epoch (oracle: selected on test, labelled so everywhere)",
    )
    p.add_argument(
        "--only", action="append", choices=ANALYSES, help="run only this analysis (repeatable); default: all that apply"
    )
    p.add_argument(
        "--min-effect",
        type=float,
        metavar="POINTS",
        help="the smallest gain worth detecting, in points: the summary says how many seeds detect it at 80 %% "
        "power (default: the study file's report.min_effect)",
    )
    args = p.parse_args(argv)
    if args.min_effect is not None and not args.min_effect > 0:
        p.error(f"--min-effect: expected a positive number of points, got {args.min_effect:g}")
    return args


def load_analysis():
    """The ``analysis`` package (installed with ablate); its plots need the ``analysis`` extra."""
    try:
        from ablate.report import page as report
        from ablate.results import reader as results
    except ModuleNotFoundError as err:
        if err.name in ("matplotlib", "marimo", "scipy", "statsmodels"):
            raise AblateError(f"the report needs {err.name}: pip install -e '.[analysis]'") from None
        raise
    return report, results


def report(args: argparse.Namespace) -> Path:
    writer, reader = load_analysis()
    results = reader.load_results(args.results)
    if args.min_effect is not None:  # the flag wins over the study file's report.min_effect
        results.study["report"] = {**(results.study.get("report") or {}), "min_effect": args.min_effect}
    out = Path(args.out) if args.out else Path(args.results) / "report"
    if out.exists() and not out.is_dir():
        raise AblateError(f"--out {out}: exists and is not a folder")
    only = [a for a in ANALYSES if a in args.only] if args.only else None  # the summary stays first
    index = writer.write_report(results, out, which=args.which, only=only)
    files = sum(1 for f in out.rglob("*") if f.is_file())
    print(f"report of {results.name}: {index} ({files} files: tables as .md and .csv, figures as .png)")
    return index


def main(argv: list[str] | None = None) -> int:
    return guarded(report, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
