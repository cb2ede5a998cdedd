"""A study file: its schema and its validation (ablate.sweep.search translates a validated study into Ray Tune terms).

A study is a base config (the keys of a preset: ``data``, ``model``, ``trainer``, ``augment``, ``components``),
optional named ``variants`` (overlays of the base, e.g. the rungs of an ablation ladder), the ``params`` to
search (dotted config keys, or ``variant``), and how to search (``search``, ``scheduler``, ``resources``).
Everything is checked before Ray starts; every error names the file, the key path, the value and what is
allowed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.config.budget import BUDGET_KEYS, SPLIT_PARAMS, set_budget
from ablate.config.compose import compose_config, merge
from ablate.config.metrics import SEARCH_METRICS, TEST_SELECTED_METRICS
from ablate.config.params import (
    Param,
    apply_overrides,
    get_dotted,
    load_yaml,
    parse_assignment,
    resolve_section,
    set_dotted,
)
from ablate.config.run import PRESETS_DIR, SECTIONS, resolve_components, resolve_config
from ablate.errors import ConfigError

STUDY_KEYS = (
    "name",
    "description",
    *SECTIONS,
    "variants",
    "baselines",
    "baseline_seeds",
    "search",
    "params",
    "scheduler",
    "resources",
    "report",
)
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice", "grid")
# The data keys a trial may change: all trials share one decoded data set, so the source is fixed.
SEARCHABLE_DATA_KEYS = tuple(f"data.{key}" for key in SPLIT_PARAMS)
SEARCH_PARAMS = {
    "algorithm": Param("optuna", "optuna (define-by-run), grid or random", choices=("optuna", "grid", "random")),
    "sampler": Param("tpe", "optuna's sampler", choices=("tpe", "nsga2", "random")),
    "metric": Param(
        "best_val_acc",
        "the metric to optimise, on the validation split (best_*: best so far, fair to early-stopped trials)",
        choices=(*SEARCH_METRICS, *TEST_SELECTED_METRICS),
    ),
    "select_on_test": Param(
        False, "allow a test metric as search.metric: hyper-parameters and epochs then get picked on the test set"
    ),
    "mode": Param("max", "maximise or minimise the metric", choices=("max", "min")),
    "num_samples": Param(1, "trials to sample (grid: repeats of the whole grid)", low=1),
    "max_concurrent": Param(None, "trials running at once (null: as many as the resources allow)", kind=int, low=1),
    "seed": Param(0, "the search's seed (Optuna's sampler, Ray's random sampling)"),
    "repeats": Param(
        1,
        "each sampled config is trained with this many training seeds (trainer.seed + 0, 1, ...); "
        "{min: N, max: M, until: decided} trains N and then gives the best config and the baselines further "
        "paired seeds, one at a time, until the gain is decided or M seeds are in (seeds_until_decided)",
        low=1,
    ),
    "seeds_until_decided": Param(
        None,
        "seeds until decided: after the confirmation trials, the best config and the baselines get one more "
        "paired seed at a time until the sequential rule (ablate/results/sequential.py) decides the gain over "
        "supervised-only, or this many seeds are in; null: no further seeds. repeats: {min, max, until: decided} "
        "sets it to max",
        kind=int,
        low=2,
    ),
    "confirm": Param(
        True,
        "after the search, re-run the best config on the baselines' seeds it has not run (confirmation trials, "
        "role confirm), so that its gain over the baseline is paired over every baseline seed",
    ),
}
REPORT_PARAMS = {
    "min_effect": Param(
        None,
        "the smallest gain worth detecting, in points: the summary says how many seeds detect it at 80 % power",
        kind=float,
        low=0.0,
        open_low=True,
    ),
}
SCHEDULER_PARAMS = {
    "name": Param("none", "asha stops poor trials early; none runs every trial to the end", choices=("none", "asha")),
    "grace_period": Param(1, "asha: epochs every trial runs", low=1),
    "max_t": Param(None, "asha: the most epochs (default trainer.epochs)", kind=int, low=1),
    "reduction_factor": Param(2.0, "asha: keep 1/reduction_factor of trials at each rung", low=1.0, open_low=True),
}
RESOURCES_PARAMS = {
    "cpu": Param(1.0, "CPUs per trial (fractions allowed)", low=0.0, open_low=True),
    "gpu": Param(0.0, "GPUs per trial: 1, or a fraction to share one (0.5, 0.25)", low=0.0, high=8.0),
}


@dataclass
class Study:
    """A validated study: the base config, the variants, the search space and how to run it."""

    name: str
    path: Path
    base: dict[str, Any]  # resolved
    variants: dict[str, dict[str, Any]]  # overlays, each checked to resolve on the base
    params: dict[str, dict[str, Any]]  # key -> {distribution: args}
    search: dict[str, Any]
    scheduler: dict[str, Any]
    resources: dict[str, Any]
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> resolved config
    baseline_seeds: list[int] | None = None  # None: the search's own training seeds
    report: dict[str, Any] = field(default_factory=dict)  # how the summary reads the results (REPORT_PARAMS)


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Read and validate a study file; ``overrides`` are ``--set key=value`` on the study's own keys."""
    file = Path(path)
    raw = load_yaml(file)
    # params keys hold dots themselves: params.components.negative.rho=... names one key of params.
    searched = [o for o in overrides if o.startswith("params.")]
    raw = apply_overrides(raw, [o for o in overrides if not o.startswith("params.")])
    for text in searched:
        key, value = parse_assignment(text.removeprefix("params."))
        raw.setdefault("params", {})[key] = value
    try:
        return build_study(raw, file)
    except ConfigError as err:
        raise ConfigError(f"{file}: {err}") from None


