"""The schema of one run's config (a preset, or a study's base): its sections, validated and filled with every
default, and the listing of every parameter (``python -m ablate.train --list-params``).

Sections: ``plugins``, ``data``, ``model``, ``trainer``, ``augment``, ``components``. Each hyper-parameter is
declared once: the loop's in ``ablate.config.trainer``, the split's in ``ablate.config.budget``, and what a
registry holds beside the code it configures (each data source's options, ``MODEL_PARAMS`` with the backbones,
``augment.PARAMS`` with the views, each component's ``params``), so that a plugin declares its own. This module
gathers them. Importing it needs no torch; resolving a config imports the registries (``parts()``), since
components, models and data sources are torch code. Paths become absolute here, before any Ray trial changes its
working directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ablate.config.params import Param, apply_overrides, load_yaml, resolve_section
from ablate.config.plugins import load_plugins, resolve_plugins
from ablate.config.trainer import TRAINER_PARAMS
from ablate.errors import ConfigError

SECTIONS = ("plugins", "data", "model", "trainer", "augment", "components")
PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"


def parts() -> SimpleNamespace:
    """The registries a config names: the views, components, data sources and models (imported on first use)."""
    from ablate import augment, components, data, models

    return SimpleNamespace(augment=augment, components=components, data=data, models=models)


def resolve_config(raw: Mapping[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Every key checked and every default filled in; raises ConfigError naming the key path."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping with keys {', '.join(SECTIONS)}, got {raw!r}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; allowed: {', '.join(SECTIONS)}")
    plugins = resolve_plugins(raw.get("plugins"), base_dir)
    load_plugins(plugins)  # before the components are resolved: a plugin may register one
    resolved = {
        "plugins": plugins,
        "data": parts().data.resolve_data_section(raw.get("data"), base_dir),
        "model": parts().models.resolve_model_section(raw.get("model"), base_dir),
        "trainer": resolve_section("trainer", raw.get("trainer"), TRAINER_PARAMS),
        "augment": _resolve_augment(raw.get("augment")),
        "components": resolve_components(raw.get("components")),
    }
    enabled = [name for name, hp in resolved["components"].items() if hp["enabled"]]
    parts().components.check_weak_views(enabled, resolved["augment"]["weak_views"])
    return resolved


def _resolve_augment(given: Mapping[str, Any] | None) -> dict[str, Any]:
    augment = parts().augment
    resolved = resolve_section("augment", given, augment.PARAMS)
    augment.Augmenter(64, **resolved)  # the checks a Param cannot express (RGB triples, op names), before any trial
    return resolved


def resolve_components(given: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Every registered component, with its parameters; ``enabled`` says which the run uses."""
    if given is not None and not isinstance(given, Mapping):
        raise ConfigError(
            f"components: expected a mapping of component name to settings, e.g. {{negative: {{enabled: false}}}}; "
            f"got {given!r}"
        )
    given = dict(given or {})
    registered = parts().components.COMPONENTS
    for name in given:
        if name not in registered:
            raise ConfigError(f"components: unknown component {name!r}; allowed: {', '.join(registered.names())}")
    resolved = {
        name: resolve_section(f"components.{name}", given.get(name), registered.get(name).all_params())
        for name in registered.names()
    }
    enabled = [name for name, hp in resolved.items() if hp["enabled"]]
    parts().components.check_enabled(enabled)
    for name in enabled:
        registered.get(name).check_config(resolved)
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


def param_tables() -> list[tuple[str, str, dict[str, Param]]]:
    """(section path, what it is, its parameters) for every configurable thing, in the order of a config."""
    data, registered = parts().data, parts().components.COMPONENTS
    tables = [
        ("data", "the data source and its labeled/unlabeled/validation split", data.DATA_PARAMS),
        *(
            (f"data.options ({name})", f"the options of the {name} source", data.source_options(name))
            for name in data.DATASETS.names()
        ),
        ("data.options (every source)", "options every source takes, after it loads", data.registry.COMMON_OPTIONS),
        ("model", "the backbone and its classifier head", parts().models.MODEL_PARAMS),
        ("trainer", "the loop, the optimiser and the device", TRAINER_PARAMS),
        ("augment", "the weak and strong views, made on the device", parts().augment.PARAMS),
    ]
    for name in registered.names():
        component = registered.get(name)
        reports = component.report_names()
        what = f"a {component.role.value}" + (f"; reports {', '.join(reports)}" if reports else "")
        tables.append((f"components.{name}", what, component.all_params()))
    return tables


def param_listing() -> str:
    """Every parameter with its default, what is allowed, when it acts, and its doc: one block per section."""
    lines = []
    for path, what, params in param_tables():
        lines.append(f"{path}: {what}")
        for key, param in params.items():
            when = "" if param.when is None else f"  [when {param.when[0]} is {_either(param.when[1])}]"
            lines.append(f"  {key} = {param.default!r}  ({param.allowed()}){when}")
            lines.append(f"      {param.doc}")
        lines.append("")
    return "\n".join(lines)


def _either(value: Any) -> str:
    return " or ".join(map(str, value)) if isinstance(value, tuple) else str(value)
