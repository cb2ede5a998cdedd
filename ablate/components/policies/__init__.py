"""Threshold policies, one module each; every module of this package is imported (and so registered) here."""

from ablate.components.policies.base import POLICIES, Policy, hard_mask, register_policy
from ablate.registry import import_submodules

import_submodules(__name__)

__all__ = ["POLICIES", "Policy", "hard_mask", "register_policy"]
