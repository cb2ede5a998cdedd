"""What a run measures after each epoch: classification metrics of the evaluated model on the test and validation
splits, and the policy's view of held-back unlabeled faces (mask rate, pseudo-label accuracy, and whatever each
component diagnoses there with their hidden labels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ablate.augment import Augmenter
from ablate.components import Component
from ablate.config.metrics import CORRECT, classification_metrics, pack_correct
from ablate.training.runtime import Runtime


@dataclass
class Subsets:
    """Index tensors into the whole data set, on the device."""

    labeled: torch.Tensor
    unlabeled: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor
    unlabeled_probe: torch.Tensor  # positions in ``unlabeled`` scored each epoch


class Evaluator:
    """Predicts and scores subsets of the device-resident images with any model."""

    def __init__(self, images, labels, soft, subsets: Subsets, class_names, augmenter: Augmenter, runtime: Runtime,
                 batch_size: int):  # fmt: skip
        self.images, self.labels, self.soft = images, labels, soft
        self.subsets = subsets
        self.class_names = class_names
        self.augmenter = augmenter
        self.runtime = runtime
        self.batch_size = batch_size

    def predict(self, model: torch.nn.Module, index: torch.Tensor | list[torch.Tensor], augment: str = "none",
                generator: torch.Generator | None = None) -> torch.Tensor | list[torch.Tensor]:  # fmt: skip
        """Softmax probabilities of the images at ``index`` (or at each of a list of indices) in eval mode, plain
        or weakly augmented, from the runtime's inference copy of ``model`` (made once per call)."""
        was_training = model.training
        model.eval()
        try:
            runner = self.runtime.inference_model(model)
            indices = index if isinstance(index, list) else [index]
            probs = [self._probabilities(runner, part, augment, generator) for part in indices]
        finally:
            model.train(was_training)
        return probs if isinstance(index, list) else probs[0]

    def _probabilities(self, runner: torch.nn.Module, index: torch.Tensor, augment: str,
                       generator: torch.Generator | None) -> torch.Tensor:  # fmt: skip
        out = []
        for chunk in index.split(self.batch_size):
            raw = self.images[chunk]
            x = self.augmenter.weak(raw, generator=generator) if augment == "weak" else self.augmenter.normalize(raw)
            logits, _ = self.runtime.infer(runner, x)
            out.append(torch.softmax(logits, dim=1))
        return torch.cat(out) if out else torch.zeros(0, len(self.class_names), device=self.runtime.device)

    def classification(self, model: torch.nn.Module) -> dict[str, Any]:
        s = self.subsets
        test, val = self.predict(model, [s.test, s.validation])
        metrics = classification_metrics(test, self.labels[s.test], self.class_names, "test")
        if len(s.validation):
            labels = self.labels[s.validation]
            metrics.update(classification_metrics(val, labels, self.class_names, "val"))
            # which faces were right, so that the report can resample the validation faces (selection stability)
            metrics[CORRECT] = pack_correct((val.argmax(dim=1) == labels).tolist())
        return metrics

    def unlabeled(self, source: torch.nn.Module, policy: Component, components: list[Component], progress: float,
                  epoch: float) -> dict[str, float]:  # fmt: skip
        """The policy's weights of the held-back unlabeled faces, as ``source`` predicts them (the model that
        gives pseudo-labels), and every component's diagnosis of them."""
        if not len(self.subsets.unlabeled_probe):
            return {}
        index = self.subsets.unlabeled[self.subsets.unlabeled_probe]
        probs = self.predict(source, index)
        true = self.labels[index]
        weight = policy.weights(probs)
        metrics = {"unlabeled_mask_rate": weight.mean().item()}
        if weight.sum() > 0:
            right = (probs.argmax(1) == true).float()
            metrics["unlabeled_pseudo_acc"] = ((right * weight).sum() / weight.sum()).item()
        soft = None if self.soft is None else self.soft[index]
        for component in components:
            found = component.diagnose(probs, weight, true, soft, progress, epoch)
            metrics.update({f"unlabeled_{k}": v for k, v in found.items()})
        return metrics
