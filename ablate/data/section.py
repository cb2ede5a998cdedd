"""The ``data`` section of a config: which source, its options, where it lies, and how its training set is split.

``resolve_data_section`` is the one function a config goes through: the source's name is known, its options are
resolved through the source's own Params with every default filled (so ``data.options.seed``, ``image_size`` and
``scale`` reach the results tables), the split keys follow ``split.py``'s rules, and the path is made absolute
before any Ray trial changes its working directory. Every error names the key path, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ablate.config.params import Param
from ablate.data.base import FaceSet
from ablate.data.registry import DATASETS, check_path, load_dataset, resolve_documented, resolve_options
from ablate.data.split import SPLIT_PARAMS, check_split, resolve_split
from ablate.errors import ConfigError

# The keys that name the source; the split keys (SPLIT_PARAMS) say how its training set is divided.
SOURCE_PARAMS = {
    "name": Param("synthfer", "the data source: synthfer (rendered, no download), rafdb, fer2013 or folder"),
    "path": Param(
        None, "where a real source lies, absolute or relative to the working directory (synthfer: none)", kind=str
    ),
    "options": Param({}, "the source's own options (data.options.*, per source), every default filled", kind=dict),
}
DATA_PARAMS = {**SOURCE_PARAMS, **SPLIT_PARAMS}


def resolve_data_section(given: Mapping[str, Any] | None, base_dir: Path | None = None) -> dict[str, Any]:
    """The whole ``data`` section checked and filled: keys in ``DATA_PARAMS`` order, options in the source's.

    Relative paths are taken against ``base_dir`` (default: the working directory). Raises ConfigError naming the
    key path (``data.options.scale``), the value and what is allowed.
    """
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise ConfigError(f"data: expected a mapping with keys {', '.join(DATA_PARAMS)}, got {given!r}")
    unknown = sorted(set(given) - set(DATA_PARAMS))
    if unknown:
        raise ConfigError(f"data: unknown key {unknown[0]!r}; allowed: {', '.join(DATA_PARAMS)}")
    source = resolve_documented("data", given, SOURCE_PARAMS)
    if source["name"] not in DATASETS:
        raise ConfigError(f"data.name: unknown dataset {source['name']!r}; allowed: {', '.join(DATASETS.names())}")
    check_path(source["name"], source["path"], ConfigError, where="data.path")
    source["options"] = resolve_options(source["name"], source["options"], where="data.options")
    source["path"] = absolute(source["path"], base_dir)
    split = resolve_split({k: v for k, v in given.items() if k in SPLIT_PARAMS}, where="data")
    return {**source, **split}


def absolute(path: str | None, base_dir: Path | None = None) -> str | None:
    """``path`` made absolute against ``base_dir`` (or the working directory), ``~`` expanded; None stays None."""
    if path is None:
        return None
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base_dir or Path.cwd()) / p)


def source_label(data_section: Mapping[str, Any]) -> str:
    """How errors name the data of a section: its path, or for a rendered source its name and options."""
    if data_section.get("path") is not None:
        return str(data_section["path"])
    options = ", ".join(f"{k}={v!r}" for k, v in (data_section.get("options") or {}).items())
    return f"{data_section['name']}({options})"


def load_data(data_section: Mapping[str, Any]) -> FaceSet:
    """Load the data a resolved ``data`` section names, and refuse it (DataError naming the path, the class and
    the numbers) if it cannot train under the section's split."""
    faces = load_dataset(data_section["name"], data_section["path"], **data_section["options"])
    check_split(faces, data_section, source_label(data_section))
    return faces
