"""What every ablate command shares, and the console command ``ablate run | train | report | pretrain | params``.

A user's mistake is one line on stderr and exit code 2, not a traceback (an error may carry its own
``exit_code``); a command that returns an exit code of its own (an int) exits with it. Each subcommand is the
module that ``python -m`` runs (``ablate.run``, ``ablate.train``, ``ablate.report``); ``ablate params`` is
``ablate train --list-params``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ablate.errors import AblateError

# subcommand -> (module with main(argv), arguments put first, what it does)
COMMANDS = {
    "run": ("ablate.sweep.driver", (), "run a study on Ray Tune: ablate run --space search_spaces/lion.yaml"),
    "train": ("ablate.training.command", (), "one run without Ray: ablate train --config lion"),
    "report": ("ablate.report.command", (), "tables and figures of a results folder: ablate report results/lion"),
    "pretrain": ("ablate.training.pretrain", (), "self-supervised pretraining of a backbone, cached for trials"),
    "params": ("ablate.training.command", ("--list-params",), "every config parameter, its default and its doc"),
}


def guarded(command: Callable[[Any], Any], args: Any) -> int:
    try:
        result = command(args)
    except AblateError as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def add_set_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--set KEY=VALUE``, repeatable: the one override syntax of every command (parsed by apply_overrides)."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a {what} key (dotted; the value is YAML), e.g. trainer.epochs=3; repeatable",
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="ablate",
        description="Hyper-parameter searches and ablation studies of semi-supervised facial expression recognition.",
        epilog="\n".join(f"  {name:8s}{doc}" for name, (_, _, doc) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=COMMANDS, help="see below; `ablate COMMAND --help` for its options")
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv[:1])  # --help, or an unknown command: argparse's message and exit code
        return 2
    module, first, _ = COMMANDS[argv[0]]
    return importlib.import_module(module).main([*first, *argv[1:]])
