"""``threshold``: the policy component. It weighs each unlabeled sample in [0, 1] by the threshold policy its
config names (``policy``: ``fixed`` is FixMatch's, ``adaptive`` Ada-CM's, and every other module of
``ablate/components/policies``); the pseudo-label, contrastive and negative losses read that one weight, whatever
the policy. Each policy's parameters are declared in its module and act only when it is the chosen one.
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.components.base import Component, Ratio, Role, StepBatch, register_component
from ablate.components.policies import POLICIES
from ablate.config.params import Param


def policy_params() -> dict[str, Param]:
    """``policy`` and the parameters of every registered policy, each acting only under its policies."""
    params = {
        "policy": Param(
            "adaptive", "the threshold policy: " + ", ".join(POLICIES.names()), choices=tuple(POLICIES.names())
        )
    }
    users: dict[str, list[str]] = {}
    for name in POLICIES.names():
        for key, param in POLICIES.get(name).params.items():
            if key in params and key not in users:
                raise ValueError(f"threshold policy {name!r}: parameter {key!r} clashes with the component's own")
            if key in users and params[key].default != param.default:
                raise ValueError(f"threshold policies {users[key]} and {name!r} give {key!r} different defaults")
            params.setdefault(key, param)
            users.setdefault(key, []).append(name)
    for key, names in users.items():
        own = params[key]
        # A parameter that depends on a sibling of its own policy keeps that condition; one shared by several
        # policies acts under each of them.
        if own.when is None:
            params[key] = own.replace(when=("policy", tuple(names) if len(names) > 1 else names[0]))
    return params


@register_component("threshold")
class Threshold(Component):
    role = Role.POLICY
    reports = ("threshold_<class>", "mask_rate", "pseudo_acc")

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        self.policy = POLICIES.get(hp["policy"])(hp, ctx)

    @classmethod
    def report_names(cls) -> tuple[str, ...]:
        return cls.reports + tuple(r for name in POLICIES.names() for r in POLICIES.get(name).reports)

    @classmethod
    def all_params(cls) -> dict[str, Param]:
        return {"enabled": Param(False, "switch the component on"), **policy_params()}

    def weigh(self, batch: StepBatch):
        weight = self.policy.step_weights(batch)
        metrics: dict[str, Any] = {"mask_rate": weight.mean()}
        if batch.u_true is not None:
            right = (batch.pseudo_labels == batch.u_true).float()
            metrics["pseudo_acc"] = Ratio((right * weight).sum(), weight.sum())
        return weight, metrics

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        return self.policy.weights(probs)

    def after_step(self, batch: StepBatch, model) -> None:
        self.policy.after_step(batch)

    def end_epoch(self, epoch, view):
        metrics = self.policy.end_epoch(epoch, view)
        thresholds = self.policy.thresholds()
        if thresholds is not None:
            metrics.update({f"threshold_{c}": t for c, t in enumerate(thresholds.tolist())})
        return metrics

    def state_dict(self):
        return {"policy": self.policy.state_dict()}

    def load_state_dict(self, state):
        self.policy.load_state_dict(state["policy"])
