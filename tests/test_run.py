"""Studies on Ray Tune, for real: local Ray, 2 CPUs, the shipped smoke study."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from ablate.config.study import load_study
from ablate.errors import ConfigError
from ablate.sweep import driver as run

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "search_spaces" / "smoke.yaml")
# smoke's 28 fear faces hold its 10 labeled and 10 validation faces (the default would take 20)
VAL = ["--set", "data.val_per_class=10"]


def test_smoke_study_writes_the_tables(tmp_path, capsys):
    old = os.umask(0o002)  # a team's umask: the result files must be group-writable, not 0600
    try:
        assert run.main(["--space", SMOKE, "--storage", str(tmp_path), *VAL]) == 0
    finally:
        os.umask(old)
    out = tmp_path / "smoke"
    for name in ("trials.parquet", "epochs.parquet", "study.json"):
        assert (out / name).stat().st_mode & 0o777 == 0o664, name
    trials = pl.read_parquet(out / "trials.parquet")
    epochs = pl.read_parquet(out / "epochs.parquet")
    assert trials.height == 5  # four searched, one supervised baseline
    assert trials["status"].to_list() == ["complete"] * 5
    assert trials["role"].to_list() == ["search"] * 4 + ["baseline"]
    assert trials["baseline"].to_list() == [None] * 4 + ["supervised"]
    assert epochs.height == 5 * 2
    assert sorted(epochs.group_by("trial_id").len()["len"].to_list()) == [2, 2, 2, 2, 2]
    # every config key is a column; the searched ones vary within their ranges
    for column in (
        "components.negative.rho",
        "components.threshold.floor",
        "trainer.epochs",
        "data.labels",
        "config_json",
        "best_val_acc",
        "best_val_epoch",
        "test_acc_at_best_val",
        "test_mean_class_acc_at_best_val",
        "last_test_acc",
        "best_test_acc",
        "node_id",
        "hostname",
        "device",
        "diverged_step",
    ):
        assert column in trials.columns
    search = trials.filter(pl.col("role") == "search")
    rho = search["components.negative.rho"]
    assert rho.n_unique() == 4 and rho.min() >= 0.7 and rho.max() <= 0.95
    assert json.loads(search["config_json"][0])["components"]["negative"]["enabled"] is True
    # the baseline: the supervised preset's components on the study's base, same data and steps
    baseline = json.loads(trials["config_json"][4])
    assert [c for c, v in baseline["components"].items() if v["enabled"]] == ["ema", "supervised"]
    assert baseline["trainer"]["steps_per_epoch"] == 8 and baseline["data"]["val_per_class"] == 10
    # what ran, recorded by the trials: the CPU (the study file says device auto), on this host
    assert set(trials["device"]) == {"cpu"} and set(trials["trainer.device"]) == {"cpu"}
    assert set(trials["hostname"]) == {socket.gethostname()} and trials["node_id"].null_count() == 0
    study = json.loads((out / "study.json").read_text())
    assert study["baselines"] == ["supervised"] and study["search"]["select_on_test"] is False
    assert study["reference"]["majority_class"] == "happiness" and study["reference"]["chance"] == 1 / 7
    assert study["reference"]["test_class_counts"] == [33, 7, 16, 118, 48, 16, 68]
    for column in (
        "epoch",
        "test_acc",
        "test_mean_class_acc",
        "test_acc_fear",
        "val_acc",
        "test_acc_at_best_val",
        "threshold_fear",
        "unlabeled_mask_rate",
        "train_loss_negative",
        "test_confusion",
    ):
        assert column in epochs.columns
    assert "trial_config" not in epochs.columns
    printed = capsys.readouterr().out
    assert "study smoke: 4 trials (4 complete); baselines: 1 trial (1 complete)" in printed
    assert "chance 14.3 %" in printed and "always 'happiness' (the majority class): 38.6 % accuracy" in printed
    assert "baseline supervised, 100 labels: test acc" in printed and "best config: trials" in printed
    assert "trials.parquet" in printed


def test_the_best_config_is_confirmed_on_the_baselines_seeds(tmp_path, capsys):
    """The main job's paired answer: the best searched config is re-run on the baseline seeds it lacks (role
    confirm, a third experiment), and the summary pairs its gain over all three seeds."""
    args = ["--space", SMOKE, "--storage", str(tmp_path), *VAL, "--num-samples", "2"]
    assert run.main([*args, "--set", "baseline_seeds=[0, 1, 2]", "--set", "report={min_effect: 2.0}"]) == 0
    trials = pl.read_parquet(tmp_path / "smoke" / "trials.parquet")
    assert trials["role"].to_list() == ["search"] * 2 + ["baseline"] * 3 + ["confirm"] * 2
    assert (tmp_path / "smoke" / "ray_confirm").is_dir()
    search = trials.filter(pl.col("role") == "search").sort("best_val_acc", descending=True)
    best = search.row(0, named=True)
    confirm = trials.filter(pl.col("role") == "confirm")
    assert confirm["status"].to_list() == ["complete"] * 2
    assert confirm["confirms"].to_list() == [best["trial_id"]] * 2
    assert sorted(confirm["trainer.seed"].to_list()) == [1, 2]  # seed 0 is the search trial's own
    for key in ("components.threshold.floor", "components.negative.rho"):
        assert confirm[key].to_list() == [best[key]] * 2
    printed = capsys.readouterr().out
    assert "confirmation: the best config on 2 more seed(s)" in printed
    assert "baselines: 3 trials (3 complete); confirmation: 2 trials (2 complete)" in printed
    assert f"best config: trials {best['trial_id']}, " in printed and "of which 2 confirmation" in printed
    assert "paired t-test over 3 seeds" in printed and "p (Holm, m = 2)" in printed
    assert "to detect report.min_effect = 2 points" in printed or "power:" not in printed


def test_seeds_until_decided_add_paired_seeds_until_the_rule_stops(tmp_path, capsys):
    """search.repeats: {min: 2, max: 4, until: decided}: after the 2 seeds of the search and the baselines, each
    undecided look adds one seed to the baseline and the best config (two experiments per seed), until the
    sequential rule decides or 4 seeds are in; the tables hold every added trial, and a resume adds none."""
    from ablate.sweep import until_decided

    until = "search.repeats={min: 2, max: 4, until: decided}"
    args = ["--space", SMOKE, "--storage", str(tmp_path), *VAL, "--num-samples", "1", "--set", until]
    assert run.main(args) == 0
    folder = tmp_path / "smoke"
    trials = pl.read_parquet(folder / "trials.parquet")
    record = json.loads((folder / "study.json").read_text())
    printed = capsys.readouterr().out
    looks = re.findall(r"seeds until decided: (\d+) paired seeds: .*: (decided|undecided[^\n]*)", printed)
    assert looks and int(looks[0][0]) == 2
    last = until_decided.current_look(load_study(SMOKE, ["data.val_per_class=10", until]),
                                      until_decided.paired(trials, record))  # fmt: skip
    assert last.decision in ("gain", "narrow", "max") and int(looks[-1][0]) == last.n
    added = sorted(int(p.name.removeprefix("ray_confirm_seed")) for p in folder.glob("ray_confirm_seed*"))
    assert added == list(range(2, last.n))  # one seed per undecided look, none after the deciding one
    assert sorted(int(p.name.removeprefix("ray_baselines_seed")) for p in folder.glob("ray_baselines_seed*")) == added
    baseline = trials.filter(pl.col("role") == "baseline")
    assert sorted(baseline["trainer.seed"].to_list()) == list(range(last.n))
    best = trials.filter(pl.col("role") == "search")["trial_id"].to_list()
    confirm = trials.filter(pl.col("role") == "confirm")
    assert sorted(confirm["trainer.seed"].to_list()) == added and set(confirm["confirms"]) <= set(best)
    assert set(trials["status"]) == {"complete"}
    assert run.main([*args, "--resume"]) == 0  # decided: nothing more to run
    assert pl.read_parquet(folder / "trials.parquet").height == trials.height


def test_seeds_until_decided_with_one_first_seed_is_refused_before_ray_starts(tmp_path, capsys):
    args = ["--space", SMOKE, "--storage", str(tmp_path), *VAL, "--set", "search.seeds_until_decided=4"]
    assert run.main(args) == 2
    assert "the first look needs at least 2 paired seeds, the study has 1" in capsys.readouterr().err
    assert not (tmp_path / "smoke").exists()  # nothing ran, nothing was created


def test_a_failing_trial_is_recorded_while_the_others_finish(tmp_path, capsys):
    """A trial that fails before its first report keeps Optuna's own 8-hex id and the config it was given; the
    study exits with EXIT_FAILED_TRIALS and its summary names the error."""
    import torch

    weights = tmp_path / "not_a_backbone.pt"
    torch.save({"unrelated.weight": torch.zeros(1)}, weights)
    failing = [
        "--set",
        f"variants={{good: {{}}, bad: {{model: {{weights: {weights}}}}}}}",
        "--set",
        "search.algorithm=optuna",
        "--set",
        "search.num_samples=3",
        "--set",
        "params={variant: {choice: [good, bad]}}",
        "--set",
        "trainer.epochs=1",
        "--set",
        "baselines=[]",
    ]
    storage = ["--storage", str(tmp_path), "--name", "failing"]
    code = run.main(["--space", SMOKE, *storage, *VAL, *failing, "--log", "mlflow"])
    assert code == run.EXIT_FAILED_TRIALS == 3
    trials = pl.read_parquet(tmp_path / "failing" / "trials.parquet")
    failed = trials.filter(pl.col("status") == "error")
    out, err = capsys.readouterr()
    first_error = failed["error"][0]
    assert "does not match the backbone" in first_error
    if failed.height == 1:
        assert f"failed: 1 trial: {first_error}" in out
    else:
        n = failed.height
        assert f"failed: {n} trials; the first error, shared by {n} of them: {first_error}" in out
    assert f"error: {failed.height} of 3 trials failed (exit code 3); see the summary" in err
    # the free-space estimate of a checkpoint (the model's state x 4) is what a trial really wrote, within 5 %
    written = [p.stat().st_size for p in (tmp_path / "failing" / "ray").glob("*/ablate_checkpoint.pt")]
    estimate = run.checkpoint_bytes(load_study(SMOKE, VAL[1:]), 7)
    assert written and all(abs(size - estimate) < 0.05 * estimate for size in written), (written, estimate)
    assert sorted(set(trials["variant"])) == ["bad", "good"]  # seed 0 samples both
    for row in trials.iter_rows(named=True):
        assert re.fullmatch(r"[0-9a-f]{8}", row["trial_id"]), row["trial_id"]
        if row["variant"] == "bad":
            assert row["status"] == "error" and row["epochs_done"] == 0
            assert "does not match the backbone" in row["error"] and "trainer.py" in row["error_full"]
            assert "\x1b[" not in row["error_full"]  # Ray's terminal colours stripped
            assert row["model.weights"] == str(weights)  # composed from study.json and the sampled values
            assert json.loads(row["config_json"])["model"]["weights"] == str(weights)
        else:
            assert row["status"] == "complete" and row["epochs_done"] == 1
    # the same trials in Optuna's journal (optuna-dashboard reads it) and in MLflow, failed ones as failed
    by_id = {row["trial_id"]: row for row in trials.iter_rows(named=True)}
    study = _optuna_study(tmp_path / "failing")
    assert sorted((t.params["variant"], t.state.name) for t in study.trials) == sorted(
        (r["variant"], "FAIL" if r["status"] == "error" else "COMPLETE") for r in by_id.values()
    )
    complete = trials.filter(pl.col("status") == "complete")["best_val_acc"].to_list()
    assert sorted(t.value for t in study.trials if t.value is not None) == pytest.approx(sorted(complete))
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'failing' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["failing"], output_format="list")
    assert sorted(r.data.params["variant"] for r in runs) == sorted(trials["variant"].to_list())
    for r in runs:
        row = by_id[r.data.tags["trial_name"].split("_")[2]]
        assert r.info.status == ("FAILED" if row["status"] == "error" else "FINISHED")
        assert r.data.tags["study"] == "failing" and r.data.tags["role"] == "search"
        if row["status"] == "complete":
            assert r.data.metrics["best_val_acc"] == pytest.approx(row["best_val_acc"])
    printed = out.splitlines()
    assert sum(line.startswith("[search] trial ") and " finished (" in line for line in printed) == 3


def _optuna_study(folder: Path):
    """The search's Optuna study, as optuna-dashboard opens it: the journal in the study folder."""
    import optuna

    from ablate.sweep.optuna_journal import OPTUNA_FILE, journal_storage

    return optuna.load_study(study_name=folder.name, storage=journal_storage(folder / OPTUNA_FILE))


