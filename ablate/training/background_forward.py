"""Run a step's no-grad forwards (the weak views') in a background thread while the caller trains on the others.

On a CPU whose torch threads leave cores free, the weak views' forward (a third of a LION step's arithmetic, and
no gradient) runs there while the labeled and strong views' forward and backward run on torch's. It runs a shadow
of the model: the same parameter tensors, which nobody writes until the optimiser steps after the join, and batch
norm buffers of its own, so the two threads never write one tensor. The running statistics are merged at the join
as if the weak views' forwards had come after the caller's: an EMA with momentum m over k batches takes r0 to
(1-m)^k r0 + (the batches' terms), so if the caller took r0 to r and the shadow took r0 to r_w over the k weak
batches, running the weak batches after the caller's gives r_w + (1-m)^k (r - r0).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

Outputs = list[tuple[torch.Tensor, torch.Tensor]]


def shadow_of(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that shares its parameters (the same tensors) and owns copies of its buffers."""
    shadow = copy.deepcopy(model)
    for own, theirs in zip(shadow.modules(), model.modules(), strict=True):
        own._parameters = dict(theirs._parameters)
    return shadow


def why_not_in_background(model: nn.Module) -> str | None:
    """What keeps the model's forward from running in a background thread with the same result, or None."""
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            return f"the model has dropout (p = {module.p:g}), whose masks would depend on the threads' timing"
        if isinstance(module, _BatchNorm) and module.track_running_stats and module.momentum is None:
            return "a batch norm keeps a cumulative average (momentum None), which the merge does not handle"
    return None


class BackgroundForward:
    """``start(views)`` forwards the views in the background and returns ``join``, which waits, merges the batch
    norm statistics into the model's and returns each view's (logits, feature), as ``forward(model, view)``
    without gradients would have. Nothing may run the model's forward in training mode between the two except
    the caller's own forwards (whose statistics count as before the views'); the optimiser steps after the join.
    """

    def __init__(self, model: nn.Module, forward: Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, ...]]):
        reason = why_not_in_background(model)
        if reason is not None:
            raise ValueError(f"the forward cannot run in the background: {reason}")
        self.model, self.forward = model, forward
        self.shadow = shadow_of(model)
        self.norms = [
            (mine, shadow)
            for mine, shadow in zip(model.modules(), self.shadow.modules(), strict=True)
            if isinstance(mine, _BatchNorm) and mine.track_running_stats
        ]
        self._pool: ThreadPoolExecutor | None = None  # made by the first start, ended by close

    def close(self) -> None:
        """End the thread (a later ``start`` makes a new one). The trainer closes it after each run of steps, so
        that no thread outlives training: one left to the garbage collector lives on, and is joined only at
        interpreter exit, inside a stopping Ray worker's shutdown."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> BackgroundForward:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, views: list[torch.Tensor]) -> Callable[[], Outputs]:
        if self._pool is None:
            threads = torch.get_num_threads()  # OpenMP keeps its count per thread (oneDNN reads it): set it there
            self._pool = ThreadPoolExecutor(1, "ablate-forward", initializer=torch.set_num_threads, initargs=(threads,))
        self.shadow.train(self.model.training)
        before = []
        for mine, shadow in self.norms:
            shadow.running_mean.copy_(mine.running_mean)
            shadow.running_var.copy_(mine.running_var)
            before.append((mine.running_mean.clone(), mine.running_var.clone()))
        pending = self._pool.submit(self._run, views)

        def join() -> Outputs:
            outputs = pending.result()
            if self.model.training:
                self._merge(before, len(views))
            return outputs

        return join

    def _run(self, views: list[torch.Tensor]) -> Outputs:
        with torch.no_grad():
            return [self.forward(self.shadow, view) for view in views]

    def _merge(self, before: list[tuple[torch.Tensor, torch.Tensor]], batches: int) -> None:
        # Through .data: autograd saved the running statistics with the caller's forward (a training-mode backward
        # reads the batch's statistics, not these), and an update in place would fail its version check.
        for (mine, shadow), (mean0, var0) in zip(self.norms, before, strict=True):
            decay = (1 - mine.momentum) ** batches
            mine.running_mean.data.sub_(mean0).mul_(decay).add_(shadow.running_mean)
            mine.running_var.data.sub_(var0).mul_(decay).add_(shadow.running_var)
            mine.num_batches_tracked.data.add_(batches)
