"""Run a study on Ray Tune: ``python -m ablate.run --space search_spaces/lion.yaml``.

Everything that can be checked is checked before Ray starts: the study file, the name, the storage, the address
of a cluster, the data and every split the trials can ask for. The study folder (``STORAGE/NAME``, a folder or
a URI) is locked while a driver runs it. The data set is decoded once and put into Ray's object store; the
search runs as one Ray Tune experiment (``ray/``), the study's baselines as a second one (``ray_baselines/``)
and, when the study has baselines, the best searched config re-run on the baselines' seeds it has not run as a
third (``ray_confirm/``, role confirm: so its gain is paired over every baseline seed), each trial with its CPUs
or its share of a GPU; each experiment resumes with ``--resume``. ``trials.parquet`` and ``epochs.parquet``
are then written from what the trials recorded, after the run and again after ``--resume``; a summary puts the
best trial beside chance, the majority class and the baselines.

Ctrl-C or SIGTERM (what batch schedulers send) stops the trials once Ray Tune has saved its state, writes the
tables of what ran and releases the lock; ``--resume`` finishes the study. The exit code says how the study ended
(``EXIT_CODES``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ablate.cli import add_set_option, guarded
from ablate.config.compose import CONFIRMS, REPEAT, TRIAL_INDEX
from ablate.config.params import flatten
from ablate.config.plugins import refusing_plugins
from ablate.config.study import Study, check_name, load_study, trial_config
from ablate.data import check_split, load_data
from ablate.errors import AblateError, ConfigError
from ablate.io import make_writable_folder
from ablate.results.records import (
    BASELINE,
    CHECKPOINT_FILE,
    COMPLETE,
    CONFIRM,
    ERROR,
    EXPERIMENTS,
    RANKED,
    SEARCH,
    STUDY_FILE,
    added_seed_experiment,
)
from ablate.results.storage import Storage, is_uri
from ablate.sweep.baselines import SEED, baseline_points, baseline_seeds, reference, split_sections
from ablate.sweep.interrupt import catch_interrupt
from ablate.sweep.lock import StudyLock
from ablate.sweep.search import make_baseline_search, make_scheduler, make_search_alg, ray_param_space, search_trials

# What a resumed study must share with the one it continues: everything that decides which trials run and how.
RESUME_KEYS = (
    "base",
    "variants",
    "params",
    "search",
    "scheduler",
    "resources",
    "baselines",
    "baseline_seeds",
    "baseline_configs",
)

# How the driver ends; a pipeline reads them (README, --help).
EXIT_OK = 0
EXIT_USAGE = 2  # refused before any trial ran: a bad study file, --set, storage, address, data or split
EXIT_FAILED_TRIALS = 3  # the study finished, and some of its trials failed with an error
EXIT_NOTHING_SUCCEEDED = 4  # the study finished, and no trial has a result (each failed or diverged)
EXIT_STORAGE_FULL = 5  # the study stopped: its storage filled up (free space there, then --resume)
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal: finish it with --resume
EXIT_CODES = f"""exit codes:
  {EXIT_OK}    the study finished and every trial ran (a diverged trial is a result: not ranked)
  {EXIT_USAGE}    refused before any trial ran (one line says why)
  {EXIT_FAILED_TRIALS}    the study finished, with failed trials (the summary names the first error)
  {EXIT_NOTHING_SUCCEEDED}    the study finished and no trial succeeded (each failed or diverged)
  {EXIT_STORAGE_FULL}    the study stopped: its storage is full; free space there, then add --resume
  130  interrupted by Ctrl-C, 143 by SIGTERM: the tables hold what ran; add --resume to finish the study"""
STUDY_IS_CODE = """A study file is code, as a Makefile is: its `plugins:` import Python files or modules, run in the
driver and in every trial. Run a study file you did not write with --no-plugins, or read its plugins first."""
TRACKERS = ("mlflow", "wandb")  # --log: ablate.sweep.tracking (imported with Ray, after the checks)
# Ray's files per trial beside its checkpoint (results, progress, parameters), an upper estimate.
RAY_FILES_PER_TRIAL = 1_000_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m ablate.run",
        description=__doc__.split("\n\n")[0],
        epilog=f"{STUDY_IS_CODE}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", required=True, help="the study file, e.g. search_spaces/lion.yaml")
    p.add_argument(
        "--data",
        metavar="NAME[:PATH]",
        help="another data source, e.g. rafdb:/data/RAF-DB or fer2013:/data/fer2013.csv",
    )
    add_set_option(p, "study")
    p.add_argument("--name", help="the study's name (default: the file's `name`); results go to STORAGE/NAME")
    p.add_argument(
        "--storage",
        default="results",
        help="where results go: a folder (default ./results; shared storage on a cluster) or a URI (s3://bucket/prefix)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted study: finished trials are kept, unfinished ones resume",
    )
    p.add_argument("--address", help="join a running Ray cluster: auto or HOST:PORT (default: start a local Ray)")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard and print its address")
    p.add_argument("--num-samples", type=int, help="override search.num_samples")
    p.add_argument(
        "--log",
        action="append",
        choices=TRACKERS,
        default=[],
        help="also log every trial to this tracker (repeatable): mlflow (an SQLite store in the study folder, or "
        "MLFLOW_TRACKING_URI), wandb (offline where no WANDB_API_KEY is set); TensorBoard files are always written",
    )
    p.add_argument(
        "--no-plugins",
        action="store_true",
        help="refuse a study whose `plugins:` would import Python code (for study files you did not write)",
    )
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
    return overrides


def study_record(study: Study, test_reference: dict[str, Any], log: list[str] = ()) -> dict[str, Any]:
    """study.json: the validated study, its baselines' configs and the references of its test split."""
    record = {
        "name": study.name,
        "file": str(study.path),
        "base": study.base,
        "variants": study.variants,
        "params": study.params,
        "search": study.search,
        "scheduler": study.scheduler,
        "resources": study.resources,
        "baselines": list(study.baselines),
        "baseline_seeds": study.baseline_seeds,
        "baseline_configs": study.baselines,
        "report": study.report,
        "reference": test_reference,
        "log": sorted(set(log)),
    }
    return json.loads(json.dumps(record, default=str))  # as it reads back from the file