def build_study(raw: Mapping[str, Any], file: Path) -> Study:
    unknown = sorted(set(raw) - set(STUDY_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; allowed: {', '.join(STUDY_KEYS)}")
    name = check_name(raw.get("name", file.stem))
    base_raw = {k: raw[k] for k in SECTIONS if k in raw}
    base = resolve_config(base_raw, base_dir=Path.cwd())
    variants = _check_variants(raw.get("variants"), base_raw)
    search = resolve_section("search", _sequential_repeats(raw.get("search")), SEARCH_PARAMS)
    scheduler = resolve_section("scheduler", raw.get("scheduler"), SCHEDULER_PARAMS)
    resources = resolve_section("resources", raw.get("resources"), RESOURCES_PARAMS)
    if resources["gpu"] > 1 and resources["gpu"] != int(resources["gpu"]):
        raise ConfigError(
            f"resources.gpu: {resources['gpu']:g} is neither a fraction below 1 nor a whole number; Ray shares a GPU "
            "between trials that ask for fractions below 1 (0.5, 0.25) and gives whole GPUs (1, 2, ...)"
        )
    params = _check_params(raw.get("params"), base, variants, search)
    if scheduler["name"] == "asha":
        scheduler["max_t"] = scheduler["max_t"] or base["trainer"]["epochs"]
        if scheduler["grace_period"] > scheduler["max_t"]:
            raise ConfigError(f"scheduler.grace_period: {scheduler['grace_period']} exceeds max_t {scheduler['max_t']}")
    _check_metric(search, base)
    baselines = {name: baseline_config(name, base) for name in _baseline_names(raw.get("baselines"))}
    seeds = _baseline_seeds(raw.get("baseline_seeds"), baselines)
    report = resolve_section("report", raw.get("report"), REPORT_PARAMS)
    _check_sequential(search, baselines, seeds, base)
    return Study(name, file, base, variants, params, search, scheduler, resources, baselines, seeds, report)


UNTIL_KEYS = ("min", "max", "until")


def _sequential_repeats(given: Any) -> Any:
    """``search.repeats: {min: N, max: M, until: decided}`` as ``repeats: N, seeds_until_decided: M``."""
    if not isinstance(given, Mapping) or not isinstance(given.get("repeats"), Mapping):
        return given
    repeats = given["repeats"]
    allowed = "expected {min: N, max: M, until: decided} with 1 <= N <= M (or a whole number)"
    if set(repeats) != set(UNTIL_KEYS) or repeats["until"] != "decided":
        raise ConfigError(f"search.repeats: {dict(repeats)!r}; {allowed}")
    low, high = repeats["min"], repeats["max"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) or not 1 <= low <= high:
        raise ConfigError(f"search.repeats: min {low!r}, max {high!r}; {allowed}")
    if "seeds_until_decided" in given:
        raise ConfigError("search: give repeats: {min, max, until: decided} or seeds_until_decided, not both")
    return {**given, "repeats": low, "seeds_until_decided": high}


def _check_sequential(
    search: dict[str, Any], baselines: dict[str, Any], seeds: list[int] | None, base: dict[str, Any]
) -> None:
    """Seeds until decided pair the best config with the baselines seed by seed: it needs baselines, the
    confirmation trials, and seeds the driver can extend (trainer.seed + 0, 1, ...)."""
    if search["seeds_until_decided"] is None:
        return
    if not baselines:
        raise ConfigError("search.seeds_until_decided: needs baselines (e.g. baselines: [supervised]) to pair with")
    if not search["confirm"]:
        raise ConfigError("search.seeds_until_decided: needs search.confirm: true (the best config on every seed)")
    if seeds is not None:
        raise ConfigError("search.seeds_until_decided: the seeds are trainer.seed + 0, 1, ...; drop baseline_seeds")


def check_name(name: Any, where: str = "name") -> str:
    """A study's name names its folder STORAGE/NAME: one plain folder name, never '', '.', '..' or a path."""
    if not isinstance(name, str) or not STUDY_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: {name!r} is not a study name; it names the folder STORAGE/NAME, so use letters, digits, "
            "'.', '_' and '-', starting with a letter or a digit (not '', '.', '..', a path or spaces)"
        )
    return name


def _check_metric(search: dict[str, Any], base: dict[str, Any]) -> None:
    metric = search["metric"]
    if metric in TEST_SELECTED_METRICS and not search["select_on_test"]:
        raise ConfigError(
            f"search.metric: {metric!r} is a test metric, so the search would pick hyper-parameters and epochs on "
            f"the test set; allowed: {', '.join(SEARCH_METRICS)} (validation), or set search.select_on_test: true "
            "to select on test knowingly (its numbers are then an oracle)"
        )
    if metric in SEARCH_METRICS and base["data"]["val_per_class"] == 0:
        raise ConfigError(f"search.metric: {metric!r} needs a validation split; set data.val_per_class (e.g. 20)")


# ---- baselines -------------------------------------------------------------------------------------------


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _baseline_names(given: Any) -> list[str]:
    if given is None:
        return []
    if not isinstance(given, list) or not all(isinstance(n, str) for n in given):
        raise ConfigError(f"baselines: expected a list of preset names, e.g. [supervised]; got {given!r}")
    for name in given:
        if name not in preset_names():
            raise ConfigError(f"baselines: unknown preset {name!r}; allowed: {', '.join(preset_names())}")
    if len(set(given)) != len(given):
        raise ConfigError(f"baselines: {given!r} names a preset twice")
    return list(given)


def _baseline_seeds(given: Any, baselines: dict[str, Any]) -> list[int] | None:
    """Training seeds for the baselines when the search's own are too few to show a seed-to-seed spread (a
    search with one seed per config); the paired tests use the seeds both share."""
    if given is None:
        return None
    if not baselines:
        raise ConfigError("baseline_seeds: the study has no baselines; add e.g. `baselines: [supervised]`")
    ints = isinstance(given, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in given)
    if not ints or not given or len(set(given)) != len(given):
        raise ConfigError(f"baseline_seeds: expected a list of distinct integer seeds, e.g. [0, 1, 2]; got {given!r}")
    return list(given)


def baseline_config(name: str, base: dict[str, Any]) -> dict[str, Any]:
    """The study's base config with the components of preset ``name`` switched on and every other off.

    A component that the preset and the study both enable keeps the study's settings (its weight, the EMA
    decay fitted to the study's step count); the others take the preset's. So the baseline differs from the
    study's trials only in which components run.
    """
    preset = load_yaml(PRESETS_DIR / f"{name}.yaml")
    try:
        wanted = resolve_components(preset.get("components"))
    except ConfigError as err:
        raise ConfigError(f"baselines: presets/{name}.yaml: {err}") from None
    components = {
        comp: (
            copy.deepcopy(base["components"][comp])
            if settings["enabled"] and base["components"][comp]["enabled"]
            else settings
        )
        for comp, settings in wanted.items()
    }
    try:
        return resolve_config({**copy.deepcopy(base), "components": components})
    except ConfigError as err:
        raise ConfigError(f"baselines: {name}: {err}") from None


def _check_variants(given: Any, base_raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if given is None:
        return {}
    if not isinstance(given, Mapping) or not given:
        raise ConfigError(f"variants: expected a mapping of names to config overlays, got {given!r}")
    variants = {}
    for name, overlay in given.items():
        if not isinstance(overlay, Mapping):
            raise ConfigError(f"variants.{name}: expected a mapping of config keys, got {overlay!r}")
        if "data" in overlay and any(k in overlay["data"] for k in ("name", "path", "options")):
            raise ConfigError(
                f"variants.{name}.data: a variant may change the split, not the source (name, path, options)"
            )
        try:
            resolve_config(merge(base_raw, overlay), base_dir=Path.cwd())
        except ConfigError as err:
            raise ConfigError(f"variants.{name}: {err}") from None
        variants[str(name)] = dict(overlay)
    return variants


def _check_params(
    given: Any, base: dict[str, Any], variants: dict[str, dict[str, Any]], search: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise ConfigError(f"params: expected a mapping of dotted config keys to distributions, got {given!r}")
    params: dict[str, dict[str, Any]] = {}
    for key, spec in given.items():
        where = f"params.{key}"
        if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise ConfigError(
                f"{where}: expected one of {', '.join(DISTRIBUTIONS)} with its values, "
                f"e.g. {{uniform: [0.7, 0.95]}}; got {spec!r}"
            )
        kind, values = next(iter(spec.items()))
        if kind == "grid" and search["algorithm"] == "optuna":
            raise ConfigError(f"{where}: grid needs search.algorithm grid or random; with optuna use choice")
        candidates = _spec_values(where, kind, values)
        if key == "variant":
            if not variants:
                raise ConfigError(f"{where}: the study defines no variants; add a `variants:` mapping")
            for value in candidates:
                if value not in variants:
                    raise ConfigError(f"{where}: unknown variant {value!r}; allowed: {', '.join(variants)}")
        else:
            _check_key(where, key, candidates, base)
        params[key] = {kind: values}
    _check_conditionals(params, base, variants)
    return params


def _spec_values(where: str, kind: str, values: Any) -> list[Any]:
    """The values whose validity stands for the whole distribution: its end points, or every choice."""
    if kind in ("choice", "grid"):
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{kind}: expected a non-empty list of values, got {values!r}")
        return values
    if not (
        isinstance(values, list)
        and len(values) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    ):
        raise ConfigError(f"{where}.{kind}: expected [low, high], got {values!r}")
    low, high = values
    if not low < high:
        raise ConfigError(f"{where}.{kind}: low {low} must be below high {high}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}.loguniform: low must be > 0, got {low}")
    if kind == "int" and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{where}.int: expected integer bounds, got {values!r}")
    return [float(low), float(high)] if kind != "int" else [low, high]


def _check_key(where: str, key: str, candidates: list[Any], base: dict[str, Any]) -> None:
    if key.startswith("data.") and key not in SEARCHABLE_DATA_KEYS:
        raise ConfigError(
            f"{where}: trials share one data set, so only the split can be searched; "
            f"allowed: {', '.join(SEARCHABLE_DATA_KEYS)}"
        )
    try:
        get_dotted(base, key)
    except KeyError:
        raise ConfigError(f"{where}: {key!r} is not a config key (e.g. components.negative.rho, trainer.lr)") from None
    if key.startswith("model.") and key != "model.dropout":
        raise ConfigError(f"{where}: only model.dropout can be searched; run one study per backbone")
    for value in candidates:
        config = copy.deepcopy(base)
        set_config_key(config, key, value)
        try:
            resolve_config(config)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


def set_config_key(config: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key; a budget key (data.labels, data.labels_per_class, data.label_fraction) clears the other two."""
    field = key.removeprefix("data.")
    if key.startswith("data.") and field in BUDGET_KEYS:
        set_budget(config["data"], field, value)
    else:
        set_dotted(config, key, value)


def component_of(key: str) -> str | None:
    """components.negative.rho -> negative; None for keys outside a component or for the switch itself."""
    parts = key.split(".")
    return parts[1] if parts[0] == "components" and len(parts) == 3 and parts[2] != "enabled" else None


def _check_conditionals(params: dict[str, Any], base: dict[str, Any], variants: dict[str, dict[str, Any]]) -> None:
    """A component's parameter is searched only where the component can be on."""
    for key in params:
        comp = component_of(key)
        if comp is None:
            continue
        can_be_on = (
            base["components"][comp]["enabled"]
            or f"components.{comp}.enabled" in params
            or any(v.get("components", {}).get(comp, {}).get("enabled") for v in variants.values())
        )
        if not can_be_on:
            raise ConfigError(
                f"params.{key}: components.{comp} is not enabled in the base config, any variant or the search; "
                f"enable it (components.{comp}.enabled: true) or drop the parameter"
            )


# ---- a trial's config ------------------------------------------------------------------------------------


def trial_config(
    base: Mapping[str, Any],
    variants: Mapping[str, Mapping[str, Any]],
    sampled: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The resolved config of one trial: a baseline's config, or the base and its variant, then the sampled
    values; ``__trial_index__`` (set by a repeated search) is added to the training seed."""
    return resolve_config(compose_config(base, variants, sampled, baselines))
