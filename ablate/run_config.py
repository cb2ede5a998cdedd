"""The schema of one run's config (a preset, or a study's base): its sections, validated and filled with every default.

Sections: ``data``, ``model``, ``trainer``, ``augment``, ``components``. Each hyper-parameter is declared next
to the code that uses it (``DATA_PARAMS``, ``MODEL_PARAMS``, ``TRAINER_PARAMS``, ``augment.HPARAMS``, each
component's ``params``); this module only gathers them. Paths become absolute here, before any Ray trial
changes its working directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ablate import augment
from ablate.components import COMPONENTS
from ablate.data import DATA_PARAMS, DATASETS, check_source_options
from ablate.errors import ConfigError
from ablate.models import MODELS
from ablate.params import apply_overrides, load_yaml, resolve_section
from ablate.trainer import MODEL_PARAMS, TRAINER_PARAMS

SECTIONS = ("data", "model", "trainer", "augment", "components")
PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


def resolve_config(raw: Mapping[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Every key checked and every default filled in; raises ConfigError naming the key path."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping with keys {', '.join(SECTIONS)}, got {raw!r}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; allowed: {', '.join(SECTIONS)}")
    return {
        "data": _resolve_data(raw.get("data"), base_dir),
        "model": _resolve_model(raw.get("model"), base_dir),
        "trainer": resolve_section("trainer", raw.get("trainer"), TRAINER_PARAMS),
        "augment": _resolve_augment(raw.get("augment")),
        "components": resolve_components(raw.get("components")),
    }


def _absolute(path: str | None, base_dir: Path | None) -> str | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base_dir or Path.cwd()) / p)


def _resolve_data(given: Mapping[str, Any] | None, base_dir: Path | None) -> dict[str, Any]:
    given = dict(given or {})
    # labels_per_class or label_fraction replace the default budget.
    if "labels" not in given and (given.get("labels_per_class") is not None or given.get("label_fraction") is not None):
        given["labels"] = None
    data = resolve_section("data", given, DATA_PARAMS)
    if data["name"] not in DATASETS:
        raise ConfigError(f"data.name: unknown dataset {data['name']!r}; allowed: {', '.join(DATASETS.names())}")
    if not isinstance(data["options"], Mapping):
        raise ConfigError(f"data.options: expected a mapping of option names to values, got {data['options']!r}")
    check_source_options(data["name"], data["options"])
    asked = [k for k in ("labels", "labels_per_class", "label_fraction") if data[k] is not None]
    if len(asked) != 1:
        raise ConfigError(f"data: give exactly one of labels, labels_per_class, label_fraction; got {asked or 'none'}")
    data["path"] = _absolute(data["path"], base_dir)
    data["options"] = dict(data["options"])
    return data


def _resolve_model(given: Mapping[str, Any] | None, base_dir: Path | None) -> dict[str, Any]:
    model = resolve_section("model", given, MODEL_PARAMS)
    if model["name"] not in MODELS:
        raise ConfigError(f"model.name: unknown model {model['name']!r}; allowed: {', '.join(MODELS.names())}")
    model["weights"] = _absolute(model["weights"], base_dir)
    return model


def _resolve_augment(given: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(augment.HPARAMS))
    if unknown:
        raise ConfigError(f"augment: unknown key {unknown[0]!r}; allowed: {', '.join(augment.HPARAMS)}")
    resolved = {**augment.HPARAMS, **given}
    try:
        augment.Augmenter(64, **resolved)  # validates every value now, not in the first trial
    except ConfigError as err:
        raise ConfigError(f"augment.{err}") from None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()}


def resolve_components(given: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Every registered component, with its parameters; ``enabled`` says which the run uses."""
    given = dict(given or {})
    for name in given:
        if name not in COMPONENTS:
            raise ConfigError(f"components: unknown component {name!r}; allowed: {', '.join(COMPONENTS.names())}")
    resolved = {
        name: resolve_section(f"components.{name}", given.get(name), COMPONENTS.get(name).all_params())
        for name in COMPONENTS.names()
    }
    for name, hp in resolved.items():
        for need in COMPONENTS.get(name).needs:
            if hp["enabled"] and not resolved[need]["enabled"]:
                raise ConfigError(
                    f"components.{name} needs components.{need} to be enabled (it marks the confident samples)"
                )
    if not any(hp["enabled"] and name != "ema" and name != "threshold" for name, hp in resolved.items()):
        raise ConfigError("components: enable at least one loss (supervised, pseudo_label, contrastive or negative)")
    return resolved


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read a config file (a preset), apply ``--set key=value`` overrides, resolve; errors name the file."""
    file = Path(path)
    raw = apply_overrides(load_yaml(file), overrides)
    try:
        return resolve_config(raw, base_dir=Path.cwd())
    except ConfigError as err:
        raise ConfigError(f"{file}: {err}") from None


def preset_path(name_or_path: str) -> Path:
    """``lion`` -> presets/lion.yaml; a path is returned as it is."""
    candidate = PRESETS_DIR / f"{name_or_path}.yaml"
    return candidate if candidate.is_file() and not Path(name_or_path).suffix else Path(name_or_path)
