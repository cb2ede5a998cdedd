"""Switchable components: one module each, registered by the name a config uses."""

from ablate.components import contrastive, ema, negative, pseudo_label, supervised, threshold  # noqa: F401  (registers them)
from ablate.components.base import COMPONENTS, ORDER, Component, Context, StepBatch, register_component

__all__ = ["COMPONENTS", "ORDER", "Component", "Context", "StepBatch", "register_component"]
