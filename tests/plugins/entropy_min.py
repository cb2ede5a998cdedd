"""A component written outside ablate, as a user would: entropy minimisation (Grandvalet & Bengio, NeurIPS 2004)
on the strong view of the unlabeled batch. A study enables it with ``plugins: [tests/plugins/entropy_min.py]``
and ``components: {entropy_min: {enabled: true}}``; nothing in ablate names it."""

import torch

from ablate.components import Component, StepBatch, register_component
from ablate.config.params import Param


@register_component("entropy_min")
class EntropyMin(Component):
    default_weight = 0.1
    grad_views = frozenset({"strong"})
    params = {"temperature": Param(1.0, "softmax temperature of the entropy", low=0.0, open_low=True)}
    reports = ("entropy",)

    def loss(self, batch: StepBatch):
        log_p = torch.log_softmax(batch.logits_s / self.hp["temperature"], dim=1)
        entropy = -(log_p.exp() * log_p).sum(dim=1).mean()
        return entropy, {"entropy": entropy.detach()}
