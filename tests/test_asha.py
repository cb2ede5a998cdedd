"""ASHA across a driver kill: the journaled scheduler takes the decisions an uninterrupted one takes; Ray's does not."""

import json
import pickle

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from ablate.sweep.asha import JOURNAL_FILE, JournaledASHA

STOP, CONTINUE = TrialScheduler.STOP, TrialScheduler.CONTINUE
ASHA = {"time_attr": "epoch", "metric": "m", "mode": "max", "max_t": 4, "grace_period": 1, "reduction_factor": 2}


class Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def report(scheduler, trial, epoch, value):
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "m": value})


def first_run(folder):
    """Trial a reaches epoch 2; b is stopped at the first rung (0.4 is below the rung's median 0.5)."""
    scheduler = JournaledASHA(str(folder), **ASHA)
    a, b = Trial("a"), Trial("b")
    scheduler.on_trial_add(None, a)
    assert report(scheduler, a, 1, 0.5) == CONTINUE
    assert report(scheduler, a, 2, 0.6) == CONTINUE
    scheduler.on_trial_add(None, b)
    assert report(scheduler, b, 1, 0.4) == STOP
    return scheduler


def test_every_rung_entry_is_journaled_as_it_is_made(tmp_path):
    first_run(tmp_path)
    journal = json.loads((tmp_path / JOURNAL_FILE).read_text())
    assert journal["entries"] == [["a", 1.0, 0.5, CONTINUE], ["a", 2.0, 0.6, CONTINUE], ["b", 1.0, 0.4, STOP]]


def test_a_resumed_trial_reporting_its_milestone_again_is_stopped_again(tmp_path):
    pickled = pickle.dumps(JournaledASHA(str(tmp_path), **ASHA))  # Ray restores the scheduler from this pickle
    first_run(tmp_path)
    # the driver was killed before Ray saved b as stopped: b resumes and reports epoch 1 again
    restored = pickle.loads(pickled)
    a, b = Trial("a"), Trial("b")
    restored.on_trial_add(None, a)
    restored.on_trial_add(None, b)
    assert report(restored, b, 1, 0.4) == STOP
    assert report(restored, a, 2, 0.6) == CONTINUE
    # Ray's ASHA, even with b already in its rung, skips a milestone it recorded: b would train on
    ray_asha = ASHAScheduler(**ASHA)
    ray_asha.on_trial_add(None, b)
    ray_asha._trial_info["b"]._rungs[-1][1]["b"] = -0.4  # the rung entry (Ray stores metric_op * value)
    assert report(ray_asha, b, 1, 0.4) == CONTINUE


def test_a_new_trial_after_the_restore_meets_the_restored_rungs(tmp_path):
    first_run(tmp_path)
    restored = JournaledASHA(str(tmp_path), **ASHA)
    for name in ("a", "b"):
        restored.on_trial_add(None, Trial(name))
    c = Trial("c")
    restored.on_trial_add(None, c)
    # rung 1 holds a 0.5 and b 0.4: its median is 0.45, so c's 0.44 stops, as it would have without the kill
    assert report(restored, c, 1, 0.44) == STOP
    fresh = ASHAScheduler(**ASHA)  # what Ray restores: empty rungs, so c runs on
    fresh.on_trial_add(None, c)
    assert report(fresh, c, 1, 0.44) == CONTINUE


def test_a_trial_the_restored_experiment_lacks_leaves_the_rungs(tmp_path):
    scheduler = JournaledASHA(str(tmp_path), **ASHA)
    ghost = Trial("ghost")  # reported, but the driver died before Ray saved the trial
    scheduler.on_trial_add(None, ghost)
    report(scheduler, ghost, 1, 0.9)
    restored = JournaledASHA(str(tmp_path), **ASHA)
    c = Trial("c")
    restored.on_trial_add(None, c)
    assert report(restored, c, 1, 0.5) == CONTINUE  # alone in its rung, as the ghost is not in this experiment


def test_the_last_epoch_stops_and_completion_is_journaled(tmp_path):
    scheduler = JournaledASHA(str(tmp_path), **ASHA)
    a = Trial("a")
    scheduler.on_trial_add(None, a)
    for epoch in (1, 2, 3):
        assert report(scheduler, a, epoch, 0.5) == CONTINUE
    assert report(scheduler, a, 4, 0.5) == STOP  # max_t
    scheduler.on_trial_complete(None, a, {"epoch": 4, "m": 0.5})
    entries = json.loads((tmp_path / JOURNAL_FILE).read_text())["entries"]
    assert [e[1] for e in entries] == [1.0, 2.0, 4.0]
