"""Is synthfer hard enough for semi-supervised learning to matter? Train the small CPU backbone supervised-only.

(a) on every training label and (b) on the protocol's 100-label split (10 fear + 15 of each other class,
``make_split(labels=100, split_seed=0)``; no validation hold-out), then print both test accuracies. The targets:
(a) well below 100 % (80-92 %), (b) far below (a) (20 points or more lower). If (a) is near 100 % the set has no
ambiguity to learn around; if (b) is near (a), 100 labels already suffice and unlabeled data cannot help.

The loop is deliberately minimal and self-contained: Adam (one-cycle schedule: 5 % warm-up, cosine decay, so
the last step is not a noisy one), cross-entropy, per-channel normalisation with the training set's mean and
std, random horizontal flip, a fixed number of steps.

    .venv/bin/python benchmarks/synthfer_difficulty.py [--steps-full 2000] [--steps-few 300] [--batch 64] ...

Settings used for the numbers in the synthfer docs:
    --image-size 64 --scale 1.0 --steps-full 2000 --steps-few 300 --batch 64 --lr 1e-3 --seed 0 --threads 2
gave (a) 84.9 % and (b) 22.7 % test accuracy (gap 62 points; per-class recall in (a): surprise 95, fear 65,
disgust 79, happiness 94, sadness 80, anger 65, neutral 76). On two idle cores that takes about 4 minutes
(~11 steps/s at 64 px); it took 20 on the busy shared machine it was tuned on. Tuning notes, from the same loop:
(a) rises with more steps (train accuracy was still climbing); the ambiguity ceiling (an MLP on the true expression
parameters) is ~94 %; (b) stays at 19-25 % under any realistic nuisance and rises to ~42 % only with no pose,
occluder, noise, blur or background variation at all -- pose is the largest single factor.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ablate.data import load_dataset
from ablate.data.split import make_split
from ablate.models import build_model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--scale", type=float, default=1.0, help="synthfer's size option (1 = RAF-DB's sizes)")
    parser.add_argument("--steps-full", type=int, default=2000, help="training steps of (a), every label")
    parser.add_argument("--steps-few", type=int, default=300, help="training steps of (b), 100 labels")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the training run")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def normaliser(images: torch.Tensor):
    """Per-channel standardisation with the statistics of ``images`` (uint8 [N, 3, H, W])."""
    x = images.float() / 255
    mean, std = x.mean((0, 2, 3)).view(1, 3, 1, 1), x.std((0, 2, 3)).view(1, 3, 1, 1)
    return lambda batch: (batch.float() / 255 - mean) / std


def train(images, labels, steps: int, args, normalise) -> torch.nn.Module:
    """Supervised-only training from scratch on (images, labels): random batches, random flips."""
    generator = torch.Generator().manual_seed(args.seed)
    model = build_model("small_cnn", 7)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=steps, pct_start=0.05)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(labels), (args.batch,), generator=generator)
        x = normalise(images[idx])
        flip = torch.rand(len(idx), generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        loss = F.cross_entropy(model(x)[0], labels[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if (step + 1) % max(1, steps // 5) == 0:
            print(f"  step {step + 1}/{steps} loss {loss.item():.3f}", flush=True)
    return model


@torch.no_grad()
def accuracy(model, images, labels, normalise) -> tuple[float, list[float]]:
    """Test accuracy and per-class recall, in %."""
    model.eval()
    pred = torch.cat([model(normalise(images[i : i + 256]))[0].argmax(1) for i in range(0, len(images), 256)])
    per_class = [100 * (pred[labels == k] == k).float().mean().item() for k in range(7)]
    return 100 * (pred == labels).float().mean().item(), per_class


def run(name, images, labels, steps, args, normalise, test_images, test_labels, class_names) -> float:
    start = time.time()
    print(f"{name}: {len(labels)} labeled images, {steps} steps of {args.batch}", flush=True)
    model = train(images, labels, steps, args, normalise)
    acc, per_class = accuracy(model, test_images, test_labels, normalise)
    recalls = ", ".join(f"{c} {r:.0f}" for c, r in zip(class_names, per_class))
    print(f"{name}: test accuracy {acc:.1f} %  (per class: {recalls})  [{time.time() - start:.0f} s]", flush=True)
    return acc


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # the model's initialisation
    start = time.time()
    data = load_dataset("synthfer", seed=args.seed, image_size=args.image_size, scale=args.scale)
    print(f"rendered synthfer ({len(data.labels)} images at {args.image_size} px) in {time.time() - start:.1f} s")
    train_idx, test_idx = data.indices("train"), data.indices("test")
    train_images, train_labels = data.images[train_idx], data.labels[train_idx]
    test_images, test_labels = data.images[test_idx], data.labels[test_idx]
    normalise = normaliser(train_images)
    common = (args, normalise, test_images, test_labels, data.class_names)

    full = run("(a) every label", train_images, train_labels, args.steps_full, *common)
    few_idx = make_split(train_labels, data.class_names, labels=100, split_seed=0, val_per_class=0).labeled
    torch.manual_seed(args.seed)
    few = run("(b) 100 labels", train_images[few_idx], train_labels[few_idx], args.steps_few, *common)
    print(f"\n(a) every label: {full:.1f} %   (b) 100 labels: {few:.1f} %   gap: {full - few:.1f} points")
    full_met = "met" if 80 <= full <= 92 else "missed"
    gap_met = "met" if full - few >= 20 else "missed"
    print(f"targets: (a) 80-92 % -> {full_met}; gap >= 20 -> {gap_met}")


if __name__ == "__main__":
    main()
