"""Turn a study's results into tables and figures: ``python -m ablate.report results/NAME [--out DIR]``.

Runs the analyses that apply (the ablation ladder when the study has variants, the search summary when it
searched hyper-parameters, the training dynamics always) and writes ``DIR/<analysis>/`` (each table as .md and
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

ANALYSES = ("ablation", "search", "dynamics")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ablate.report", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "results",
        help="a results folder written by `python -m ablate.run` (trials.parquet, epochs.parquet, study.json)",
    )
    p.add_argument("--out", help="where the report goes (default: RESULTS/report)")
    p.add_argument(
        "--which",
        choices=("best", "last"),
        default="best",
        help="the ablation ladder's accuracy: each trial's best epoch (default) or its last epoch",
    )
    p.add_argument(
        "--only", action="append", choices=ANALYSES, help="run only this analysis (repeatable); default: all that apply"
    )
    return p.parse_args(argv)


def load_analysis():
    """The ``analysis`` package (installed with ablate); its plots need the ``analysis`` extra."""
    try:
        from analysis import sections, tables
    except ModuleNotFoundError as err:
        if err.name in ("matplotlib", "marimo"):
            raise AblateError(f"the report needs {err.name}: pip install -e '.[analysis]'") from None
        raise
    return sections, tables


def report(args: argparse.Namespace) -> Path:
    sections, tables = load_analysis()
    results = tables.load_results(args.results)
    out = Path(args.out) if args.out else Path(args.results) / "report"
    if out.exists() and not out.is_dir():
        raise AblateError(f"--out {out}: exists and is not a folder")
    only = list(dict.fromkeys(args.only)) if args.only else None
    index = sections.write_report(results, out, which=args.which, only=only)
    files = sum(1 for f in out.rglob("*") if f.is_file())
    print(f"report of {results.name}: {index} ({files} files: tables as .md and .csv, figures as .png)")
    return index


def main(argv: list[str] | None = None) -> int:
    return guarded(report, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