def test_a_study_in_which_no_trial_succeeds_exits_4_naming_the_error(tmp_path, capsys):
    import torch

    weights = tmp_path / "not_a_backbone.pt"
    torch.save({"unrelated.weight": torch.zeros(1)}, weights)
    settings = ["--set", f"model.weights={weights}", "--set", "search.num_samples=2", "--set", "baselines=[]"]
    settings += ["--set", "trainer.epochs=1"]
    code = run.main(["--space", SMOKE, "--storage", str(tmp_path), "--name", "none", *VAL, *settings])
    assert code == run.EXIT_NOTHING_SUCCEEDED == 4
    out, err = capsys.readouterr()
    trials = pl.read_parquet(tmp_path / "none" / "trials.parquet")
    assert trials["status"].to_list() == ["error", "error"]
    assert re.search(r"failed: 2 trials; the first error, shared by 2 of them: .*does not match the backbone", out)
    assert "error: no trial of study 'none' succeeded (exit code 4); see the summary" in err


def test_a_storage_without_room_for_the_checkpoints_is_refused_before_ray_starts(tmp_path, monkeypatch, capsys):
    import shutil

    estimate = run.checkpoint_bytes(load_study(SMOKE, VAL[1:]), 7)
    per_trial = estimate + run.RAY_FILES_PER_TRIAL
    usage = shutil.disk_usage(tmp_path)
    free = 5 * per_trial - 1  # smoke: 4 searched trials and 1 baseline; one byte short
    monkeypatch.setattr(run.shutil, "disk_usage", lambda path: usage._replace(free=free))
    monkeypatch.setattr(run, "start_ray", lambda args: pytest.fail("Ray started"))
    assert run.main(["--space", SMOKE, "--storage", str(tmp_path), "--name", "full", *VAL]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: --storage {tmp_path / 'full'}: {free / 1e6:.1f} MB free") and "\n" not in line
    assert f"needs about {5 * per_trial / 1e6:.1f} MB (5 trials x {per_trial / 1e6:.1f} MB" in line
    assert not (tmp_path / "full").exists()  # nothing left behind
    monkeypatch.setattr(run.shutil, "disk_usage", lambda path: usage._replace(free=free + 1))
    monkeypatch.setattr(run, "start_ray", lambda args: (_ for _ in ()).throw(run.AblateError("stop here")))
    assert run.main(["--space", SMOKE, "--storage", str(tmp_path), "--name", "full", *VAL]) == 2
    assert "stop here" in capsys.readouterr().err  # exactly enough room: past the check


def test_a_storage_that_fills_up_while_the_study_runs_is_named_as_the_cause(tmp_path, monkeypatch):
    """What Ray Tune raises when the disk fills (a truncated error pickle: EOFError; a failed copy: OSError 28)
    becomes one line naming the storage and exit code 5; an unrelated error stays what it is."""
    import errno
    import shutil

    from ablate.cli import guarded
    from ablate.results.storage import Storage

    folder = Storage(str(tmp_path))
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(run.shutil, "disk_usage", lambda path: usage._replace(free=0))
    full = run.storage_full(folder, EOFError("Ran out of input"))
    assert isinstance(full, run.StorageFull) and full.exit_code == run.EXIT_STORAGE_FULL == 5
    assert str(full) == (
        f"--storage {tmp_path}: no space left on the device (0.0 MB free), so the study stopped (EOFError: Ran out "
        "of input); free space there, then run the same command with --resume"
    )

    def raises():
        raise full

    assert guarded(lambda args: raises(), None) == 5
    monkeypatch.setattr(run.shutil, "disk_usage", lambda path: usage._replace(free=10**9))
    assert run.storage_full(folder, EOFError("Ran out of input")) is None  # room left: not the cause
    no_space = OSError(errno.ENOSPC, "No space left on device")
    assert "(OSError: [Errno 28] No space left on device)" in str(run.storage_full(folder, no_space))
    assert run.storage_full(folder, OSError(errno.EACCES, "Permission denied")) is None
    assert run.storage_full(folder, ValueError("unrelated")) is None


def test_an_existing_study_is_not_overwritten(tmp_path):
    (tmp_path / "smoke" / "ray").mkdir(parents=True)
    with pytest.raises(ConfigError, match="already holds a study named 'smoke': add --resume"):
        run.run(run.parse_args(["--space", SMOKE, "--storage", str(tmp_path), *VAL]))
    assert sorted(p.name for p in (tmp_path / "smoke").iterdir()) == ["ray"]  # nothing added, lock released
    with pytest.raises(ConfigError, match="no study to resume"):
        run.run(run.parse_args(["--space", SMOKE, "--storage", str(tmp_path / "elsewhere"), "--resume", *VAL]))
    assert not (tmp_path / "elsewhere").exists()  # nothing left behind


def _saved_as_finished(experiment: Path) -> set[str]:
    """The trials Tune's last saved experiment state holds as finished: what a resume does not run again (a trial
    that finished after that save is run again from its checkpoint, as Tune restores it)."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    try:
        saved = json.loads(states[-1].read_text())["trial_data"] if states else []
    except (OSError, ValueError, KeyError):  # caught while Tune writes it
        return set()
    trials = [json.loads(entry[0]) for entry in saved]
    return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}


def test_resume_after_the_driver_is_killed(tmp_path):
    common = [
        "--space",
        SMOKE,
        "--storage",
        str(tmp_path),
        "--name",
        "cut",
        *VAL,
        "--set",
        "search.num_samples=5",
        "--set",
        "search.max_concurrent=1",
        "--set",
        "trainer.epochs=3",
        "--set",
        "search.algorithm=optuna",  # Optuna's searcher state must survive the kill too
    ]
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1", "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "ablate.run", *common],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    experiment = tmp_path / "cut" / "ray"
    deadline = time.time() + 240
    try:
        while len(_saved_as_finished(experiment)) < 2 and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    saved = _saved_as_finished(experiment)
    before = {p.parent.name: p.read_text() for p in experiment.glob("*/result.json")}
    finished = {name for name in before if name.split("_")[2] in saved}
    assert len(finished) >= 2, "the study should have finished two trials before it was killed"
    assert all(len(before[name].splitlines()) == 3 for name in finished)
    assert not (tmp_path / "cut" / "trials.parquet").exists() or len(finished) < 5

    assert run.main([*common, "--resume"]) == 0
    after = {p.parent.name: p.read_text() for p in experiment.glob("*/result.json")}
    for name in finished:  # finished trials were not run again
        assert after[name] == before[name]
    trials = pl.read_parquet(tmp_path / "cut" / "trials.parquet")
    epochs = pl.read_parquet(tmp_path / "cut" / "epochs.parquet")
    assert trials.height == 6 and set(trials["status"]) == {"complete"}  # five searched and the baseline
    assert trials["role"].to_list() == ["search"] * 5 + ["baseline"]
    # every trial's epochs exactly once
    per_trial = epochs.group_by("trial_id").agg(pl.col("epoch").sort())
    assert sorted(per_trial["epoch"].to_list()) == [[1, 2, 3]] * 6
    # one Optuna history: the five searched trials complete, once each, with their results; a trial Optuna had
    # begun after Ray's last save of the searcher is ended as FAIL, never left running
    study = _optuna_study(tmp_path / "cut")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 5 and set(states) <= {"COMPLETE", "FAIL"}, states
    searched = trials.filter(pl.col("role") == "search")["best_val_acc"].to_list()
    assert sorted(t.value for t in study.trials if t.state.name == "COMPLETE") == pytest.approx(sorted(searched))


BAD_STUDIES = [
    ("colour: red", r"unknown key 'colour'; allowed: name, description, plugins, data"),
    ("components: {mixup: {enabled: true}}", r"components: unknown component 'mixup'; allowed: contrastive, ema"),
    ("components: [supervised]", r"components: expected a mapping of component name to settings.*got \['supervised'\]"),
    ("data: {name: imagenet}", r"data.name: unknown dataset 'imagenet'; allowed: fer2013, folder, rafdb, synthfer"),
    (
        "model: {name: vgg16}",
        r"model.name: unknown model 'vgg16'; allowed: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, "
        "resnet18, small_cnn",
    ),
    (
        "params: {components.negative.rho: {uniform: [0.9, 0.5]}}",
        r"params.components.negative.rho.uniform: low 0.9 must be below high 0.5",
    ),
    (
        "params: {components.negative.rho: {uniform: [0.5, 1.5]}}",
        r"params.components.negative.rho: components.negative.rho: 1.5 is out of range",
    ),
    ("params: {trainer.lr: {loguniform: [0, 0.1]}}", r"params.trainer.lr.loguniform: low must be > 0"),
    (
        "params: {trainer.lr: {normal: [0, 1]}}",
        r"params.trainer.lr: expected one of uniform, loguniform, int, choice, grid",
    ),
    ("params: {trainer.lrate: {uniform: [0.1, 0.2]}}", r"params.trainer.lrate: 'trainer.lrate' is not a config key"),
    (
        "params: {components.contrastive.temperature: {uniform: [0.05, 0.2]}}",
        r"components.contrastive is not enabled in the base config, any variant or the search",
    ),
    ("params: {data.options.scale: {uniform: [0.1, 0.2]}}", r"only the split can be searched; allowed: data.labels"),
    (
        "params: {trainer.seed: {grid: [0, 1]}}",
        r"params.trainer.seed: grid needs search.algorithm grid or random; with optuna use choice",
    ),
    ("params: {variant: {grid: [a]}}\nsearch: {algorithm: grid}", r"params.variant: the study defines no variants"),
    ("variants: {a: {components: {negative: {rho: 7}}}}", r"variants.a: components.negative.rho: 7.0 is out of range"),
    (
        "search: {algorithm: hyperopt}",
        r"search.algorithm: 'hyperopt' is not allowed; allowed: 'optuna', 'grid', 'random'",
    ),
    ("search: {metric: loss}", r"search.metric: 'loss' is not allowed; allowed: 'val_acc'"),
    ("search: {metric: best_test_acc}", r"search.metric: 'best_test_acc' is a test metric.*select_on_test: true"),
    ("resources: {gpu: 1.5}", r"resources.gpu: 1.5 is neither a fraction below 1 nor a whole number"),
    ("data: {val_per_class: 5}\nbaselines: [oracle]", r"baselines: unknown preset 'oracle'; allowed: adacm"),
    ("name: '..'", r"name: '..' is not a study name"),
    (
        "data: {val_per_class: 0}\nsearch: {metric: best_val_acc}",
        r"search.metric: 'best_val_acc' needs a validation split; set data.val_per_class",
    ),
    ("scheduler: {name: asha, grace_period: 9, max_t: 3}", r"scheduler.grace_period: 9 exceeds max_t 3"),
    ("scheduler: {name: hyperband}", r"scheduler.name: 'hyperband' is not allowed; allowed: 'none', 'asha'"),
    ("resources: {gpu: -1}", r"resources.gpu: -1.0 is out of range"),
    ("resources: {cpus: 2}", r"resources: unknown key 'cpus'; allowed: cpu, gpu"),
    ("trainer: {epochs: 0}", r"trainer.epochs: 0 is out of range; allowed: a int in \[1, inf\)"),
    ("- just\n- a list", r"expected a mapping at the top level, got list"),
    ("name: [", r"not valid YAML"),
]

BASE = """
components:
  supervised: {enabled: true}
  threshold: {enabled: true}
  pseudo_label: {enabled: true}
  negative: {enabled: true}
"""


@pytest.mark.parametrize("text,message", BAD_STUDIES)
def test_bad_study_files(tmp_path, text, message):
    file = tmp_path / "study.yaml"
    body = text if text.startswith(("-", "name: [")) else BASE + text if not text.startswith("components") else text
    file.write_text(body)
    with pytest.raises(ConfigError, match=message) as err:
        load_study(file)
    assert str(file) in str(err.value)


def test_missing_study_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_study(tmp_path / "nope.yaml")


def test_params_overrides_keep_their_dots():
    study = load_study(SMOKE, [VAL[1], "params.components.negative.rho={uniform: [0.8, 0.9]}", "search.num_samples=2"])
    assert study.params["components.negative.rho"] == {"uniform": [0.8, 0.9]}
    assert study.search["num_samples"] == 2


def test_the_optuna_space_pickles():
    import pickle

    from ablate.sweep.search import DefineByRun

    space = DefineByRun(load_study(ROOT / "search_spaces" / "lion.yaml", [VAL[1]]))
    assert pickle.loads(pickle.dumps(space)).order == space.order


def test_define_by_run_samples_only_parameters_that_act():
    import optuna

    from ablate.sweep.search import DefineByRun

    study = load_study(ROOT / "search_spaces" / "thresholds.yaml")
    space = DefineByRun(study)
    optuna_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    modes = set()
    for _ in range(12):
        trial = optuna_study.ask()
        space(trial)
        mode = trial.params["components.threshold.policy"]
        modes.add(mode)
        assert ("components.threshold.tau" in trial.params) == (mode == "fixed")
        assert ("components.threshold.floor" in trial.params) == (mode == "adaptive")
        assert "components.negative.rho" in trial.params
        optuna_study.tell(trial, 0.0)
    assert modes == {"fixed", "adaptive"}


def test_define_by_run_skips_a_component_switched_off():
    import optuna

    from ablate.sweep.search import DefineByRun

    study = load_study(SMOKE, [VAL[1], "params.components.negative.enabled={choice: [true, false]}"])
    optuna_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(10):
        trial = optuna_study.ask()
        DefineByRun(study)(trial)
        on = trial.params["components.negative.enabled"]
        seen.add(on)
        assert ("components.negative.rho" in trial.params) == on
        optuna_study.tell(trial, 0.0)
    assert seen == {True, False}


def test_data_flag_then_set_overrides():
    args = run.parse_args(
        [
            "--space",
            SMOKE,
            "--data",
            "fer2013:/data/fer",
            "--set",
            "data.options={image_size: 40}",
            "--num-samples",
            "3",
        ]
    )
    assert run.study_overrides(args) == [
        "data.name=fer2013",
        "data.path=/data/fer",
        "data.options={}",
        "data.options={image_size: 40}",
        "search.num_samples=3",
    ]