def resume_differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The keys that decide what runs and differ between the stored study and this command's. A key the stored
    study lacks and this command leaves null is a setting added since, off: not a difference."""
    old = flatten({k: stored[k] for k in RESUME_KEYS if k in stored})
    new = flatten({k: now[k] for k in RESUME_KEYS})
    missing = "(absent)"
    return [
        f"{key}: {old.get(key, missing)!r} -> {new.get(key, missing)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing) and not (key not in old and new.get(key) is None)
    ]


# ---- before Ray starts ------------------------------------------------------------------------------------


def check_address(address: str | None) -> None:
    """A HOST:PORT that nothing answers is refused at once (Ray would retry for minutes)."""
    if not address or address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected auto or HOST:PORT, e.g. 10.0.0.5:6379")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise AblateError(
            f"--address {address}: no Ray cluster answers there ({err.strerror or err}); check the address "
            "(`ray status` on the head node), or leave out --address to run on this machine"
        ) from None


def open_study_folder(storage: str, name: str) -> tuple[Storage, Storage | None]:
    """The study folder, created if missing and checked writable; and the topmost folder this call created
    (removed again if the study fails to start), or None."""
    what = f"--storage {storage}"
    if is_uri(storage):
        try:
            folder = Storage(storage).child(name)
            created = None if folder.exists() else folder
            folder.makedirs()
            folder.write_text(".ablate-write-test", "")
            folder.delete_file(".ablate-write-test")
        except Exception as err:
            raise AblateError(f"{what}: cannot write there ({err}); give a URI you can write to") from None
        return folder, created
    path = Path(storage).absolute() / name
    first_missing = make_writable_folder(path, what, hint=" or a URI (s3://...)")
    return Storage(str(path)), Storage(str(first_missing)) if first_missing else None


def remove_created(created: Storage | None) -> None:
    if created is not None:
        with contextlib.suppress(OSError):  # what could not be created cannot be removed either
            created.delete_dir()


def study_lock(folder: Storage, name: str) -> StudyLock:
    """In the study folder; for a URI, on this machine (an object store has no exclusive create)."""
    if folder.local:
        return StudyLock(Path(folder.path(".lock")), f"study {name!r} ({folder})")
    import hashlib

    cache = Path(os.environ.get("ABLATE_CACHE", Path.home() / ".cache" / "ablate"))
    key = hashlib.sha256(folder.location.encode()).hexdigest()[:16]
    return StudyLock(cache / "locks" / f"{key}.lock", f"study {name!r} ({folder})")


def check_splits(study: Study, faces) -> None:
    """Every split the trials can ask for (each budget, split seed and validation size of the base, the variants
    and the search), checked on the loaded data before Ray starts."""
    for where, data in split_sections(study):
        check_split(faces, data, where)


def check_folder_state(folder: Storage, study: Study, resume: bool) -> None:
    has_study = folder.is_dir(EXPERIMENTS[SEARCH]) or folder.is_file(STUDY_FILE)
    if resume and not has_study:
        raise ConfigError(f"--resume: no study to resume at {folder}; run it first without --resume")
    if not resume and has_study:
        raise ConfigError(
            f"{folder} already holds a study named {study.name!r}: add --resume to continue it, "
            "or --name NEW for a new one"
        )


def checkpoint_bytes(study: Study, num_classes: int) -> int:
    """One trial's checkpoint, estimated: the model's state four times (the model, the EMA teacher, Adam's two
    moments), for the largest model of the base, the variants and the baselines."""
    from ablate.config.study import trial_config
    from ablate.models import build_model

    variants = [trial_config(study.base, study.variants, {"variant": v}) for v in study.variants]
    models = {json.dumps(c["model"], sort_keys=True) for c in [study.base, *study.baselines.values(), *variants]}
    sizes = []
    for model in map(json.loads, models):
        state = build_model({**model, "weights": None}, num_classes).state_dict()
        sizes.append(4 * sum(t.numel() * t.element_size() for t in state.values()))
    return max(sizes)


def check_free_space(folder: Storage, study: Study, trials: int, num_classes: int) -> None:
    """Refuse a study whose checkpoints cannot fit in a local storage's free space (an object store's is not known).
    On --resume, the checkpoints already written are counted as written."""
    if not folder.local:
        return
    per_trial = checkpoint_bytes(study, num_classes) + RAY_FILES_PER_TRIAL
    written = sum(f.stat().st_size for f in Path(folder.path()).glob(f"ray*/*/{CHECKPOINT_FILE}"))
    need = trials * per_trial - written
    free = shutil.disk_usage(folder.path()).free
    if free < need:
        raise AblateError(
            f"--storage {folder}: {free / 1e6:.1f} MB free, and the study needs about {need / 1e6:.1f} MB "
            f"({trials} trials x {per_trial / 1e6:.1f} MB of checkpoint and Ray's files); free some space there or "
            "give another --storage"
        )


class StorageFull(AblateError):
    """The study's storage filled up while it ran: Ray Tune and the tables could not be written."""

    exit_code = EXIT_STORAGE_FULL


