"""A validated study in Ray Tune's and Optuna's terms: the param space, the define-by-run space, the
searcher, the sampler and the scheduler."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from ablate.components import COMPONENTS
from ablate.config.params import flatten
from ablate.config.study import Study, component_of


def ray_param_space(study: Study) -> dict[str, Any]:
    """Ray Tune's param_space for the grid and random algorithms."""
    from ray import tune

    space = {}
    for key, spec in study.params.items():
        kind, values = next(iter(spec.items()))
        space[key] = {
            "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v),
            "int": lambda v: tune.randint(v[0], v[1] + 1),
            "choice": tune.choice,
            "grid": tune.grid_search,
        }[kind](values)
    if study.search["repeats"] > 1:
        space["__trial_index__"] = tune.grid_search(list(range(study.search["repeats"])))
    return space


class DefineByRun:
    """Optuna's define-by-run space. The variant and the switches are sampled first; then a component's
    parameter only when its component is on in this trial, and a parameter declared with ``when`` (e.g. the
    fixed threshold: when mode is fixed) only when its sibling has that value. So Optuna never tunes a
    parameter that does nothing in the trial. A class, not a closure: Ray pickles the searcher to resume it."""

    def __init__(self, study: Study):
        self.base = flatten(study.base)
        self.variants = {name: flatten(overlay) for name, overlay in study.variants.items()}
        self.params = study.params
        self.order = sorted(
            study.params, key=lambda k: (k != "variant", not k.endswith(".enabled"), _condition(k) is not None, k)
        )

    def __call__(self, trial) -> None:
        values = dict(self.base)
        for key in self.order:
            if key == "variant":
                values.update(self.variants[suggest(trial, key, self.params[key])])
                continue
            comp = component_of(key)
            if comp is not None and not values[f"components.{comp}.enabled"]:
                continue
            if comp is not None and not _acts(key, values):
                continue
            values[key] = suggest(trial, key, self.params[key])


def _condition(key: str) -> tuple[str, Any] | None:
    """components.threshold.tau -> ("components.threshold.policy", "fixed"): the sibling it depends on."""
    comp = component_of(key)
    if comp is None:
        return None
    param = COMPONENTS.get(comp).all_params()[key.split(".")[2]]
    return None if param.when is None else (f"components.{comp}.{param.when[0]}", param.when[1])


def _acts(key: str, values: Mapping[str, Any]) -> bool:
    """Whether a component's parameter acts, given the flat values of the trial so far."""
    comp, name = key.split(".")[1:3]
    prefix = f"components.{comp}."
    siblings = {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}
    return COMPONENTS.get(comp).all_params()[name].acts(siblings)


def suggest(trial, key: str, spec: Mapping[str, Any]) -> Any:
    kind, values = next(iter(spec.items()))
    if kind == "uniform":
        return trial.suggest_float(key, *values)
    if kind == "loguniform":
        return trial.suggest_float(key, *values, log=True)
    if kind == "int":
        return trial.suggest_int(key, *values)
    return trial.suggest_categorical(key, values)


def make_sampler(study: Study):
    import optuna

    seed = study.search["seed"]
    return {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }[study.search["sampler"]]()


def make_search_alg(study: Study, optuna_file: str | os.PathLike | None = None):
    """OptunaSearch for optuna (its study in the journal file ``optuna_file``, named as the study; in memory
    without one), repeated over training seeds; Ray's variant generator, seeded, for grid/random."""
    from ray.tune.search import Repeater
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if study.search["algorithm"] != "optuna":
        # constant_grid_search: the random values are drawn once and shared by every grid point. The generator
        # limits its own concurrency: Tune ignores max_concurrent_trials for it.
        return BasicVariantGenerator(
            random_state=study.search["seed"],
            constant_grid_search=True,
            max_concurrent=study.search["max_concurrent"] or 0,
        )
    from ablate.sweep.optuna_journal import JournaledOptunaSearch, journal_storage

    searcher = JournaledOptunaSearch(
        space=DefineByRun(study),
        metric=study.search["metric"],
        mode=study.search["mode"],
        sampler=make_sampler(study),
        study_name=study.name,
        storage=None if optuna_file is None else journal_storage(optuna_file),
    )
    if study.search["repeats"] > 1:
        searcher = Repeater(searcher, repeat=study.search["repeats"], set_index=True)
    return searcher


def make_scheduler(study: Study, journal: str):
    """ASHA on epochs, its rungs and decisions journaled in the study folder ``journal`` (see ablate.sweep.asha)."""
    s = study.scheduler
    if s["name"] == "none":
        return None
    from ablate.sweep.asha import JournaledASHA

    return JournaledASHA(
        journal,
        time_attr="epoch",
        max_t=s["max_t"],
        grace_period=s["grace_period"],
        reduction_factor=s["reduction_factor"],
    )


def make_baseline_search(points: list[dict[str, Any]], max_concurrent: int | None):
    """The baseline trials: exactly these points, in order, and their param space (Ray's variant generator
    takes a point's keys only where the space names them; their values come from the points)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    generator = BasicVariantGenerator(points_to_evaluate=points, max_concurrent=max_concurrent or 0)
    return generator, dict.fromkeys(points[0]) if points else {}


def grid_size(study: Study) -> int:
    return math.prod(len(spec["grid"]) for spec in study.params.values() if "grid" in spec)


def search_trials(study: Study) -> int:
    """How many trials the search runs: the grid times num_samples, each trained with ``repeats`` seeds."""
    return grid_size(study) * study.search["num_samples"] * study.search["repeats"]
