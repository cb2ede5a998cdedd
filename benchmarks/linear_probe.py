"""Are a backbone's pretrained weights worth anything on faces? A linear probe on frozen features, pretrained
against random init, in one run.

For each image side: a balanced sample of the training split (``--fit`` faces per class) and of the test split
(``--test`` per class, fewer where a class has fewer), resized to the side (bilinear, antialiased), normalised
with ImageNet's mean and std (augment.mean/std's defaults, which the weights expect), through the backbone in
evaluation mode (batch norm folded, as ablate evaluates); the pooled feature map, standardised with the fitting
set's statistics, fits a multinomial logistic regression (L-BFGS, an L2 penalty ``--l2`` on the weights). The same
faces, sides and fit for ``model.weights: imagenet`` and for a random init (seed ``--seed``).

    python benchmarks/linear_probe.py                                   # synthfer, efficientnet_lite0, 64 and 112 px
    python benchmarks/linear_probe.py --data fer2013:/path/to/fer2013   # as in benchmarks/RESULTS.md

The last lines are one summary per side, for scripts:
``linear_probe efficientnet_lite0 112px: imagenet 0.336 vs random 0.209 (accuracy), +12.7 points, 1.61x``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from ablate.augment import IMAGENET_MEAN, IMAGENET_STD
from ablate.data import FaceSet, load_dataset
from ablate.models import IMAGENET, build_model, resolve_model_section
from ablate.training.runtime import fold_batch_norms


def balanced_sample(faces: FaceSet, split: str, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Up to ``per_class`` indices of each class of ``split``, drawn without replacement."""
    pool = faces.indices(split)
    labels = faces.labels[pool]
    chosen = []
    for k in range(faces.num_classes):
        members = pool[labels == k]
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen)


def resized(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 [N, 3, h, w] -> float [N, 3, side, side], normalised with ImageNet's mean and std."""
    x = images.float().div_(255)
    if x.shape[-1] != side:
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.inference_mode()
def features(backbone: torch.nn.Module, images: torch.Tensor, side: int, batch: int = 128) -> torch.Tensor:
    """The pooled feature map of each image (the heads' input before dropout)."""
    out = []
    for chunk in images.split(batch):
        x = resized(chunk, side).contiguous(memory_format=torch.channels_last)
        out.append(backbone(x).mean(dim=(2, 3)).float())
    return torch.cat(out)


def fit_probe(train: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float) -> torch.nn.Linear:
    """Multinomial logistic regression on standardised features: mean cross-entropy + l2 * ||W||^2, by L-BFGS."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(train.shape[1], num_classes)
    optimiser = torch.optim.LBFGS(probe.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(probe(train), labels) + l2 * probe.weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return probe


def scores(predicted: torch.Tensor, true: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """Accuracy and mean class accuracy (the mean over classes of each class's recall)."""
    recalls = [(predicted[true == k] == k).float().mean().item() for k in range(num_classes) if (true == k).any()]
    return (predicted == true).float().mean().item(), sum(recalls) / len(recalls)


def probe_accuracy(faces, model_name, weights, side, fit_idx, test_idx, seed, l2) -> tuple[float, float]:
    torch.manual_seed(seed)  # the random init
    model = build_model(resolve_model_section({"name": model_name, "weights": weights}), faces.num_classes)
    backbone = fold_batch_norms(model).backbone.to(memory_format=torch.channels_last)
    f_fit = features(backbone, faces.images[fit_idx], side)
    f_test = features(backbone, faces.images[test_idx], side)
    mean, std = f_fit.mean(0), f_fit.std(0) + 1e-6
    probe = fit_probe((f_fit - mean) / std, faces.labels[fit_idx], faces.num_classes, l2)
    with torch.no_grad():
        predicted = probe((f_test - mean) / std).argmax(1)
    return scores(predicted, faces.labels[test_idx], faces.num_classes)


def main(argv: list[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthfer", help="NAME[:PATH] of a data source (default synthfer)")
    p.add_argument("--model", default="efficientnet_lite0", help="a backbone with packaged ImageNet weights")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 112], help="image sides to probe at")
    p.add_argument("--fit", type=int, default=150, help="faces per class to fit the probe on")
    p.add_argument("--test", type=int, default=100, help="faces per class to score it on")
    p.add_argument("--seed", type=int, default=0, help="the sample's and the random init's seed")
    p.add_argument("--l2", type=float, default=1e-3, help="L2 penalty on the probe's weights")
    p.add_argument("--threads", type=int, default=None, help="torch's threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    name, _, path = args.data.partition(":")
    faces = load_dataset(name, path or None)
    generator = torch.Generator().manual_seed(args.seed)
    fit_idx = balanced_sample(faces, "train", args.fit, generator)
    test_idx = balanced_sample(faces, "test", args.test, generator)
    print(
        f"{args.data}: {len(fit_idx)} faces to fit, {len(test_idx)} to test ({faces.num_classes} classes, chance "
        f"{1 / faces.num_classes:.3f}); {args.model}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    )
    summary = []
    for side in args.sizes:
        result = {}
        for weights in (IMAGENET, None):
            start = time.perf_counter()
            result[weights] = probe_accuracy(faces, args.model, weights, side, fit_idx, test_idx, args.seed, args.l2)
            acc, mca = result[weights]
            label = weights or "random"
            print(f"{side:>4}px {label:>8}: accuracy {acc:.3f}, mean class accuracy {mca:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
        (pre, _), (rnd, _) = result[IMAGENET], result[None]
        summary.append(
            f"linear_probe {args.model} {side}px: imagenet {pre:.3f} vs random {rnd:.3f} (accuracy), "
            f"{100 * (pre - rnd):+.1f} points, {pre / rnd:.2f}x"
        )
    for line in summary:
        print(line)
    return summary


if __name__ == "__main__":
    main()
