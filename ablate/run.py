"""Run a study on Ray Tune: ``python -m ablate.run --space search_spaces/lion.yaml``.

The study file is validated, the data set decoded once and put into Ray's object store, the trials run (each
with its CPUs or its share of a GPU), and ``results/<name>/trials.parquet`` and ``epochs.parquet`` are written
from Ray's per-trial files, after the run and again after ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

from ablate.cli import guarded
from ablate.data import load_data
from ablate.errors import ConfigError
from ablate.io import atomic_write_text
from ablate.search import grid_size, make_scheduler, make_search_alg, ray_param_space
from ablate.study import Study, load_study

# num_to_keep=1 forces an experiment snapshot after every epoch checkpoint, which is what makes --resume lose
# nothing; Tune warns about that frequency on every epoch, so the warning is switched off.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

EXPERIMENT = "ray"  # Ray's experiment folder inside results/<name>/
STUDY_FILE = "study.json"  # the validated study, so the tables can be rebuilt from the files alone


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ablate.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--space", required=True, help="the study file, e.g. search_spaces/lion.yaml")
    p.add_argument(
        "--data",
        metavar="NAME[:PATH]",
        help="another data source, e.g. rafdb:/data/RAF-DB or fer2013:/data/fer2013.csv",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a study key, e.g. trainer.epochs=3"
    )
    p.add_argument("--name", help="the study's name (default: the file's `name`); results go to STORAGE/NAME")
    p.add_argument(
        "--storage", default="results", help="where results go (default ./results; shared storage on a cluster)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted study: finished trials are kept, unfinished ones resume",
    )
    p.add_argument("--address", help="join a running Ray cluster: auto or HOST:PORT (default: start a local Ray)")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard and print its address")
    p.add_argument("--num-samples", type=int, help="override search.num_samples")
    return p.parse_args(argv)


def study_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    if args.data:
        name, _, path = args.data.partition(":")
        overrides += [f"data.name={name}", f"data.path={path or 'null'}"]
        if name != "synthfer":
            overrides.append("data.options={}")  # synthfer's options do not apply to a real source
    overrides += args.set  # after --data, so --set data.options=... still applies
    if args.num_samples is not None:
        overrides.append(f"search.num_samples={args.num_samples}")
    if args.name:
        overrides.append(f"name={args.name}")
    return overrides


def study_record(study: Study) -> dict[str, Any]:
    return {
        "name": study.name,
        "file": str(study.path),
        "base": study.base,
        "variants": study.variants,
        "params": study.params,
        "search": study.search,
        "scheduler": study.scheduler,
        "resources": study.resources,
    }


def start_ray(args: argparse.Namespace) -> None:
    import ray

    if args.address:
        ray.init(address=args.address, include_dashboard=args.dashboard or None)
    else:
        context = ray.init(
            num_cpus=os.cpu_count(), include_dashboard=args.dashboard, dashboard_host="127.0.0.1", log_to_driver=True
        )
        if args.dashboard:
            url = context.dashboard_url or "127.0.0.1:8265"
            print(f"Ray dashboard: http://{url}  (sign in with the token printed by `ray get-auth-token`)", flush=True)


def fit_resources(resources: dict[str, float]) -> dict[str, float]:
    """A GPU asked for on a cluster without one falls back to CPUs, with a warning (documented in the README)."""
    import ray

    available = ray.cluster_resources().get("GPU", 0)
    if resources["gpu"] > 0 and available == 0:
        print(
            f"warning: resources.gpu={resources['gpu']} but this Ray cluster has no GPU; running the trials on CPUs "
            "(set resources.gpu=0 to silence this)",
            file=sys.stderr,
            flush=True,
        )
        return {**resources, "gpu": 0.0}
    return resources


def build_tuner(study: Study, out: Path, data_ref: Any, resume: bool):
    from ray import tune

    from ablate.trial import train_trial

    resources = fit_resources(study.resources)
    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial,
            data=data_ref,
            base=study.base,
            variants=study.variants,
            cpu=resources["cpu"],
            gpu=resources["gpu"],
        ),
        {"cpu": resources["cpu"], "gpu": resources["gpu"]},
    )
    if resume:
        return tune.Tuner.restore(
            str(out / EXPERIMENT),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
    return tune.Tuner(
        trainable,
        param_space={} if study.search["algorithm"] == "optuna" else ray_param_space(study),
        tune_config=tune.TuneConfig(
            metric=study.search["metric"],
            mode=study.search["mode"],
            search_alg=make_search_alg(study),
            scheduler=make_scheduler(study),
            num_samples=study.search["num_samples"]
            * (study.search["repeats"] if study.search["algorithm"] == "optuna" else 1),
            max_concurrent_trials=study.search["max_concurrent"],
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(out),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            verbose=1,
        ),
    )


def summarise(study: Study, trials: pl.DataFrame, out: Path) -> str:
    metric, mode = study.search["metric"], study.search["mode"]
    column = metric if metric.startswith("best_") else f"last_{metric}"
    counts = ", ".join(f"{n} {s}" for s, n in trials.group_by("status").len().sort("status").iter_rows())
    lines = [f"study {study.name}: {trials.height} trials ({counts})"]
    ranked = trials.filter(pl.col(column).is_not_null()).sort(column, descending=mode == "max")
    if ranked.height:
        best = ranked.row(0, named=True)
        searched = {k: best.get(k) for k in study.params}  # config columns are named by their dotted keys
        lines.append(f"best trial {best['trial_id']}: {column} = {best[column]:.4f}  {json.dumps(searched)}")
    lines.append(f"results: {out / 'trials.parquet'}, {out / 'epochs.parquet'}")
    lines.append(f"report:  python -m ablate.report {out}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> pl.DataFrame:
    from ablate.results import collect

    study = load_study(args.space, study_overrides(args))
    out = (Path(args.storage) / study.name).resolve()
    if args.resume and not (out / EXPERIMENT).is_dir():
        raise ConfigError(f"--resume: no study to resume at {out}; run it first without --resume")
    if not args.resume and (out / EXPERIMENT).exists():
        raise ConfigError(
            f"{out} already holds a study named {study.name!r}: add --resume to continue it, or --name NEW for a new one"
        )
    faces = load_data(study.base["data"])  # decode (or read the cache) before Ray starts, so bad data fails fast
    out.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        atomic_write_text(out / STUDY_FILE, json.dumps(study_record(study), indent=2, default=str))
    record = json.loads((out / STUDY_FILE).read_text())

    import ray

    from ablate.trial import to_shared

    started = time.time()
    start_ray(args)
    try:
        data_ref = ray.put(to_shared(faces))  # once; every trial on the node reads it from the object store
        n = grid_size(study) * study.search["num_samples"] * study.search["repeats"]
        print(
            f"study {study.name}: {n} trial(s), {study.resources['cpu']:g} CPU / {study.resources['gpu']:g} GPU each; results in {out}",
            flush=True,
        )
        build_tuner(study, out, data_ref, args.resume).fit()
    finally:
        ray.shutdown()
    trials, _ = collect(out / EXPERIMENT, out, record)
    print(summarise(study, trials, out) + f"\ntook {time.time() - started:.0f} s", flush=True)
    return trials


def main(argv: list[str] | None = None) -> int:
    return guarded(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
