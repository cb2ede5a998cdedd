"""Where a study's trials are watched: the experiment trackers that ``--log`` adds (MLflow, Weights & Biases, through
Ray Tune's own logger callbacks), and one progress line per finished trial beside Ray's trial table.

TensorBoard needs nothing here: Ray writes its event files into every trial's folder (``tensorboard --logdir
results/NAME``). Each tracker sees each trial as one run: its sampled config as parameters, every epoch's metrics,
and the study's name (MLflow: the experiment; W&B: the project).
"""

from __future__ import annotations

import os
import time
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune import Callback

from ablate.errors import ConfigError
from ablate.results.storage import Storage

MLFLOW_FILE = "mlflow.db"  # MLflow's local store: its file store is in maintenance mode since MLflow 3


def check_trackers(names: list[str], folder: Storage) -> None:
    """Refuse, before Ray starts, a tracker that is not installed or has nowhere to write."""
    for name in names:
        try:
            __import__(name)
        except ImportError:
            raise ConfigError(f"--log {name}: the {name} package is not installed: pip install -e '.[track]'") from None
    if "mlflow" in names and folder.local_path() is None and not os.environ.get("MLFLOW_TRACKING_URI"):
        raise ConfigError(
            f"--log mlflow: the study's storage {folder} is not a local folder; set MLFLOW_TRACKING_URI to a "
            "tracking server (or a sqlite:/// file) for its runs"
        )


def mlflow_uri(folder: Storage) -> str:
    """MLFLOW_TRACKING_URI when set, else an SQLite store in the study folder."""
    local = folder.local_path(MLFLOW_FILE)
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{local.resolve() if local else MLFLOW_FILE}"


def wandb_offline() -> bool:
    """W&B runs offline (files to sync later with ``wandb sync``) where no API key is set; its logging actors
    inherit the mode from the driver's environment, so this is set before Ray starts."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE"):
        return os.environ.get("WANDB_MODE") == "offline"
    os.environ["WANDB_MODE"] = "offline"
    return True


class ResumingMLflowLogger(MLflowLoggerCallback):
    """Ray's MLflow callback, except that a resumed trial continues its own run instead of opening a second one
    (Ray's callback forgets its runs when the driver restarts)."""

    def log_trial_start(self, trial) -> None:
        if trial not in self._trial_runs:
            from mlflow import MlflowClient

            client = MlflowClient(self.tracking_uri)
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is not None:
                runs = client.search_runs([experiment.experiment_id], f"tags.trial_name = '{trial}'", max_results=1)
                if runs:
                    self._trial_runs[trial] = runs[0].info.run_id
                    client.update_run(runs[0].info.run_id, status="RUNNING")
        super().log_trial_start(trial)


def tracker_callbacks(names: list[str], study_name: str, role: str, folder: Storage) -> list[Callback]:
    callbacks: list[Callback] = []
    tags = {"study": study_name, "role": role}
    if "mlflow" in names:
        callbacks.append(ResumingMLflowLogger(tracking_uri=mlflow_uri(folder), experiment_name=study_name, tags=tags))
    if "wandb" in names:
        from ray.air.integrations.wandb import WandbLoggerCallback

        local = folder.local_path()
        callbacks.append(
            WandbLoggerCallback(
                project=study_name, group=role, tags=[role], **({"dir": str(local.resolve())} if local else {})
            )
        )
    return callbacks


class ProgressLines(Callback):
    """One line per finished trial: its metric and its rank among the experiment's finished trials so far, and,
    once this driver has seen a trial finish, about how long the study still needs: the trials still to run (the
    later experiments' included) times the wall time per trial finished in this run, or, when smaller (early,
    with trials running side by side), the finished trial's own time over the trials running at once."""

    def __init__(self, role: str, metric: str, mode: str, planned: int, later: int):
        self.role, self.metric, self.mode, self.planned, self.later = role, metric, mode, planned, later

    def setup(self, **info: Any) -> None:
        self.started = time.time()  # also after a resume: the rate is this run's
        self.finished_here = 0

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        value = (trial.last_result or {}).get(self.metric)
        finished = [t for t in trials if t.status == "TERMINATED" and t is not trial]
        others = [t.last_result[self.metric] for t in finished if _has(t, self.metric)]
        if isinstance(value, (int, float)):
            better = sum(v > value if self.mode == "max" else v < value for v in others)
            shown = f"{self.metric} {value:.4f}, rank {better + 1} of {len(others) + 1} so far"
        else:
            shown = f"no {self.metric} reported"
        self._line(trials, trial, shown)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._line(trials, trial, "failed (the summary names the error)")

    def _line(self, trials: list, trial, shown: str) -> None:
        self.finished_here += 1
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials) + (trial.status not in ("TERMINATED", "ERROR"))
        left = max(self.planned - done, 0) + self.later
        per_trial = (time.time() - self.started) / self.finished_here
        # Early on, the wall time per finished trial ignores the trials running beside it: a trial's own time over
        # the trials running at once is the better rate until enough have finished
        own = (trial.last_result or {}).get("time_total_s")
        if isinstance(own, (int, float)) and own > 0:
            at_once = 1 + sum(t.status == "RUNNING" and t is not trial for t in trials)
            per_trial = min(per_trial, own / at_once)
        eta = f"about {_duration(per_trial * left)} left for {left} trial(s)" if left else "no trial left to run"
        print(f"[{self.role}] trial {trial.trial_id} finished ({done}/{self.planned}): {shown}; {eta}", flush=True)


def _has(trial, metric: str) -> bool:
    return isinstance((trial.last_result or {}).get(metric), (int, float))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
