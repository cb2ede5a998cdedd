"""Switchable components: one module each, registered by the name a config uses. Every module of this package
is imported (and so registered) here, so adding a component is adding one file."""

from ablate.components.base import (
    COMPONENTS,
    Component,
    Context,
    EpochView,
    Ratio,
    Role,
    StepBatch,
    build_components,
    check_enabled,
    check_weak_views,
    register_component,
    step_order,
)
from ablate.registry import import_submodules

import_submodules(__name__)

__all__ = [
    "COMPONENTS",
    "Component",
    "Context",
    "EpochView",
    "Ratio",
    "Role",
    "StepBatch",
    "build_components",
    "check_enabled",
    "check_weak_views",
    "register_component",
    "step_order",
]
