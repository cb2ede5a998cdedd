"""ASHA that a resumed study continues exactly: its rungs and decisions kept in a journal in the study folder.

Ray saves the search algorithm with the experiment, not the scheduler: a restored experiment starts ASHA with
empty rungs, so it stops other trials than an uninterrupted run would. This scheduler writes every rung entry
and the decision it led to (``scheduler.json``) as it makes it, and a restored experiment reads them back: each
trial's entries go into its rungs when Ray adds the trial again (entries of a trial that the restored experiment
no longer has are left out), and a trial that reports a milestone it already reached (a resumed trial reports
its epochs again) gets the decision it got then. Ray's own ASHA skips such a report, so a trial that ASHA had
stopped just before a kill would otherwise train on.

Ray restores the scheduler from the pickle it took when the experiment started, so the journal is read on first
use, not in ``__init__``.
"""

from __future__ import annotations

import json
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from ablate.results.storage import Storage

JOURNAL_FILE = "scheduler.json"


class JournaledASHA(ASHAScheduler):
    def __init__(self, journal: str, **asha: Any):
        super().__init__(**asha)
        self._journal = journal  # the study folder (a path or a URI); a str, so the scheduler pickles
        self._loaded = False
        self._entries: list[list[Any]] = []  # [trial_id, milestone, value, decision], in the order made
        self._decisions: dict[tuple[str, float], str] = {}
        self._pending: dict[str, list[tuple[float, float]]] = {}  # trial_id -> rung entries not yet placed

    # ---- the journal ---------------------------------------------------------------------------------

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        storage = Storage(self._journal)
        if not storage.is_file(JOURNAL_FILE):
            return
        self._entries = json.loads(storage.read_text(JOURNAL_FILE))["entries"]
        for trial_id, milestone, value, decision in self._entries:
            self._decisions[(trial_id, float(milestone))] = decision
            self._pending.setdefault(trial_id, []).append((float(milestone), value))

    def _write(self) -> None:
        state = {"metric": self._metric, "mode": self._mode, "time_attr": self._time_attr, "entries": self._entries}
        Storage(self._journal).write_text(JOURNAL_FILE, json.dumps(state, indent=1))

    # ---- Ray's scheduler interface ---------------------------------------------------------------------

    def on_trial_add(self, tune_controller, trial) -> None:
        self._load()
        super().on_trial_add(tune_controller, trial)
        rungs = dict(self._trial_info[trial.trial_id]._rungs)
        for milestone, value in self._pending.pop(trial.trial_id, []):
            if milestone in rungs:
                rungs[milestone][trial.trial_id] = value

    def on_trial_result(self, tune_controller, trial, result: dict[str, Any]) -> str:
        self._load()
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t and self._stop_last_trials:
            action = TrialScheduler.STOP
        else:
            action = self._decide(trial, result[self._time_attr], self._metric_op * result[self._metric])
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict[str, Any]) -> None:
        self._load()
        if self._time_attr in result and self._metric in result:
            self._decide(trial, result[self._time_attr], self._metric_op * result[self._metric])
        del self._trial_info[trial.trial_id]

    def _decide(self, trial, now: float, reward: float) -> str:
        bracket = self._trial_info[trial.trial_id]
        reached = [milestone for milestone, _ in bracket._rungs if now >= milestone]
        if not reached:
            return TrialScheduler.CONTINUE
        known = self._decisions.get((trial.trial_id, float(max(reached))))
        if known is not None:
            return known  # the decision this milestone got before (a resumed trial reports its epochs again)
        before = {milestone: trial.trial_id in recorded for milestone, recorded in bracket._rungs}
        action = bracket.on_result(trial, now, reward)
        for milestone, recorded in bracket._rungs:
            if trial.trial_id in recorded and not before[milestone]:
                key = (trial.trial_id, float(milestone))
                self._decisions[key] = action
                self._entries.append([trial.trial_id, float(milestone), recorded[trial.trial_id], action])
                self._write()
        return action
