"""The reference training pipeline, built like the published code (Ada-CM, FixMatch-pytorch), for benchmarks.

What it does per step, as those repositories do:

- images are kept as encoded files (here: JPEG bytes in memory, quality 95, at the benchmark's side, so no
  disk I/O is timed) and decoded with PIL in ``torch.utils.data.DataLoader`` worker processes;
- torchvision transforms per image: weak = RandomHorizontalFlip + RandomCrop(padding, reflect); strong = weak +
  RandAugment (2 operations) + ToTensor + Normalize + cutout (RandomErasing); labeled images get the weak view,
  unlabeled images two weak views and a strong one (Ada-CM's two weak views, FixMatch's strong one);
- one DataLoader of B labeled images and one of mu*B unlabeled images, each with ``workers`` processes
  (FixMatch-pytorch's ``num_workers`` for both), pinned memory on CUDA, and a host-to-device copy per batch;
- four separate forward passes (labeled, weak 1, weak 2, strong), fp32, contiguous (NCHW);
- loss: cross-entropy on the labeled batch + cross-entropy of the strong view against the weak views'
  argmax on the samples whose mean weak confidence reaches a threshold, averaged over the unlabeled batch;
  Adam, and ``loss.item()`` each step, as the reference code logs it.

Padding follows ablate's default (Ada-CM's 8 px at 224, scaled with the side), as does the normalisation.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torchvision import transforms

from ablate.augment import IMAGENET_MEAN, IMAGENET_STD
from ablate.models import build_model


def encode_jpeg(images: torch.Tensor, quality: int = 95) -> list[bytes]:
    """uint8 [N, 3, H, W] -> one JPEG file's bytes per image."""
    out = []
    for img in images.permute(0, 2, 3, 1).contiguous().numpy():
        buffer = io.BytesIO()
        Image.fromarray(img).save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


def decode(blob: bytes) -> Image.Image:
    return Image.open(io.BytesIO(blob)).convert("RGB")


def weak_transform(side: int, pad: int) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.RandomCrop(side, padding=pad, padding_mode="reflect"),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def strong_transform(side: int, pad: int) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.RandomHorizontalFlip(),
            transforms.RandomCrop(side, padding=pad, padding_mode="reflect"),
            transforms.RandAugment(num_ops=2),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            transforms.RandomErasing(p=1.0, scale=(0.0025, 0.25), ratio=(1.0, 1.0), value=0),  # cutout
        ]
    )


class LabeledFiles(Dataset):
    """Encoded images and labels; each item is (weak view, label)."""

    def __init__(self, blobs: list[bytes], labels: list[int], weak):
        self.blobs, self.labels, self.weak = blobs, labels, weak

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int):
        return self.weak(decode(self.blobs[i])), self.labels[i]


class UnlabeledFiles(Dataset):
    """Encoded images; each item is (weak view, weak view, strong view), as FixMatch's TransformFixMatch."""

    def __init__(self, blobs: list[bytes], weak, strong):
        self.blobs, self.weak, self.strong = blobs, weak, strong

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int):
        img = decode(self.blobs[i])
        return self.weak(img), self.weak(img), self.strong(img)


class ReferencePipeline:
    """Data loaders, model and optimiser of the reference pipeline; ``step()`` runs one optimiser step."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        labeled: torch.Tensor,
        unlabeled: torch.Tensor,
        *,
        model: Mapping[str, Any],
        num_classes: int,
        batch_size: int,
        mu: int,
        workers: int,
        device: torch.device,
        total_steps: int,
        pad: int,
        lr: float = 5e-4,
        threshold: float = 0.95,
        seed: int = 0,
    ):
        torch.manual_seed(seed)
        side = images.shape[-1]
        self.device = device
        self.batch_size, self.mu, self.threshold = batch_size, mu, threshold
        weak, strong = weak_transform(side, pad), strong_transform(side, pad)
        labeled_set = LabeledFiles(encode_jpeg(images[labeled]), labels[labeled].tolist(), weak)
        unlabeled_set = UnlabeledFiles(encode_jpeg(images[unlabeled]), weak, strong)
        cuda = device.type == "cuda"

        def loader(dataset: Dataset, batch: int) -> DataLoader:
            # Sampling with replacement for as many batches as the run takes, so no epoch ends (and no worker
            # restarts) inside the timed steps.
            sampler = RandomSampler(dataset, replacement=True, num_samples=batch * total_steps)
            return DataLoader(
                dataset,
                batch_size=batch,
                sampler=sampler,
                num_workers=workers,
                pin_memory=cuda,
                drop_last=True,
                persistent_workers=workers > 0,
            )

        self.labeled_loader = loader(labeled_set, batch_size)
        self.unlabeled_loader = loader(unlabeled_set, batch_size * mu)
        self._labeled: Iterator | None = None
        self._unlabeled: Iterator | None = None
        self.model = build_model(model, num_classes).to(device)  # a resolved model section, as the Trainer's
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)

    def _next(self) -> tuple[torch.Tensor, ...]:
        if self._labeled is None:
            self._labeled, self._unlabeled = iter(self.labeled_loader), iter(self.unlabeled_loader)
        x_l, y_l = next(self._labeled)
        w1, w2, s = next(self._unlabeled)
        return tuple(t.to(self.device, non_blocking=True) for t in (x_l, y_l, w1, w2, s))

    def step(self) -> float:
        self.model.train()
        x_l, y_l, w1, w2, s = self._next()
        logits_l, _ = self.model(x_l)  # four separate forward passes, fp32
        logits_w1, _ = self.model(w1)
        logits_w2, _ = self.model(w2)
        logits_s, _ = self.model(s)
        probs = ((torch.softmax(logits_w1, 1) + torch.softmax(logits_w2, 1)) / 2).detach()
        confidence, pseudo = probs.max(1)
        mask = (confidence >= self.threshold).float()
        loss = F.cross_entropy(logits_l, y_l) + (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def close(self) -> None:
        """Stop the worker processes."""
        self._labeled = self._unlabeled = None
        self.labeled_loader = self.unlabeled_loader = None  # type: ignore[assignment]
