"""A training step never waits for the device: no value is read back to the host during ``Trainer.step``.

On a GPU each read (``.item()``, ``.tolist()``, ``bool(tensor)``, a shape that depends on data) blocks the host
until the device has caught up, so the next step cannot be queued while this one runs. Step metrics stay on the
device and are read once per epoch. A ``TorchFunctionMode`` sees every torch call a step makes and records each
call that needs the device's data on the host. On a CPU machine nothing actually waits, but the calls are still
seen; the CUDA variant runs where a GPU is. The last test is the negative control.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from ablate.config.run import load_config
from ablate.data import load_dataset
from ablate.training.trainer import Trainer

# Calls that read a tensor's data on the host, or whose output shape depends on the data.
READS = {
    torch.Tensor.item: "item",
    torch.Tensor.tolist: "tolist",
    torch.Tensor.cpu: "cpu",
    torch.Tensor.numpy: "numpy",
    torch.Tensor.__bool__: "bool",
    torch.Tensor.__int__: "int",
    torch.Tensor.__float__: "float",
    torch.Tensor.__index__: "index",
    torch.Tensor.nonzero: "nonzero",
    torch.nonzero: "nonzero",
    torch.Tensor.masked_select: "masked_select",
    torch.masked_select: "masked_select",
    torch.unique: "unique",
    torch.Tensor.unique: "unique",
}


class HostReads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in READS:
            self.reads.append(READS[func])
        elif func is torch.Tensor.__getitem__ and _boolean_index(args[1]):
            self.reads.append("boolean-mask indexing")
        elif func is torch.Tensor.to and _to_cpu(args, kwargs):
            self.reads.append("to cpu")
        return func(*args, **kwargs)


def _boolean_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


def _to_cpu(args, kwargs) -> bool:
    tensor, target = args[0], kwargs.get("device", args[1] if len(args) > 1 else None)
    return tensor.device.type != "cpu" and str(target).startswith("cpu")


TINY = [
    "data.options={scale: 0.05, image_size: 32}",
    "data.val_per_class=2",  # scale 0.05 has 14 fear faces: 10 labeled + 2 validation
    "trainer.epochs=2",
    "trainer.steps_per_epoch=3",
    "trainer.batch_size=8",
    "trainer.mu=2",
    "trainer.eval_unlabeled=32",
]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"))]
# Every component in play: the three presets of the papers, Ada-CM's statistics from the teacher, and the
# FlexMatch, FreeMatch (with its fairness loss) and SoftMatch policies beside LION's and Ada-CM's subset-II losses.
CONFIGS = {
    "lion": ("presets/lion.yaml", []),
    "adacm": ("presets/adacm.yaml", ["components.threshold.stats=labeled_eval_ema"]),
    "fixmatch_teacher": ("presets/fixmatch.yaml", ["components.ema.teacher_pseudo_labels=true"]),
    "flexmatch_lion": ("presets/lion.yaml", ["components.threshold.policy=flexmatch"]),
    "freematch_fairness_lion": (
        "presets/lion.yaml",
        ["components.threshold.policy=freematch", "components.fairness.enabled=true"],
    ),
    "softmatch_adacm": ("presets/adacm.yaml", ["components.threshold.policy=softmatch"]),
}


@pytest.fixture(scope="module")
def faces():
    return load_dataset("synthfer", scale=0.05, image_size=32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("forward", ["separate", "concat"])
def test_a_step_reads_nothing_back_from_the_device(faces, device, config, forward):
    path, extra = CONFIGS[config]
    overrides = [*TINY, *extra, f"trainer.device={device}", f"trainer.forward={forward}"]
    trainer = Trainer(load_config(path, overrides), faces)
    trainer.train_epoch()  # the second epoch's steps run with every component's state warmed up
    with HostReads() as seen:
        for i in range(3):
            trainer.step(i)
    assert seen.reads == [], f"a step read the device's data on the host: {sorted(set(seen.reads))}"


def test_the_check_sees_a_metric_read_every_step(faces):
    """The negative control: the step as it was, reading its loss with .item() each time, fails the check."""
    trainer = Trainer(load_config("presets/lion.yaml", TINY), faces)
    original = trainer.step

    def reading_step(i):
        metrics = original(i)
        return {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}

    trainer.step = reading_step
    with HostReads() as seen:
        for i in range(2):
            trainer.step(i)
    assert seen.reads.count("item") >= 2