def storage_full(folder: Storage, err: BaseException) -> StorageFull | None:
    """The error to report instead of ``err`` when a local storage has no room left (Ray Tune's own errors then
    are a truncated file or a failed copy, far from the cause); None otherwise."""
    if not folder.local or not isinstance(err, (OSError, EOFError)):
        return None
    try:
        free = shutil.disk_usage(folder.path()).free
    except OSError:
        return None
    if free >= RAY_FILES_PER_TRIAL and getattr(err, "errno", None) != errno.ENOSPC:
        return None
    return StorageFull(
        f"--storage {folder}: no space left on the device ({free / 1e6:.1f} MB free), so the study stopped "
        f"({type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else 'no detail'}); "
        "free space there, then run the same command with --resume"
    )


def check_resume(folder: Storage, record: dict[str, Any]) -> None:
    try:
        stored = json.loads(folder.read_text(STUDY_FILE))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"--resume: {folder}/{STUDY_FILE} cannot be read ({err}); the study cannot resume") from None
    if stored.get("log", []) != record["log"]:  # Ray restores an experiment with the callbacks it started with
        raise ConfigError(
            f"--resume: the study started with --log {stored.get('log', []) or 'none'}, this command asks for "
            f"{record['log'] or 'none'}; resume with the same --log"
        )
    changed = resume_differences(stored, record)
    if changed:
        shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise ConfigError(
            f"--resume: this command's study differs from the one {folder} holds ({shown}); resume with the same "
            "study file, --set and --num-samples, or give --name NEW to start another study"
        )


# ---- Ray ----------------------------------------------------------------------------------------------------


