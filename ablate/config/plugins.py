"""Plugins: modules a config names under ``plugins:`` to register more components, policies, models or data
sources without editing ablate. Each entry is an importable module name (``mylab.components``) or the path of a
Python file (``plugins/double_ce.py``, relative to the working directory, as data paths are). They are imported
before the config is resolved, in the driver and again in every Ray trial, so a study file can enable what they
register.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ablate.errors import ConfigError

_loaded: dict[str, str] = {}  # entry as resolved -> module name
_refused = False  # within refusing_plugins(): any entry is an error


@contextlib.contextmanager
def refusing_plugins(refuse: bool = True) -> Iterator[None]:
    """Within the block (when ``refuse``), a config that names plugins is a ConfigError: --no-plugins."""
    global _refused
    before, _refused = _refused, _refused or refuse
    try:
        yield
    finally:
        _refused = before


def resolve_plugins(given: Sequence[str] | None, base_dir: Path | None) -> list[str]:
    """The entries with file paths made absolute; ConfigError for anything but a list of strings."""
    if given is None:
        return []
    if isinstance(given, str) or not isinstance(given, Sequence) or not all(isinstance(g, str) and g for g in given):
        raise ConfigError(f"plugins: expected a list of module names or .py files, got {given!r}")
    return [_absolute(entry, base_dir) if _is_file(entry) else entry for entry in given]


def load_plugins(entries: Sequence[str]) -> None:
    """Import each entry once per process; an entry that fails to import is a ConfigError naming it."""
    if entries and _refused:
        raise ConfigError(
            f"plugins: {', '.join(map(repr, entries))} would be imported, and --no-plugins refuses plugins (a file "
            "that names them runs their Python code); read them, then drop --no-plugins if you trust them"
        )
    for entry in entries:
        if entry in _loaded:
            continue
        try:
            _loaded[entry] = _import_file(entry) if _is_file(entry) else importlib.import_module(entry).__name__
        except ConfigError:
            raise
        except Exception as err:  # any failure of a user's module is reported as theirs
            raise ConfigError(f"plugins: {entry!r} failed to import: {type(err).__name__}: {err}") from None


def _is_file(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry


def _absolute(entry: str, base_dir: Path | None) -> str:
    path = Path(entry).expanduser()
    return str(path if path.is_absolute() else (base_dir or Path.cwd()) / path)


def _import_file(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"plugins: no such file {path!r}; give a module name or the path of a .py file")
    # A name unique to the file, so two plugins called components.py do not collide.
    name = f"ablate_plugin_{file.stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"plugins: {path!r} cannot be imported as a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return name
