"""The results tables come from what the trials recorded and from Ray's own API, not from folder names or the
training code. One real study (Optuna, a learning rate that diverges, storage given as a file:// URI) feeds the
tests that need Ray."""

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from ablate.results import tables as results
from ablate.results.records import ERROR, STOPPED
from ablate.results.storage import Storage
from ablate.results.tables import TrialRecord

ROOT = Path(__file__).resolve().parents[1]
DIVERGED_ERROR = "ablate.results.records.TrialDiverged: diverged at step 17 (epoch 2): nan"
SMOKE = str(ROOT / "search_spaces" / "smoke.yaml")


@pytest.fixture(scope="module")
def nan_study(tmp_path_factory):
    """smoke.yaml with trainer.lr in {0.0005, 1e30} (Optuna's seed 0 samples both), stored at a file:// URI."""
    from ablate.sweep import driver as run

    root = tmp_path_factory.mktemp("uri")
    args = ["--space", SMOKE, "--storage", f"file://{root}/store", "--name", "nan", "--set", "data.val_per_class=10"]
    args += ["--set", "params.trainer.lr={choice: [0.0005, 1.0e+30]}", "--set", "search.algorithm=optuna"]
    args += ["--set", "search.num_samples=4", "--set", "baselines=[]"]
    assert run.main(args) == 0
    return root / "store" / "nan"


def test_diverged_trials_are_recorded_with_their_step_and_never_ranked(nan_study, capsys):
    trials = pl.read_parquet(nan_study / "trials.parquet")
    by_lr = trials.group_by("trainer.lr").agg(pl.col("status").unique())
    assert sorted(by_lr["trainer.lr"].to_list()) == [0.0005, 1e30]  # both sampled
    for row in trials.iter_rows(named=True):
        if row["trainer.lr"] == 1e30:
            assert row["status"] == "diverged"
            assert row["diverged_step"] >= 1 and row["diverged_epoch"] == (row["diverged_step"] - 1) // 8 + 1
            assert row["diverged_epoch"] == row["epochs_done"] + 1
            assert f"diverged at step {row['diverged_step']}" in row["error"]
        else:
            assert row["status"] == "complete" and row["diverged_step"] is None
    # Optuna was told that the diverged trials failed
    state = next(nan_study.joinpath("ray").glob("searcher-state-*.pkl"))
    searcher = pickle.loads(state.read_bytes())
    optuna_states = {t.params["trainer.lr"]: t.state.name for t in searcher["_ot_study"].trials}
    assert optuna_states[1e30] == "FAIL" and optuna_states[0.0005] == "COMPLETE"


def test_a_uri_storage_goes_to_ray_untouched(nan_study):
    assert (nan_study / "ray").is_dir() and (nan_study / "study.json").is_file()
    assert not (ROOT / "file:").exists()  # not turned into <cwd>/file:/...
    assert pl.read_parquet(nan_study / "epochs.parquet").height > 0