def start_ray(args: argparse.Namespace) -> None:
    import ray

    try:
        if args.address:
            ray.init(address=args.address, include_dashboard=args.dashboard or None)
        else:
            # "local": a new Ray of our own, never a cluster that someone started with `ray start` here
            context = ray.init(
                address="local",
                num_cpus=os.cpu_count(),
                include_dashboard=args.dashboard,
                dashboard_host="127.0.0.1",
                log_to_driver=True,
            )
            if args.dashboard:
                url = context.dashboard_url or "127.0.0.1:8265"
                print(f"Ray dashboard: http://{url}  (sign in with the token `ray get-auth-token` prints)", flush=True)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        ray.shutdown()
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if args.address == "auto":
            reason = "no running Ray cluster found on this machine"
        raise AblateError(
            f"--address {args.address}: cannot connect ({reason}); start a cluster with `ray start --head`, "
            "or leave out --address to run on this machine"
            if args.address
            else f"cannot start Ray on this machine: {reason}"
        ) from None


def fit_resources(resources: dict[str, float]) -> tuple[dict[str, float], str]:
    """The resources each trial gets, and how to say so: a GPU asked for on a cluster without one falls back
    to CPUs, with a warning (documented in the README)."""
    import ray

    available = ray.cluster_resources().get("GPU", 0)
    cpus = f"{resources['cpu']:g} CPU"
    if resources["gpu"] > 0 and available == 0:
        print(
            f"warning: resources.gpu={resources['gpu']:g} but this Ray cluster has no GPU; running the trials on CPUs "
            "(set resources.gpu=0 to silence this)",
            file=sys.stderr,
            flush=True,
        )
        return {**resources, "gpu": 0.0}, f"{cpus} each, on CPUs (no GPU in this Ray cluster)"
    if resources["gpu"] > 0:
        return resources, f"{cpus} and {resources['gpu']:g} GPU each"
    return resources, f"{cpus} each, on CPUs"


def build_tuner(
    study: Study,
    folder: Storage,
    role: str,
    data_ref: Any,
    resources: dict[str, float],
    points: list[dict[str, Any]],
    resume: bool,
    callbacks: list[Any] = (),
    name: str | None = None,
):
    """The role's Tuner (in its experiment folder, or ``name``): restored where Ray saved it (with the callbacks
    it started with), else new."""
    from ray import tune

    from ablate.sweep.optuna_journal import OPTUNA_FILE
    from ablate.sweep.trial import train_trial

    name = name or EXPERIMENTS[role]
    experiment = folder.child(name)
    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial,
            data=data_ref,
            base=study.base,
            variants=study.variants,
            baselines=study.baselines,
            experiment=experiment.location,
            cpu=resources["cpu"],
            gpu=resources["gpu"],
        ),
        {"cpu": resources["cpu"], "gpu": resources["gpu"]},
    )
    if resume and tune.Tuner.can_restore(experiment.location):
        return tune.Tuner.restore(
            experiment.location,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
    experiment.delete_dir()  # a start that was cut before Ray saved anything: nothing to resume there
    if role == SEARCH:
        optuna = study.search["algorithm"] == "optuna"
        folder.delete_file(OPTUNA_FILE)  # ... nor in the Optuna study that start began
        tune_config = tune.TuneConfig(
            metric=study.search["metric"],
            mode=study.search["mode"],
            search_alg=make_search_alg(study, folder.local_path(OPTUNA_FILE)),
            scheduler=make_scheduler(study, folder.location),
            num_samples=study.search["num_samples"] * (study.search["repeats"] if optuna else 1),
            max_concurrent_trials=study.search["max_concurrent"] if optuna else None,
            reuse_actors=True,
        )
        space = {} if optuna else ray_param_space(study)
    else:  # the baselines and the confirmation trials: every point once, never stopped early
        search_alg, space = make_baseline_search(points, study.search["max_concurrent"])
        tune_config = tune.TuneConfig(
            metric=study.search["metric"],
            mode=study.search["mode"],
            search_alg=search_alg,
            num_samples=len(points),
            reuse_actors=True,
        )
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=folder.location,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=list(callbacks),
            verbose=1,
        ),
    )


# ---- the confirmation trials -------------------------------------------------------------------------------


