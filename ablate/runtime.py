"""Where and how a run computes: the device, mixed precision, memory format, and the seeding of every RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ablate.errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.device: 'cuda' was asked for but this machine has no CUDA GPU; allowed here: 'auto', 'cpu'"
        )
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Runtime:
    """The trainer section's device settings, with ``auto`` decided: bf16 autocast, channels-last and one
    concatenated forward on CUDA; fp32, contiguous and one forward per view on a CPU (where one big batch was
    measured 2x slower than four smaller ones)."""

    device: torch.device
    autocast: bool
    channels_last: bool
    concat: bool

    @classmethod
    def from_trainer_section(cls, tc: dict[str, Any]) -> Runtime:
        device = pick_device(tc["device"])
        cuda = device.type == "cuda"
        return cls(
            device=device,
            autocast=tc["precision"] == "bf16" or (tc["precision"] == "auto" and cuda),
            channels_last=tc["channels_last"] is True or (tc["channels_last"] == "auto" and cuda),
            concat=tc["forward"] == "concat" or (tc["forward"] == "auto" and cuda),
        )

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def forward(self, model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, feature) in fp32, whatever precision the model ran in."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits, feature = model(x)
        return logits.float(), feature.float()
