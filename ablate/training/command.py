"""One run without Ray: ``python -m ablate.train --config FILE [--set key=value ...] [--out DIR] [--resume DIR]``.

Writes to the run folder: ``config.yaml`` (every key resolved), ``metrics.jsonl`` (one line per epoch),
``checkpoint.pt`` (after every epoch) and ``summary.json``. ``--resume DIR`` continues from the last checkpoint
and ends with the same metrics an uninterrupted run would have.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ablate.cli import add_set_option, guarded
from ablate.config.params import load_yaml
from ablate.config.plugins import refusing_plugins
from ablate.config.run import load_config, param_listing, preset_path, resolve_config
from ablate.data import load_data
from ablate.errors import AblateError
from ablate.io import atomic_torch_save, atomic_write_text, load_checkpoint_safely, make_writable_folder, write_jsonl
from ablate.training.trainer import Trainer

PROGRESS_EVERY = 20
SUMMARY_KEYS = (
    "val_acc",
    "test_acc",
    "test_acc_at_best_val",
    "test_mean_class_acc_at_best_val",
    "unlabeled_mask_rate",
    "unlabeled_pseudo_acc",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ablate.train",
        description=__doc__.split("\n\n")[0],
        epilog="A config file is code, as a Makefile is: its `plugins:` import Python files or modules. Run a file "
        "you did not write with --no-plugins, or read its plugins first.",
    )
    parser.add_argument("--config", help="a config file, or a preset name: supervised, fixmatch, adacm, lion, leaf")
    add_set_option(parser, "config")
    parser.add_argument("--out", help="the run folder (default runs/<config>-<time>)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-plugins",
        action="store_true",
        help="refuse a config whose `plugins:` would import Python code (for config files you did not write)",
    )
    parser.add_argument(
        "--list-params",
        action="store_true",
        help="print every config parameter with its default and doc, and exit (with --config: its plugins' too)",
    )
    args = parser.parse_args(argv)
    if args.list_params:
        return args
    if bool(args.config) == bool(args.resume):
        parser.error("give --config FILE for a new run, or --resume DIR to continue one")
    return args


def prepare_run(args: argparse.Namespace) -> tuple[dict[str, Any], Path, dict[str, Any] | None]:
    """The config, the run folder and the checkpoint to continue from (None for a new run)."""
    if args.resume:
        out = Path(args.resume)
        if not (out / "config.yaml").is_file():
            raise AblateError(f"--resume {out}: not a run folder (no config.yaml); give the folder a run wrote")
        config = resolve_config(load_yaml(out / "config.yaml"))
        checkpoint = out / "checkpoint.pt"
        state = load_checkpoint_safely(checkpoint, f"--resume {checkpoint}") if checkpoint.is_file() else None
        return config, out, state
    path = preset_path(args.config)
    config = load_config(path, args.set)
    out = Path(args.out) if args.out else Path("runs") / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    make_writable_folder(out, f"--out {out}" if args.out else f"the run folder {out}")
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    return config, out, None


def progress_bar(trainer: Trainer, quiet: bool):
    """A tqdm bar over all steps whose postfix shows the loss terms; None when quiet."""
    if quiet:
        return None, None
    from tqdm import tqdm

    settings = trainer.settings
    total = settings["epochs"] * settings["steps_per_epoch"]
    bar = tqdm(total=total, initial=trainer.epoch * settings["steps_per_epoch"], file=sys.stderr, dynamic_ncols=True)

    def on_step(step: int, metrics: dict[str, Any]) -> None:
        bar.update(1)
        # Reading a loss syncs with the device: the postfix is refreshed every PROGRESS_EVERY steps only.
        if step % PROGRESS_EVERY == 0:
            losses = {k.removeprefix("loss_"): f"{float(v):.3f}" for k, v in metrics.items() if k.startswith("loss")}
            bar.set_postfix(losses, refresh=False)

    return bar, on_step


def run(args: argparse.Namespace) -> dict[str, Any]:
    config, out, state = prepare_run(args)
    trainer = Trainer(config, load_data(config["data"]))
    if state is not None:
        trainer.load_state_dict(state)
    bar, on_step = progress_bar(trainer, args.quiet)

    def on_epoch(metrics: dict[str, Any]) -> None:
        write_jsonl(out / "metrics.jsonl", trainer.history)
        atomic_torch_save(out / "checkpoint.pt", trainer.state_dict())
        line = "  ".join(f"{k}={metrics[k]:.4f}" for k in SUMMARY_KEYS if k in metrics)
        print(
            f"epoch {metrics['epoch']}/{trainer.settings['epochs']}  {line}",
            file=sys.stderr if bar else sys.stdout,
            flush=True,
        )

    trainer.fit(on_epoch=on_epoch, on_step=on_step)
    if bar is not None:
        bar.close()
    last = trainer.history[-1]
    summary = {"run": str(out), "epochs": trainer.epoch, **{k: last[k] for k in SUMMARY_KEYS if k in last}}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with refusing_plugins(args.no_plugins):
        return guarded(list_params if args.list_params else run, args)


def list_params(args: argparse.Namespace) -> int:
    """Every parameter; with --config, after loading the plugins that config names, so theirs are listed too."""
    if args.config:
        load_config(preset_path(args.config), args.set)
    print(param_listing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