def confirm_points(
    study: Study, folder: Storage, record: dict[str, Any], seeds: list[int] | None = None
) -> list[dict[str, Any]]:
    """The confirmation trials: the best searched config (``ablate.results.selection``'s ranking, on the search's
    finished trials) at each baseline seed (or each of ``seeds``) that it has no complete search trial of (seeded,
    a rerun would repeat it). Each point is the best trial's sampled values with that seed; ``confirms`` names the
    best trial."""
    if not study.search["confirm"] or not study.baselines:
        return []
    from ablate.results.selection import best_config
    from ablate.results.tables import build_tables, read_experiment

    searched = read_experiment(folder, SEARCH)
    trials, _ = build_tables(searched, record)
    ids = best_config(trials, record) if trials.height else []
    if not ids:
        return []
    done = trials.filter(pl.col("trial_id").is_in(ids) & (pl.col("status") == COMPLETE))
    ran = set(done[SEED].to_list()) if SEED in done.columns else set()
    sampled = next(t.sampled for t in searched if t.trial_id == ids[0])
    values = {k: v for k, v in sampled.items() if k != TRIAL_INDEX}
    points = [
        {**values, SEED: seed, REPEAT: repeat, CONFIRMS: ids[0]}
        for repeat, seed in enumerate(baseline_seeds(study) if seeds is None else seeds)
        if seed not in ran
    ]
    for point in points:
        trial_config(study.base, study.variants, point, study.baselines)  # resolves, as the search's trial did
    return points


def add_seeds_until_decided(study: Study, folder: Storage, record: dict[str, Any], fit, interrupt) -> None:
    """Seeds until decided (``ablate.sweep.until_decided``): look at the paired gain; while undecided, train the
    baselines and the best config on the next seed (two experiments, ``fit``) and look again."""
    from ablate.results.tables import read_tables
    from ablate.sweep import until_decided as seq

    tried: set[int] = set()
    while not interrupt.requested:
        trials, _ = read_tables(folder, record)
        pairs = seq.paired(trials, record)
        look = seq.current_look(study, pairs)
        print(f"seeds until decided: {seq.describe(look)}", flush=True)
        seed = seq.next_seed(study, pairs, tried) if look.decision == "continue" else None
        if seed is None or pairs.best_id is None:
            return
        tried.add(seed)
        print(f"seeds until decided: the baselines and the best config on seed {seed}", flush=True)
        points = seq.baseline_points_at(study, trials, pairs.best_id, seed)
        fit(BASELINE, points, added_seed_experiment(BASELINE, seed))
        planned = [p for p in confirm_points(study, folder, record, seq.sequence(study)) if p[SEED] == seed]
        fit(CONFIRM, planned, added_seed_experiment(CONFIRM, seed))


# ---- the command ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    trials: pl.DataFrame
    exit_code: int


def exit_code(trials: pl.DataFrame, record: dict[str, Any]) -> int:
    if record.get("interrupted"):
        return record.get("interrupt_exit_code", EXIT_INTERRUPTED[signal.SIGINT])
    if not trials.height or not trials.filter(pl.col("status").is_in(RANKED)).height:
        return EXIT_NOTHING_SUCCEEDED
    if trials.filter(pl.col("status") == ERROR).height:
        return EXIT_FAILED_TRIALS
    return EXIT_OK


def run(args: argparse.Namespace) -> pl.DataFrame:
    """Run (or resume) the study; its trials' table."""
    return run_study(args).trials


def run_study(args: argparse.Namespace) -> Outcome:
    """Run (or resume) the study; its trials' table and the exit code that says how it ended."""
    with refusing_plugins(args.no_plugins):
        return _run_study(args)


def _run_study(args: argparse.Namespace) -> Outcome:
    from ablate.results.printed import summarise
    from ablate.results.tables import collect

    study = load_study(args.space, study_overrides(args))
    if args.name is not None:
        study.name = check_name(args.name, "--name")
    try:
        points = baseline_points(study)
        if study.search["seeds_until_decided"]:
            from ablate.sweep.until_decided import sequence

            sequence(study)  # too few first seeds is refused now, not after the search
    except ConfigError as err:
        raise ConfigError(f"{study.path}: {err}") from None
    check_address(args.address)
    folder, created = open_study_folder(args.storage, study.name)
    lock = study_lock(folder, study.name)
    lock.acquire()
    started = time.time()
    try:
        try:
            record = prepare(args, study, folder, created, points)
            trials, _ = collect(folder, record)
        except (OSError, EOFError) as err:
            full = storage_full(folder, err)
            if full is None:
                raise
            raise full from None
    finally:
        lock.release()
    print(summarise(trials, record, folder.location) + f"\ntook {time.time() - started:.0f} s", flush=True)
    code = exit_code(trials, record)
    if record.get("interrupted"):
        print("interrupted: to finish the study, run the same command with --resume", flush=True)
    elif code == EXIT_NOTHING_SUCCEEDED:
        print(f"error: no trial of study {study.name!r} succeeded (exit code {code}); see the summary", file=sys.stderr)
    elif code == EXIT_FAILED_TRIALS:
        failed = trials.filter(pl.col("status") == ERROR).height
        print(f"error: {failed} of {trials.height} trials failed (exit code {code}); see the summary", file=sys.stderr)
    return Outcome(trials, code)


