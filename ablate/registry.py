"""Name-to-object registries, filled by decorators (as timm's ``@register_model``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ablate.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps the names a config file uses to the objects that implement them.

    A registered class is given its name (``cls.name``), so a name is written once, in the decorator.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]
            self._items[name] = obj
            return obj

        return add

    def forget(self, name: str) -> None:
        """Unregister ``name`` (a plugin's test cleans up after itself); unknown names are an error."""
        if name not in self._items:
            raise KeyError(f"{self.kind} {name!r} is not registered")
        del self._items[name]

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


def import_submodules(package: str) -> None:
    """Import every module of ``package``, so that adding a registered class is adding one file."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{info.name}")
