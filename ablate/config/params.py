"""The hyper-parameter mechanism: a Param declared once beside the code that uses it, its validation, and the
small YAML and dotted-key helpers every config file goes through.

A module declares its hyper-parameters as ``{name: Param(default, ...)}``; a config (a preset or a study's
base) may override any of them and nothing else. Every error names the key path, the value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its default, and what values are allowed.

    ``choices`` lists the allowed values; ``low``/``high`` bound a number (inclusive unless ``open_low`` /
    ``open_high``); ``nullable`` lets the value be None. The type follows the default (ints pass for floats).
    """

    default: Any
    doc: str = ""
    choices: Sequence[Any] | None = None
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    nullable: bool = False
    kind: type | None = None  # the type, when the default (None, say) does not tell it
    # (sibling, value or tuple of values): the parameter matters only when the sibling has (one of) that value
    when: tuple[str, Any] | None = None

    def check(self, key: str, value: Any) -> Any:
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise ConfigError(f"{key}: null is not allowed; {self.allowed()}")
        kind = self.kind or type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        stray_bool = kind is not bool and isinstance(value, bool) and not any(c is value for c in self.choices or ())
        if (kind is not type(None) and not isinstance(value, kind)) or stray_bool:
            raise ConfigError(f"{key}: {value!r} is a {type(value).__name__}; {self.allowed()}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{key}: {value!r} is not allowed; {self.allowed()}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: {value!r} is not a finite number; {self.allowed()}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
            too_high = self.high is not None and (value >= self.high if self.open_high else value > self.high)
            if too_low or too_high:
                raise ConfigError(f"{key}: {value!r} is out of range; {self.allowed()}")
        return value

    def acts(self, siblings: Mapping[str, Any]) -> bool:
        """Whether the parameter matters, given the values of its siblings (always, without ``when``)."""
        if self.when is None:
            return True
        key, value = self.when
        return siblings.get(key) in (value if isinstance(value, tuple) else (value,))

    def replace(self, **changes: Any) -> Param:
        return dataclasses.replace(self, **changes)

    def allowed(self) -> str:
        if self.choices is not None:
            return "allowed: " + ", ".join(repr(c) for c in self.choices)
        kind = (self.kind or type(self.default)).__name__
        null = " or null" if self.nullable or self.default is None else ""
        if self.low is None and self.high is None:
            return f"allowed: a {kind}{null}"
        lo = "(-inf" if self.low is None else ("(" if self.open_low else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.open_high else "]")
        return f"allowed: a {kind} in {lo}, {hi}{null}"


def resolve_section(path: str, given: Mapping[str, Any] | None, params: Mapping[str, Param]) -> dict[str, Any]:
    """Defaults overridden by ``given``; unknown keys and bad values raise a ConfigError naming ``path.key``."""
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {given!r}")
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(params))}")
    return {name: param.check(f"{path}.{name}", given.get(name, param.default)) for name, param in params.items()}


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A YAML mapping gives one key twice (PyYAML would keep the last value silently)."""

    def __init__(self, key: Any, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(problem=f"the key {key!r} is given twice (lines {first_line} and {line})")

    def explain(self, where: str) -> str:
        return (
            f"{where}, line {self.line}: the key {self.key!r} is given twice (first on line {self.first_line}); "
            "YAML would keep only the last value: give each key once"
        )


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (a merge ``<<:`` may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in first:
                        raise DuplicateKeyError(key, line, first[key])
                    first[key] = line
                except TypeError:  # an unhashable key: SafeLoader refuses it below
                    pass
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """yaml.safe_load, refusing a key given twice (DuplicateKeyError)."""
    return yaml.load(text, Loader=UniqueKeyLoader)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file (and, for a key given twice, the line and the key)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    try:
        data = parse_yaml(file.read_text())
    except DuplicateKeyError as err:
        raise ConfigError(err.explain(str(file))) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_assignment(text: str) -> tuple[str, Any]:
    """``a.b.c=value`` -> ("a.b.c", value), the value read as YAML (so 0.5, true, null, [1, 2] work)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. components.negative.rho=0.8")
    try:
        value = parse_yaml(raw)
    except DuplicateKeyError as err:
        raise ConfigError(f"--set {text!r}: the key {err.key!r} is given twice; give each key once") from None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config[a][b][c] = value`` for key ``a.b.c``, creating the mappings on the way."""
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part!r} holds {child!r}, not a mapping, so it has no key {parts[-1]!r}")
        node = child
    node[parts[-1]] = value


def get_dotted(config: Mapping[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def apply_overrides(config: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """A copy of ``config`` with each ``key=value`` of ``--set`` applied."""
    config = copy.deepcopy(config)
    for text in assignments:
        set_dotted(config, *parse_assignment(text))
    return config


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: the column names of the results tables."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