def prepare(
    args: argparse.Namespace, study: Study, folder: Storage, created: Storage | None, points: list[dict[str, Any]]
) -> dict[str, Any]:
    """Check what is left to check, start Ray, run the experiments; a failure before the first experiment
    starts removes what this run created."""
    running = False
    try:
        check_folder_state(folder, study, args.resume)
        from ablate.sweep.tracking import ProgressLines, check_trackers, tracker_callbacks, wandb_offline

        check_trackers(args.log, folder)  # a missing tracker is refused before the data are decoded
        faces = load_data(study.base["data"])  # decode (or read the cache) before Ray starts, so bad data fails fast
        check_splits(study, faces)
        check_free_space(folder, study, search_trials(study) + len(points), len(faces.class_names))
        record = study_record(study, reference(faces.class_names, faces.class_counts("test")), args.log)
        if args.resume:
            check_resume(folder, record)
        if "wandb" in args.log and wandb_offline():
            print(f"wandb: offline (no WANDB_API_KEY); sync later with `wandb sync {folder}/wandb/offline-run-*`")
        start_ray(args)
        import ray

        from ablate.sweep.asha import JOURNAL_FILE
        from ablate.sweep.trial import to_shared

        try:
            resources, each = fit_resources(study.resources)
            confirm = study.search["confirm"] and points
            then = " (then the best config on the baseline seeds it lacks)" if confirm else ""
            if study.search["seeds_until_decided"]:
                then += f", then seeds until decided, up to {study.search['seeds_until_decided']}"
            print(
                f"study {study.name}: {search_trials(study)} trial(s) and {len(points)} baseline trial(s){then}, "
                f"{each}; results in {folder}",
                flush=True,
            )
            if not args.resume:
                folder.delete_file(JOURNAL_FILE)
                folder.write_text(STUDY_FILE, json.dumps(record, indent=2))
            running = True
            data_ref = ray.put(to_shared(faces))  # once; every trial reads it from the object store
            with catch_interrupt() as interrupt:

                def fit(role: str, planned: list[dict[str, Any]] | None, name: str | None = None) -> None:
                    expected = search_trials(study) if role == SEARCH else len(planned or [])
                    if expected and not interrupt.requested:
                        callbacks = [
                            ProgressLines(role, study.search["metric"], study.search["mode"], expected,
                                          len(points) if role == SEARCH else 0),
                            *tracker_callbacks(args.log, study.name, role, folder),
                        ]  # fmt: skip
                        tuner = build_tuner(
                            study, folder, role, data_ref, resources, planned or [], args.resume, callbacks, name
                        )
                        grid = tuner.fit()
                        if grid.num_terminated + grid.num_errors < expected:  # Tune stopped early on its own
                            interrupt.requested = True

                fit(SEARCH, None)
                fit(BASELINE, points)
                if not interrupt.requested:
                    planned = confirm_points(study, folder, record)
                    if planned:
                        print(f"confirmation: the best config on {len(planned)} more seed(s)", flush=True)
                    fit(CONFIRM, planned)
                if study.search["seeds_until_decided"]:
                    add_seeds_until_decided(study, folder, record, fit, interrupt)
            if interrupt.requested:
                code = EXIT_INTERRUPTED.get(interrupt.signum, EXIT_INTERRUPTED[signal.SIGINT])
                record = {**record, "interrupted": True, "interrupt_exit_code": code}
        finally:
            ray.shutdown()
    except BaseException:
        if not running:
            remove_created(created)
        raise
    return record


def main(argv: list[str] | None = None) -> int:
    return guarded(lambda args: run_study(args).exit_code, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
