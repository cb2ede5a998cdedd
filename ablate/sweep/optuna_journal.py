"""The search's Optuna study in Optuna's own storage, a journal file in the study folder, so that
``optuna-dashboard results/NAME/optuna.journal`` (and ``optuna.load_study``) show it while it runs and after.

A journal file rather than SQLite: the searcher runs in the driver alone, so the storage has one writer and needs
no server; the journal is an append-only log that a killed driver cannot leave half-written (Optuna replays it),
and it works on the NFS a multi-node study keeps its results on, where SQLite's file locks are unreliable
(Optuna's JournalFileBackend documentation). Imported only when a study searches with Optuna (it imports Ray).
"""

from __future__ import annotations

from pathlib import Path

from ray.tune.search.optuna import OptunaSearch

OPTUNA_FILE = "optuna.journal"


def journal_storage(path: str | Path):
    """Optuna's journal storage in the file ``path`` (absolute: Ray pickles the searcher with it)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(path).resolve())))


class JournaledOptunaSearch(OptunaSearch):
    """OptunaSearch whose study lives in a journal file, and whose resume leaves that study as one history.

    Ray saves the searcher (and Tune its trials) every few seconds, while the journal is written at once; a driver
    killed between two saves leaves the journal ahead of the save it resumes from, in two ways that ``restore``
    reconciles:

    - an Optuna trial the saved searcher does not know (asked for after the save): Tune does not resume it either,
      so it would stay RUNNING for ever; it is ended as FAIL, so the dashboard shows every trial once, in its state;
    - a trial that finished after the save: Tune runs it again from its checkpoint, which replays its epochs to the
      same end, while Optuna keeps the result it was told (a finished trial cannot be reported to again).

    Failed and diverged trials (a trial that diverges raises) reach Optuna as FAIL through Ray's own
    ``on_trial_complete(error=True)``."""

    _told_before_restore: frozenset[str] = frozenset()  # the second case's trials, set by restore

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        import optuna

        states = {trial.number: trial.state for trial in self._ot_study.get_trials(deepcopy=False)}
        known = {trial.number for trial in self._ot_trials.values()}
        for number, state in states.items():
            if number not in known and state == optuna.trial.TrialState.RUNNING:
                self._ot_study.tell(number, state=optuna.trial.TrialState.FAIL)
        self._told_before_restore = frozenset(
            trial_id
            for trial_id, trial in self._ot_trials.items()
            if trial_id not in self._completed_trials
            and states.get(trial.number, optuna.trial.TrialState.RUNNING).is_finished()
        )

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._told_before_restore:
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._told_before_restore:
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result, error)
