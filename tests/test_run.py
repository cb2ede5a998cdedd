"""Studies on Ray Tune, for real: local Ray, 2 CPUs, the shipped smoke study."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from ablate import run
from ablate.errors import ConfigError
from ablate.study import load_study

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "search_spaces" / "smoke.yaml")


def test_smoke_study_writes_the_tables(tmp_path, capsys):
    assert run.main(["--space", SMOKE, "--storage", str(tmp_path)]) == 0
    out = tmp_path / "smoke"
    trials = pl.read_parquet(out / "trials.parquet")
    epochs = pl.read_parquet(out / "epochs.parquet")
    assert trials.height == 4
    assert trials["status"].to_list() == ["complete"] * 4
    assert epochs.height == 4 * 2
    assert sorted(epochs.group_by("trial_id").len()["len"].to_list()) == [2, 2, 2, 2]
    # every config key is a column; the searched ones vary within their ranges
    for column in (
        "components.negative.rho",
        "components.threshold.floor",
        "trainer.epochs",
        "data.labels",
        "config_json",
        "best_test_acc",
    ):
        assert column in trials.columns
    rho = trials["components.negative.rho"]
    assert rho.n_unique() == 4 and rho.min() >= 0.7 and rho.max() <= 0.95
    assert json.loads(trials["config_json"][0])["components"]["negative"]["enabled"] is True
    for column in (
        "epoch",
        "test_acc",
        "test_mean_class_acc",
        "test_acc_fear",
        "threshold_fear",
        "unlabeled_mask_rate",
        "train_loss_negative",
        "test_confusion",
    ):
        assert column in epochs.columns
    printed = capsys.readouterr().out
    assert "study smoke: 4 trials (4 complete)" in printed and "best trial" in printed and "trials.parquet" in printed


def test_a_failing_trial_is_recorded_while_the_others_finish(tmp_path):
    failing = [
        "--set",
        "search.algorithm=grid",
        "--set",
        "search.num_samples=1",
        "--set",
        "params={data.labels_per_class: {grid: [5, 100000]}}",
        "--set",
        "trainer.epochs=1",
    ]
    assert run.main(["--space", SMOKE, "--storage", str(tmp_path), "--name", "failing"] + failing) == 0
    trials = pl.read_parquet(tmp_path / "failing" / "trials.parquet").sort("data.labels_per_class")
    assert trials["status"].to_list() == ["complete", "error"]
    assert "has" in trials["error"][1] and "training images" in trials["error"][1]
    assert trials["epochs_done"].to_list() == [1, 0]


def test_an_existing_study_is_not_overwritten(tmp_path):
    (tmp_path / "smoke" / "ray").mkdir(parents=True)
    with pytest.raises(ConfigError, match="already holds a study named 'smoke': add --resume"):
        run.run(run.parse_args(["--space", SMOKE, "--storage", str(tmp_path)]))
    with pytest.raises(ConfigError, match="no study to resume"):
        run.run(run.parse_args(["--space", SMOKE, "--storage", str(tmp_path / "elsewhere"), "--resume"]))


def _finished_trials(experiment: Path, epochs: int) -> int:
    done = 0
    for result in experiment.glob("*/result.json"):
        if len(result.read_text().splitlines()) >= epochs:
            done += 1
    return done


def test_resume_after_the_driver_is_killed(tmp_path):
    args = [
        sys.executable,
        "-m",
        "ablate.run",
        "--space",
        SMOKE,
        "--storage",
        str(tmp_path),
        "--name",
        "cut",
        "--set",
        "search.num_samples=5",
        "--set",
        "search.max_concurrent=1",
        "--set",
        "trainer.epochs=3",
        "--set",
        "search.algorithm=optuna",
    ]  # Optuna's searcher state must survive the kill too
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1", "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    experiment = tmp_path / "cut" / "ray"
    deadline = time.time() + 240
    try:
        while _finished_trials(experiment, 3) < 2 and time.time() < deadline and driver.poll() is None:
            time.sleep(0.5)
        time.sleep(1.5)  # let Tune write its experiment state once more
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = {p.parent.name: p.read_text() for p in experiment.glob("*/result.json")}
    finished = {name for name, text in before.items() if len(text.splitlines()) >= 3}
    assert len(finished) >= 2, "the study should have finished two trials before it was killed"
    assert not (tmp_path / "cut" / "trials.parquet").exists() or len(finished) < 5

    assert (
        run.main(
            [
                "--space",
                SMOKE,
                "--storage",
                str(tmp_path),
                "--name",
                "cut",
                "--resume",
                "--set",
                "search.num_samples=5",
                "--set",
                "search.max_concurrent=1",
                "--set",
                "trainer.epochs=3",
                "--set",
                "search.algorithm=optuna",
            ]
        )
        == 0
    )
    after = {p.parent.name: p.read_text() for p in experiment.glob("*/result.json")}
    for name in finished:  # finished trials were not run again
        assert after[name] == before[name]
    trials = pl.read_parquet(tmp_path / "cut" / "trials.parquet")
    epochs = pl.read_parquet(tmp_path / "cut" / "epochs.parquet")
    assert trials.height == 5 and set(trials["status"]) == {"complete"}
    # every trial's epochs exactly once
    per_trial = epochs.group_by("trial_id").agg(pl.col("epoch").sort())
    assert sorted(per_trial["epoch"].to_list()) == [[1, 2, 3]] * 5


BAD_STUDIES = [
    ("colour: red", r"unknown key 'colour'; allowed: name, description, plugins, data"),
    ("components: {mixup: {enabled: true}}", r"components: unknown component 'mixup'; allowed: contrastive, ema"),
    ("data: {name: imagenet}", r"data.name: unknown dataset 'imagenet'; allowed: fer2013, folder, rafdb, synthfer"),
    ("model: {name: vgg16}", r"model.name: unknown model 'vgg16'; allowed: resnet18, small_cnn"),
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
    ("search: {metric: loss}", r"search.metric: 'loss' is not allowed; allowed: 'test_acc'"),
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
    study = load_study(SMOKE, ["params.components.negative.rho={uniform: [0.8, 0.9]}", "search.num_samples=2"])
    assert study.params["components.negative.rho"] == {"uniform": [0.8, 0.9]}
    assert study.search["num_samples"] == 2


def test_the_optuna_space_pickles():
    import pickle

    from ablate.search import DefineByRun

    space = DefineByRun(load_study(ROOT / "search_spaces" / "lion.yaml"))
    assert pickle.loads(pickle.dumps(space)).order == space.order


def test_define_by_run_samples_only_parameters_that_act():
    import optuna

    from ablate.search import DefineByRun

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

    from ablate.search import DefineByRun

    study = load_study(SMOKE, ["params.components.negative.enabled={choice: [true, false]}"])
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
