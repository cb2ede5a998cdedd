"""Where Optuna and Ray users look: the Optuna journal a resumed search keeps as one history, MLflow runs a resumed
trial continues, W&B's offline runs, and the progress lines (ablate.sweep.optuna_journal, ablate.sweep.tracking)."""

import os
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "search_spaces" / "smoke.yaml")


def _space(trial):
    trial.suggest_float("x", 0.0, 1.0)


def _searcher(journal):
    from ablate.sweep.optuna_journal import JournaledOptunaSearch, journal_storage

    return JournaledOptunaSearch(
        space=_space, metric="m", mode="max", study_name="s", storage=journal_storage(journal), seed=0
    )


def test_a_resumed_searcher_keeps_one_optuna_history(tmp_path):
    """The driver is killed after Ray saved the searcher with trials a and b running; before the kill, a finished
    and c was asked for. The resumed searcher replays a (Tune runs it again) without a second report, ends c as
    FAIL (Tune never resumes it) and goes on: every trial once, in its real state."""
    from ablate.sweep.optuna_journal import journal_storage

    journal, saved = tmp_path / "optuna.journal", str(tmp_path / "searcher.pkl")
    searcher = _searcher(journal)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.save(saved)
    searcher.on_trial_result("a", {"m": 0.5, "training_iteration": 1})
    searcher.on_trial_complete("a", {"m": 0.5})
    searcher.suggest("c")

    restored = _searcher(journal)
    restored.restore(saved)
    restored.on_trial_result("a", {"m": 0.5, "training_iteration": 1})  # Tune's replay of a
    restored.on_trial_complete("a", {"m": 0.5})
    restored.on_trial_result("b", {"m": 0.7, "training_iteration": 1})
    restored.on_trial_complete("b", {"m": 0.7})
    restored.suggest("d")
    restored.on_trial_complete("d", error=True)  # a failed or diverged trial

    study = optuna.load_study(study_name="s", storage=journal_storage(journal))
    assert [(t.number, t.state.name, t.value) for t in study.trials] == [
        (0, "COMPLETE", 0.5),
        (1, "COMPLETE", 0.7),
        (2, "FAIL", None),
        (3, "FAIL", None),
    ]
    assert study.trials[1].intermediate_values == {1: 0.7}


class _Trial:
    """What Ray's logger callbacks read of a trial."""

    def __init__(self, trial_id, status="RUNNING", last_result=None):
        self.trial_id, self.status, self.last_result = trial_id, status, last_result or {}
        self.config = {"components.threshold.floor": 0.8}
        self.local_path = None

    def __str__(self):
        return f"train_trial_{self.trial_id}"


def test_progress_lines_rank_each_finished_trial_and_estimate_what_is_left(monkeypatch, capsys):
    from ablate.sweep import tracking

    clock = iter([1000.0, 1010.0, 1030.0])
    monkeypatch.setattr(tracking.time, "time", lambda: next(clock))
    lines = tracking.ProgressLines("search", "best_val_acc", "max", planned=4, later=1)
    lines.setup()
    first = _Trial("aaaa0001", "TERMINATED", {"best_val_acc": 0.5})
    lines.on_trial_complete(1, [first, _Trial("aaaa0002")], first)
    second = _Trial("aaaa0002", "TERMINATED", {"best_val_acc": 0.625})
    failed = _Trial("aaaa0003", "ERROR")
    lines.on_trial_complete(2, [first, second, failed], second)
    assert capsys.readouterr().out.splitlines() == [
        # 10 s for one trial; 3 search trials and 1 baseline left
        "[search] trial aaaa0001 finished (1/4): best_val_acc 0.5000, rank 1 of 1 so far; "
        "about 40 s left for 4 trial(s)",
        # 30 s for two; one search trial (the failed one counts as done) and the baseline left
        "[search] trial aaaa0002 finished (3/4): best_val_acc 0.6250, rank 1 of 2 so far; "
        "about 30 s left for 2 trial(s)",
    ]
    # two trials side by side: the first to finish took 40 s of its own while the other ran; the wall time per
    # finished trial (50 s, start-up included) would count them one after the other
    clock = iter([0.0, 50.0])
    monkeypatch.setattr(tracking.time, "time", lambda: next(clock))
    lines = tracking.ProgressLines("baseline", "best_val_acc", "max", planned=3, later=0)
    lines.setup()
    first = _Trial("cccc0001", "TERMINATED", {"best_val_acc": 0.5, "time_total_s": 40.0})
    lines.on_trial_complete(1, [first, _Trial("cccc0002"), _Trial("cccc0003", "PENDING")], first)
    assert capsys.readouterr().out.endswith("; about 40 s left for 2 trial(s)\n")  # 2 x 40 s / 2 at once


def test_a_resumed_trial_continues_its_mlflow_run(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from ablate.sweep.tracking import ResumingMLflowLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trial = _Trial("bbbb0001")
    first = ResumingMLflowLogger(tracking_uri=uri, experiment_name="study", tags={"study": "study"})
    first.setup()
    first.log_trial_start(trial)
    first.log_trial_result(1, trial, {"val_acc": 0.25, "training_iteration": 1})
    # the driver restarts: Ray's callback comes back with no memory of its runs
    again = ResumingMLflowLogger(tracking_uri=uri, experiment_name="study", tags={"study": "study"})
    again.setup()
    again.log_trial_start(trial)
    again.log_trial_result(2, trial, {"val_acc": 0.5, "training_iteration": 2})
    again.log_trial_end(trial)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("study").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params == {"components.threshold.floor": "0.8"} and runs[0].data.tags["study"] == "study"
    history = client.get_metric_history(runs[0].info.run_id, "val_acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.25), (2, 0.5)]


def test_a_resume_with_other_trackers_is_refused(tmp_path):
    import json

    from ablate.errors import ConfigError
    from ablate.results.storage import Storage
    from ablate.sweep import driver

    folder = Storage(tmp_path)
    folder.write_text(driver.STUDY_FILE, json.dumps({"log": ["mlflow"]}))
    with pytest.raises(ConfigError, match=r"started with --log \['mlflow'\], this command asks for none"):
        driver.check_resume(folder, {"log": []})


def test_wandb_logs_each_trial_offline_without_a_key(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    from ablate.sweep import driver

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    args = ["--space", SMOKE, "--storage", str(tmp_path), "--set", "data.val_per_class=10", "--num-samples", "2"]
    try:
        assert driver.main([*args, "--set", "trainer.epochs=1", "--log", "wandb"]) == 0
    finally:
        os.environ.pop("WANDB_MODE", None)  # set by the driver for its Ray workers
    assert "wandb: offline (no WANDB_API_KEY)" in capsys.readouterr().out
    runs = sorted((tmp_path / "smoke" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 3  # two searched trials and the supervised baseline
    assert all(b"smoke" in run.read_bytes() for run in runs)  # the study's name is the project
