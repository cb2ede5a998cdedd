"""What a study's files are called and what a trial records, named once for the driver, the trial and the
results reader (which must not import torch).

A trial reports, beside each epoch's metrics, the config it really trained with and where it ran. A trial
whose loss diverged raises ``TrialDiverged``: Ray records a failed trial (so Optuna is told it failed and the
scheduler drops it), and the message carries the step and the epoch, which ``diverged_at`` reads back from
Ray's error text.
"""

from __future__ import annotations

import re

STUDY_FILE = "study.json"  # the validated study, so the tables can be rebuilt from the files alone
TRIALS_FILE, EPOCHS_FILE = "trials.parquet", "epochs.parquet"
# A trial's role: searched, a baseline, or a confirmation trial (the best searched config re-run on the
# baselines' seeds, for a paired gain).
SEARCH, BASELINE, CONFIRM = "search", "baseline", "confirm"
ROLES = (SEARCH, BASELINE, CONFIRM)
EXPERIMENTS = {SEARCH: "ray", BASELINE: "ray_baselines", CONFIRM: "ray_confirm"}  # role -> Ray's experiment folder


def added_seed_experiment(role: str, seed: int) -> str:
    """The experiment folder of one seed added by seeds until decided (ablate.sweep.until_decided)."""
    return f"{EXPERIMENTS[role]}_seed{seed}"


_ADDED_SEED = re.compile(r"_seed(\d+)$")


def added_seed(folder_name: str, role: str) -> int | None:
    """The seed of an added-seed experiment folder of ``role``, or None for any other folder."""
    match = _ADDED_SEED.search(folder_name)
    return int(match.group(1)) if match and folder_name == added_seed_experiment(role, int(match.group(1))) else None


CHECKPOINT_FILE = "ablate_checkpoint.pt"  # a trial's own checkpoint, in its folder of the experiment

# What each report carries beside the epoch's metrics: the config it trained with (JSON), where it ran.
CONFIG_KEY, NODE_KEY, HOST_KEY, DEVICE_KEY = "trial_config", "node_id", "hostname", "device"
IDENTITY_KEYS = (CONFIG_KEY, NODE_KEY, HOST_KEY, DEVICE_KEY)

COMPLETE, STOPPED, ERROR, DIVERGED = "complete", "stopped", "error", "diverged"
STATUSES = (COMPLETE, STOPPED, DIVERGED, ERROR)
RANKED = (COMPLETE, STOPPED)  # the statuses whose numbers are results
FAILED = (DIVERGED, ERROR)  # the statuses whose numbers are not results

_DIVERGED = re.compile(r"TrialDiverged: diverged at step (\d+) \(epoch (\d+)\)")


class TrialDiverged(RuntimeError):
    """The trial's loss diverged at ``step`` (1-based, counted over the whole run) in ``epoch`` (1-based)."""

    def __init__(self, step: int, epoch: int, loss: float, detail: str = ""):
        self.step, self.epoch, self.loss, self.detail = int(step), int(epoch), float(loss), detail
        super().__init__(step, epoch, loss, detail)  # the args rebuild the error when Ray unpickles it

    def __str__(self) -> str:
        text = f"diverged at step {self.step} (epoch {self.epoch}): the loss was {self.loss:g}"
        return f"{text}. {self.detail}" if self.detail else text


def diverged_at(error_text: str | None) -> tuple[int, int] | None:
    """(step, epoch) of a TrialDiverged in a trial's error text, or None."""
    match = _DIVERGED.search(error_text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None
