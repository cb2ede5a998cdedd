"""Step metrics summed on the device over an epoch and brought to the host once, at its end.

On a GPU every ``.item()`` in a step stalls the pipeline until the device catches up; a meter that only adds
tensors lets the steps of an epoch run ahead, and one ``tolist()`` at the end reads them all.
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.components import Ratio


class EpochMeter:
    """Means of tensor metrics over the steps that reported them, and ratios of summed Ratios."""

    def __init__(self) -> None:
        self._means: dict[str, list[Any]] = {}  # name -> [sum, count]
        self._ratios: dict[str, list[Any]] = {}  # name -> [numerator sum, denominator sum]

    def add(self, metrics: dict[str, Any]) -> None:
        for key, value in metrics.items():
            if isinstance(value, Ratio):
                entry = self._ratios.setdefault(key, [0.0, 0.0])
                entry[0] = entry[0] + value.num.detach().float()
                entry[1] = entry[1] + value.den.detach().float()
            else:
                entry = self._means.setdefault(key, [0.0, 0])
                entry[0] = entry[0] + (value.detach().float() if isinstance(value, torch.Tensor) else float(value))
                entry[1] += 1

    def values(self) -> dict[str, float]:
        """Every metric's value over the epoch (a ratio whose denominator stayed 0 is left out); one host sync."""
        names = [*self._means, *(f"{k}/num" for k in self._ratios), *(f"{k}/den" for k in self._ratios)]
        numbers = [s for s, _ in self._means.values()]
        numbers += [n for n, _ in self._ratios.values()] + [d for _, d in self._ratios.values()]
        if not numbers:
            return {}
        host = torch.stack([torch.as_tensor(x, dtype=torch.float32, device=_device(numbers)) for x in numbers])
        read = dict(zip(names, host.tolist()))
        out = {key: read[key] / count for key, (_, count) in self._means.items()}
        for key in self._ratios:
            if read[f"{key}/den"] > 0:
                out[key] = read[f"{key}/num"] / read[f"{key}/den"]
        return out


def _device(values: list[Any]) -> torch.device:
    return next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