def test_reading_results_imports_neither_torch_nor_the_trainer(nan_study):
    code = textwrap.dedent(
        f"""
        import json, sys
        from ablate.results.tables import collect
        from ablate.results.storage import Storage
        storage = Storage("file://{nan_study}")
        trials, epochs = collect(storage, json.loads(storage.read_text("study.json")))
        assert trials.height == 4 and epochs.height > 0, (trials.height, epochs.height)
        heavy = ("torch", "kornia", "ablate.training.trainer", "ablate.config.study", "ablate.sweep.trial")
        loaded = [m for m in heavy if m in sys.modules]
        print(json.dumps(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_new_results_load_in_the_report(nan_study, tmp_path):
    from ablate.report import command as report

    assert report.main([str(nan_study), "--out", str(tmp_path / "report")]) == 0
    index = (tmp_path / "report" / "index.md").read_text()
    diverged = pl.read_parquet(nan_study / "trials.parquet").filter(pl.col("status") == "diverged")["trial_id"]
    assert diverged.len() and all(trial_id in index for trial_id in diverged)  # listed, not ranked


@pytest.mark.parametrize("fixture", ["search", "ablation"])
def test_results_written_before_the_change_still_load_in_the_report(fixture, tmp_path):
    from ablate.report import command as report

    assert report.main([str(ROOT / "tests" / "fixtures" / fixture), "--out", str(tmp_path / "report")]) == 0


# ---- rows by hand -----------------------------------------------------------------------------------------

STUDY = {
    "base": {"trainer": {"epochs": 3, "seed": 0}, "data": {"labels": 100}},
    "variants": {"v": {"trainer": {"epochs": 2}}},
    "baseline_configs": {"supervised": {"trainer": {"epochs": 3, "seed": 0}, "data": {"labels": 100}}},
}


def record(status, epochs, sampled=None, error=None, role="search"):
    return TrialRecord("t1", status, role, sampled or {}, epochs, error, "folder_t1")


def epoch(n, **extra):
    config = {"trainer": {"epochs": 3, "seed": 0, "device": "cpu"}, "data": {"labels": 100}}
    row = {"epoch": n, "val_acc": 0.1 * n, "test_acc": 0.2 * n, "best_val_acc": 0.1 * n, "test_acc_at_best_val": n}
    return {**row, "trial_config": json.dumps(config), "node_id": "n1", "hostname": "h1", "device": "cpu", **extra}


def test_statuses_from_rays_status_and_the_planned_epochs():
    assert results.trial_row(record("TERMINATED", [epoch(1), epoch(2), epoch(3)]), STUDY)["status"] == "complete"
    assert results.trial_row(record("TERMINATED", [epoch(1)]), STUDY)["status"] == STOPPED  # ASHA stopped it
    assert results.trial_row(record("RUNNING", [epoch(1)]), STUDY)["status"] == STOPPED  # interrupted
    assert results.trial_row(record("ERROR", [], error="Traceback ...\nValueError: bad"), STUDY)["status"] == ERROR
    diverged = results.trial_row(
        record("ERROR", [epoch(1)], error=f"...\n{DIVERGED_ERROR}"),
        STUDY,
    )
    assert (diverged["status"], diverged["diverged_step"], diverged["diverged_epoch"]) == ("diverged", 17, 2)
    assert diverged["error"] == DIVERGED_ERROR


def test_a_row_takes_the_recorded_config_and_the_last_epochs_carried_values():
    row = results.trial_row(record("TERMINATED", [epoch(1), epoch(2)], {"__trial_index__": 1}), STUDY)
    assert row["trainer.device"] == "cpu" and row["node_id"] == "n1" and row["hostname"] == "h1"
    assert row["best_val_acc"] == pytest.approx(0.2) and row["test_acc_at_best_val"] == 2
    assert row["last_test_acc"] == pytest.approx(0.4) and row["repeat"] == 1 and row["epochs_done"] == 2


def test_a_trial_that_never_reported_gets_the_composed_config():
    row = results.trial_row(record("ERROR", [], {"variant": "v", "trainer.seed": 4}, error="boom"), STUDY)
    assert row["variant"] == "v" and row["trainer.epochs"] == 2 and row["trainer.seed"] == 4
    base = results.trial_row(
        record("ERROR", [], {"baseline": "supervised", "trainer.seed": 1, "repeat": 1}, "boom", "baseline"), STUDY
    )
    assert (base["role"], base["baseline"], base["repeat"], base["trainer.seed"]) == ("baseline", "supervised", 1, 1)


def test_an_epoch_reported_again_after_a_resume_appears_once(tmp_path):
    lines = [epoch(1, test_acc=0.1), epoch(2, test_acc=0.2), epoch(1, test_acc=0.1), epoch(2, test_acc=0.25)]
    (tmp_path / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rows = results.read_epochs(Storage(str(tmp_path)), str(tmp_path))
    assert [(r["epoch"], r["test_acc"]) for r in rows] == [(1, 0.1), (2, 0.25)]
    epochs = results.epoch_rows(record("TERMINATED", rows))
    assert "trial_config" not in epochs[0] and "hostname" not in epochs[0] and epochs[0]["trial_id"] == "t1"
