"""A trial's config composed from a study's record: plain dictionaries, no validation and no training code.

The driver validates (``ablate.config.study.trial_config`` resolves what this module composes) and the trial trains; the
results reader composes the config of a trial that failed before it reported one, from ``study.json`` and the
values Ray sampled, without importing torch.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ablate.config.budget import BUDGET_COLUMNS, set_budget
from ablate.config.params import set_dotted

# Keys of a trial's sampled values that pick or index, rather than set a config key.
VARIANT = "variant"
BASELINE = "baseline"
TRIAL_INDEX = "__trial_index__"  # set by a repeated search: added to the training seed
REPEAT = "repeat"  # a baseline or confirmation trial's seed index
CONFIRMS = "confirms"  # a confirmation trial's: the id of the search trial whose config it re-runs
CONTROL_KEYS = (VARIANT, BASELINE, TRIAL_INDEX, REPEAT, CONFIRMS)


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``overlay``'s keys merged in, mapping by mapping."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_sampled(config: dict[str, Any], key: str, value: Any) -> None:
    """Set one sampled dotted key; a budget key follows ``set_budget``'s rule."""
    if key in BUDGET_COLUMNS:
        set_budget(config.setdefault("data", {}), key.removeprefix("data."), value)
    else:
        set_dotted(config, key, value)


def compose_config(
    base: Mapping[str, Any],
    variants: Mapping[str, Mapping[str, Any]],
    sampled: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """One trial's config, unresolved: a baseline's config or the base with its variant, then the sampled
    values; ``__trial_index__`` (a repeated search) is added to the training seed."""
    if BASELINE in sampled:
        if not baselines or sampled[BASELINE] not in baselines:
            raise KeyError(f"baseline {sampled[BASELINE]!r} is not in the study's baselines")
        config = copy.deepcopy(dict(baselines[sampled[BASELINE]]))
    else:
        config = copy.deepcopy(dict(base))
        if VARIANT in sampled:
            config = merge(config, variants[sampled[VARIANT]])
    for key, value in sampled.items():
        if key not in CONTROL_KEYS:
            set_sampled(config, key, value)
    config["trainer"]["seed"] = config["trainer"]["seed"] + int(sampled.get(TRIAL_INDEX, 0))
    return config
