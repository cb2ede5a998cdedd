"""The data set is moved to the trial's device once; steps and evaluation draw batches by index there, with no
per-step host-to-device copy of images (docs/architecture.md, "Where the data lives").

A ``TorchFunctionMode`` sees every torch call a step makes and records each copy of a uint8 image tensor
(>= 4 dims) to a device: ``Tensor.to`` with a device (or a tensor to match), ``.cuda()``, ``.pin_memory()``,
``torch.as_tensor`` / ``torch.tensor`` / ``torch.asarray`` with a device, and ``copy_`` across devices. On a CPU
machine the device is the CPU, where such a copy changes nothing, but the call is still seen. The last tests are
the negative control: a stand-in for the trainer's image tensor that fetches each batch from the host, as a
DataLoader pipeline would, must make the check fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from ablate.config.run import load_config
from ablate.data import load_dataset
from ablate.training.trainer import Trainer

TINY = [
    "data.options={scale: 0.05, image_size: 32}",
    "data.val_per_class=2",  # scale 0.05 has 14 fear faces: 10 labeled + 2 validation
    "trainer.epochs=1",
    "trainer.steps_per_epoch=4",
    "trainer.batch_size=8",
    "trainer.mu=2",
    "trainer.eval_unlabeled=64",
]

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"))]


@pytest.fixture(scope="module")
def faces():
    return load_dataset("synthfer", scale=0.05, image_size=32)


def lion_trainer(faces, device: str, *extra: str) -> Trainer:
    return Trainer(load_config("presets/lion.yaml", TINY + [f"trainer.device={device}", *extra]), faces)


def is_images(x) -> bool:
    """A uint8 tensor or array with at least 4 dims: a batch (or the whole set) of images."""
    return isinstance(x, (torch.Tensor, np.ndarray)) and x.dtype in (torch.uint8, np.uint8) and x.ndim >= 4


def _names_a_device(value) -> bool:
    return isinstance(value, (torch.device, str, torch.Tensor)) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def image_copy(func, args, kwargs) -> str | None:
    """A description of the call if it copies uint8 images to a device, else None."""
    if func is torch.Tensor.to:
        if is_images(args[0]) and (kwargs.get("device") is not None or any(_names_a_device(a) for a in args[1:])):
            return f"Tensor.to {tuple(args[0].shape)}"
    elif func in (torch.Tensor.cuda, torch.Tensor.pin_memory):
        if is_images(args[0]):
            return f"Tensor.{func.__name__} {tuple(args[0].shape)}"
    elif func in (torch.as_tensor, torch.tensor, torch.asarray):
        source = args[0] if args else kwargs.get("data", kwargs.get("obj"))
        if is_images(source) and kwargs.get("device") is not None:
            return f"torch.{func.__name__}(device=...) {tuple(source.shape)}"
    elif func is torch.Tensor.copy_:
        destination, source = args[0], args[1]
        if is_images(source) and isinstance(source, torch.Tensor) and source.device != destination.device:
            return f"Tensor.copy_ {source.device} -> {destination.device} {tuple(source.shape)}"
    return None


DRAWS = (torch.Tensor.__getitem__, torch.Tensor.index_select, torch.index_select)


class ImageTraffic(TorchFunctionMode):
    """Records copies of images to a device, and the uint8 image tensors that batches are indexed from."""

    def __init__(self):
        super().__init__()
        self.copies: list[str] = []
        self.draw_sources: list[tuple[int, tuple[int, ...]]] = []  # (data_ptr, shape)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        copy = image_copy(func, args, kwargs)
        if copy is not None:
            self.copies.append(copy)
        if func in DRAWS and args and isinstance(args[0], torch.Tensor) and is_images(args[0]):
            self.draw_sources.append((args[0].data_ptr(), tuple(args[0].shape)))
        return func(*args, **kwargs)


def assert_no_image_copies(traffic: ImageTraffic) -> None:
    assert not traffic.copies, f"images were copied to the device during steps: {traffic.copies[:5]}"


def run_steps_and_evaluate(trainer: Trainer, steps: int = 3) -> ImageTraffic:
    with ImageTraffic() as traffic:
        for i in range(steps):
            trainer.step(i)
        trainer.evaluate()
    return traffic


# ---- the trainer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_the_data_set_moves_to_the_device_once_when_the_trainer_is_built(faces, device):
    with ImageTraffic() as traffic:
        trainer = lion_trainer(faces, device)
    assert traffic.copies == [f"Tensor.to {tuple(faces.images.shape)}"]
    assert trainer.images.device.type == trainer.device.type == device
    assert trainer.images.shape == faces.images.shape and trainer.images.dtype == torch.uint8


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("forward", ["concat", "separate"])
def test_steps_and_evaluation_copy_no_images_to_the_device(faces, device, forward):
    trainer = lion_trainer(faces, device, f"trainer.forward={forward}")
    images, pointer = trainer.images, trainer.images.data_ptr()
    traffic = run_steps_and_evaluate(trainer)
    assert_no_image_copies(traffic)
    # Batches were drawn by index, and only ever from the resident tensor, which is still the same storage.
    full = [ptr for ptr, shape in traffic.draw_sources if shape == tuple(images.shape)]
    assert len(full) >= 3 * 2, "expected a labeled and an unlabeled draw per step from trainer.images"
    assert set(full) == {pointer}
    assert trainer.images is images and trainer.images.data_ptr() == pointer
    assert trainer.images.device.type == device


def test_a_whole_epoch_keeps_the_same_resident_images(faces):
    trainer = lion_trainer(faces, "cpu")
    pointer = trainer.images.data_ptr()
    with ImageTraffic() as traffic:
        trainer.train_epoch()  # steps, component epoch hooks, evaluation
    assert_no_image_copies(traffic)
    assert trainer.images.data_ptr() == pointer


# ---- the negative control: a trainer that fetched each batch from the host must fail the check ------------


class HostImages:
    """Stands in for ``trainer.images``: each batch is indexed on the host, then copied to the device."""

    def __init__(self, host: torch.Tensor, device: torch.device, style: str):
        self.host, self.device, self.style = host, device, style
        self.shape, self.dtype = host.shape, host.dtype

    def __len__(self) -> int:
        return len(self.host)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        index = index.cpu()
        if self.style == "numpy":  # images kept as a numpy array, as FixMatch-pytorch keeps CIFAR
            return torch.as_tensor(self.host.numpy()[index.numpy()], device=self.device)
        batch = self.host[index]
        if self.style == "to":
            return batch.to(self.device)
        if self.style == "to_kwargs":
            return batch.to(device=self.device, non_blocking=True)
        if self.style == "cuda":
            return batch.pin_memory().cuda(non_blocking=True)
        raise ValueError(self.style)


STYLES = [
    "to",
    "to_kwargs",
    "numpy",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")),
]


@pytest.mark.parametrize("style", STYLES)
def test_the_check_fails_when_each_batch_comes_from_the_host(faces, style):
    device = "cuda" if style == "cuda" else "cpu"
    trainer = lion_trainer(faces, device)
    trainer.images = HostImages(faces.images, trainer.device, style)
    traffic = run_steps_and_evaluate(trainer, steps=2)
    assert len(traffic.copies) >= 2 * 2  # a labeled and an unlabeled batch per step, at least
    with pytest.raises(AssertionError, match="images were copied to the device during steps"):
        assert_no_image_copies(traffic)


def test_the_check_fails_when_the_data_set_is_uploaded_again_each_step(faces):
    trainer = lion_trainer(faces, "cpu")
    original = trainer.step

    def step(i):
        trainer.images = faces.images.to(trainer.device)  # a trainer that re-sent its data every step
        return original(i)

    trainer.step = step
    with pytest.raises(AssertionError, match="images were copied"):
        assert_no_image_copies(run_steps_and_evaluate(trainer, steps=2))
