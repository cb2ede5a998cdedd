"""What the marimo notebooks (``ablation.py``, ``search.py``, ``dynamics.py``) share: their command line, the
results they load, and the export of their section."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ablate.report.section import Section
from ablate.results.reader import Results, ResultsError, load_results
from ablate.results.selection import WHICH


def notebook_args(name: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of a notebook: ``python analysis/NAME.py -- RESULTS [--out DIR] [--which val|last|oracle]``
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
        choices=WHICH,
        default="val",
        help="the test numbers shown: at each trial's best-validation epoch (val, default), at its last epoch, "
        "or its best test epoch (oracle: selected on test, labelled so)",
    )
    return p.parse_args(args)


def notebook_setup(
    name: str, script: bool, argv: Sequence[str] | None = None
) -> tuple[argparse.Namespace, Results | None, str]:
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
            res = load_results(args.folder)
        except ResultsError as err:
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
