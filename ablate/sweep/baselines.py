"""A study's references: its baseline trials (a preset's components on the study's base config, with the same
data, budget, steps and seeds as the search) and the trivial references of its test split (chance, majority).

The baseline trials are a grid of points, each the values a trial gets: ``baseline`` (the preset's name), the
training seed and its index ``repeat``, and one value of every data key the study searches or its variants set.
"""

from __future__ import annotations

import itertools
from typing import Any

from ablate.config.compose import BASELINE, REPEAT, VARIANT, compose_config
from ablate.config.params import flatten, get_dotted
from ablate.config.study import SEARCHABLE_DATA_KEYS, Study, trial_config
from ablate.errors import ConfigError

SEED = "trainer.seed"


def _listed(study: Study, key: str) -> list[Any] | None:
    """The values a searched key takes, or None when the study does not search it."""
    spec = study.params.get(key)
    if spec is None:
        return None
    kind, values = next(iter(spec.items()))
    if kind not in ("grid", "choice"):
        raise ConfigError(
            f"params.{key}: baselines are trained at every value of a searched seed or data key, so list them "
            f"({{grid: [...]}} or {{choice: [...]}}), not {kind}; or drop `baselines`"
        )
    return list(values)


def baseline_seeds(study: Study) -> list[int]:
    """The study's ``baseline_seeds``, or else the training seeds the search trials use: trainer.seed (or its
    searched values) + 0 .. repeats-1."""
    if study.baseline_seeds is not None:
        return list(study.baseline_seeds)
    starts = _listed(study, SEED) or [study.base["trainer"]["seed"]]
    return sorted({start + i for start in starts for i in range(study.search["repeats"])})


def data_conditions(study: Study) -> list[dict[str, Any]]:
    """Every split the search trials train on, as dotted data keys: each variant's data overlay crossed with
    every value of the searched data keys (``[{}]`` when the split never changes)."""
    overlays = [{}]
    if VARIANT in study.params:
        names = next(iter(study.params[VARIANT].values()))
        overlays = [{f"data.{k}": v for k, v in flatten(study.variants[n].get("data", {})).items()} for n in names]
    searched = {key: _listed(study, key) for key in SEARCHABLE_DATA_KEYS if key in study.params}
    conditions: list[dict[str, Any]] = []
    for overlay in overlays:
        for values in itertools.product(*searched.values()):
            condition = {**overlay, **dict(zip(searched, values))}
            if condition not in conditions:
                conditions.append(condition)
    # every condition names the same keys (a variant that leaves a key alone takes the base's value)
    keys = list(dict.fromkeys(k for c in conditions for k in c))
    return [{k: c[k] if k in c else get_dotted(study.base, k) for k in keys} for c in conditions]


def split_sections(study: Study) -> list[tuple[str, dict[str, Any]]]:
    """Every data section the study's trials can get, with where it comes from: each variant crossed with each
    value of the searched data keys (a range's two ends), for checking the splits before Ray starts."""
    names = list(next(iter(study.params[VARIANT].values()))) if VARIANT in study.params else [None]
    searched = {}
    for key in SEARCHABLE_DATA_KEYS:
        if key in study.params:
            kind, values = next(iter(study.params[key].items()))
            searched[key] = list(values) if kind in ("grid", "choice") else sorted(set(values))
    sections: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        for values in itertools.product(*searched.values()):
            sampled = dict(zip(searched, values))
            if name is not None:
                sampled[VARIANT] = name
            data = compose_config(study.base, study.variants, sampled)["data"]
            if all(data != seen for _, seen in sections):
                source = data["path"] or data["name"]
                asked = ", ".join(f"{k}={v}" for k, v in sampled.items())
                sections.append((f"{source} ({asked})" if asked else source, data))
    return sections


# Data keys that change only the unlabeled pool: a baseline that reads no unlabeled face trains the same at each of
# their values, so it runs at the base's value alone (else, with the FixMatch family's data.labeled_in_unlabeled,
# supervised-only would run twice per seed and count each seed twice).
UNLABELED_POOL_KEYS = ("data.labeled_in_unlabeled",)


def uses_unlabeled(config: dict[str, Any]) -> bool:
    """Whether a resolved config trains on unlabeled faces (any enabled component that reads them)."""
    from ablate.components import COMPONENTS

    return any(COMPONENTS.get(name).uses_unlabeled for name, c in config["components"].items() if c["enabled"])


def baseline_conditions(study: Study, name: str) -> list[dict[str, Any]]:
    """The data conditions baseline ``name`` runs at: ``data_conditions``, less the unlabeled pool's keys when
    the baseline reads no unlabeled face."""
    conditions = data_conditions(study)
    probe = {BASELINE: name, **conditions[0], SEED: baseline_seeds(study)[0], REPEAT: 0}
    if uses_unlabeled(trial_config(study.base, study.variants, probe, study.baselines)):
        return conditions
    kept: list[dict[str, Any]] = []
    for condition in conditions:
        same = {k: get_dotted(study.base, k) if k in UNLABELED_POOL_KEYS else v for k, v in condition.items()}
        if same not in kept:
            kept.append(same)
    return kept


def baseline_points(study: Study, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    """The sampled values of every baseline trial, each checked to resolve (a ConfigError names the point): at
    the study's baseline seeds, or at ``seeds`` (seeds until decided: the baseline seeds and the added ones)."""
    if not study.baselines:
        return []
    seeds = baseline_seeds(study) if seeds is None else seeds
    points = [
        {BASELINE: name, **condition, SEED: seed, REPEAT: repeat}
        for name in study.baselines
        for condition in baseline_conditions(study, name)
        for repeat, seed in enumerate(seeds)
    ]
    for point in points:
        try:
            trial_config(study.base, study.variants, point, study.baselines)
        except ConfigError as err:
            raise ConfigError(f"baselines: the trial {point}: {err}") from None
    return points


def reference(class_names: tuple[str, ...] | list[str], test_class_counts: list[int]) -> dict[str, Any]:
    """What a model that learned nothing scores on the test split: chance (1/K) and always the majority class
    (its accuracy is that class's share; its mean class accuracy is 1/K, like chance)."""
    k = len(class_names)
    total = sum(test_class_counts)
    if k == 0 or total == 0:
        raise ConfigError("the test split is empty: chance and the majority class need test faces")
    majority = max(range(k), key=lambda c: test_class_counts[c])
    return {
        "class_names": list(class_names),
        "test_class_counts": [int(n) for n in test_class_counts],
        "chance": 1 / k,
        "majority_class": class_names[majority],
        "majority_test_acc": test_class_counts[majority] / total,
        "majority_test_mean_class_acc": 1 / k,
    }
