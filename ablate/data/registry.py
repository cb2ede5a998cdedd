"""The registry of data sources: each is a loader plus the options it declares, looked up by the name a config or
``--data NAME:PATH`` uses.

A source declares its options once, as ``{name: Param(default, doc, ...)}`` beside its loader, and registers both
with ``@register_dataset(name, options=...)``. The loader takes exactly those options as keyword-only arguments,
with no defaults of its own: ``resolve_options`` fills every default and checks every value before it is called,
so the defaults live in one place and reach the results tables.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ablate.config.params import Param
from ablate.data.base import FaceSet
from ablate.errors import AblateError, ConfigError, DataError
from ablate.registry import Registry

# name -> loader(path: str | None, **options) -> FaceSet
DATASETS: Registry = Registry("dataset")


@dataclass(frozen=True)
class SourceSpec:
    """What a source declares beside its loader: its options, and whether it reads files from a path."""

    options: dict[str, Param]
    reads_files: bool


_SPECS: dict[str, SourceSpec] = {}

# Options every source takes, applied by ``load_dataset`` to what the loader returns: the loader (and so its
# decoded-image cache, keyed by the loader's own options) never sees them.
COMMON_OPTIONS = {
    "channel_order": Param(
        "rgb",
        "the order of the three channels the model sees: rgb, or bgr as Ada-CM's official pipeline feeds its "
        "weights (dataset/raf.py:71-72: cv2.imread's BGR handed to PIL as RGB); augment.mean/std and the colour "
        "ops then read the channels in that order, as the official code's do",
        choices=("rgb", "bgr"),
    ),
}


def register_dataset(name: str, *, options: Mapping[str, Param], reads_files: bool = True) -> Callable:
    """Register ``loader(path, *, **options)`` as the source ``name`` with its options' Params.

    Refuses (at import) a loader whose keyword-only arguments are not exactly the declared options, or that gives
    them defaults (the Param's default is the only one), and a Param without a doc string.
    """

    def add(loader: Callable) -> Callable:
        keywords = [p for p in inspect.signature(loader).parameters.values() if p.kind == p.KEYWORD_ONLY]
        if [p.name for p in keywords] != list(options):
            raise ValueError(
                f"dataset {name!r}: the loader's keyword-only arguments {[p.name for p in keywords]} must be its "
                f"declared options {list(options)}, in the same order"
            )
        with_default = [p.name for p in keywords if p.default is not p.empty]
        if with_default:
            raise ValueError(
                f"dataset {name!r}: option {with_default[0]!r} has a default in the loader; keep it in the Param"
            )
        common = sorted(set(options) & set(COMMON_OPTIONS))
        if common:
            raise ValueError(f"dataset {name!r}: option {common[0]!r} is common to every source; do not declare it")
        undocumented = [key for key, param in options.items() if not param.doc]
        if undocumented:
            raise ValueError(f"dataset {name!r}: option {undocumented[0]!r} needs a doc string")
        DATASETS.register(name)(loader)
        _SPECS[name] = SourceSpec(dict(options), reads_files)
        return loader

    return add


def source_options(name: str) -> dict[str, Param]:
    """The options the source ``name`` declares (a ConfigError lists the sources when the name is unknown); it also
    takes ``COMMON_OPTIONS``."""
    DATASETS.get(name)
    return dict(_SPECS[name].options)


def resolve_documented(where: str, given: Mapping[str, Any], params: Mapping[str, Param]) -> dict[str, Any]:
    """Every key of ``params`` checked (a given value, else the default); a bad value's ConfigError also says what
    the key means, from its Param's doc. Unknown keys are the caller's to refuse."""
    resolved = {}
    for key, param in params.items():
        try:
            resolved[key] = param.check(f"{where}.{key}", given.get(key, param.default))
        except ConfigError as err:
            raise ConfigError(f"{err} ({key}: {param.doc})") from None
    return resolved


def resolve_options(name: str, given: Mapping[str, Any] | None, where: str = "data.options") -> dict[str, Any]:
    """The source's options with every default filled and every value checked by its Param.

    Errors name the key path (``data.options.image_size``), the value, what is allowed and what the option means.
    """
    params = {**source_options(name), **COMMON_OPTIONS}
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where}: expected a mapping of option names to values, got {given!r}")
    for key in given:
        if key not in params:
            raise ConfigError(f"{where}: {name} has no option {key!r}; allowed: {', '.join(params) or 'none'}")
    return resolve_documented(where, given, params)


def check_path(name: str, path: str | None, error: type[AblateError] = DataError, where: str = "path") -> None:
    """A source that renders its images reads no files: a path given to it is a mistake worth naming.

    (A source that reads files checks its own path, since only it can say which layout it expected.)
    """
    DATASETS.get(name)
    if path is not None and not _SPECS[name].reads_files:
        raise error(f"{where}: {name} is rendered, it reads no files: give no path (got {path!r})")


def load_dataset(name: str, path: str | None = None, **options: Any) -> FaceSet:
    """Load the data source registered as ``name`` (``synthfer``, ``rafdb``, ``fer2013``, ``folder``).

    ``options`` are checked by the source's Params and the rest take their defaults (ConfigError naming the
    option, the value and what is allowed)."""
    check_path(name, path)
    resolved = resolve_options(name, options)
    faces = DATASETS.get(name)(path, **{key: resolved[key] for key in _SPECS[name].options})
    return in_channel_order(faces, resolved["channel_order"])


def in_channel_order(faces: FaceSet, order: str) -> FaceSet:
    """``faces`` with its RGB images in ``order`` (``bgr``: the channel axis reversed, in a new tensor)."""
    if order == "rgb":
        return faces
    return dataclasses.replace(faces, images=faces.images.flip(1))
