"""RandAugment with an operation drawn per sample, batched, with no device-to-host transfer.

Why per sample: Kornia's ``RandAugment`` draws one operation per call for the whole batch, so a batch of the
same face gets at most ``len(pool)`` different views per slot, where the references (PIL in DataLoader workers,
FixMatch's and Ada-CM's ``RandAugment.__call__``) draw for each image. Here each sample draws its own operation
and value in every slot.

Why no host sync: the obvious batched form (each sample draws an operation index, the batch is grouped by it)
must read the group sizes on the host, which on a GPU stalls the pipeline once per slot. Instead the group sizes
are fixed by the batch size alone, and the randomness is in who joins which group. Per slot:

1. ``share = ceil(n / k)`` rows for each of the ``k`` operations of the pool, ``m = share * k`` rows in all.
   Operation ``i`` owns rows ``[i * share, (i + 1) * share)``.
2. A random permutation of the ``m`` rows places the ``n`` samples on ``n`` of them (the ``m - n < k`` rows
   left over are padding: they hold a copy of some sample and their results are dropped). Each sample's row is
   uniform over the ``m`` rows, so its operation is uniform over the pool, exactly, as in the references; within
   one batch the operations are drawn without replacement, so every operation gets its share.
3. Each operation runs once on its contiguous rows (the geometric ones together, as one warp), each row with its
   own value; ``op_p < 1`` keeps each row's input instead of its output with probability ``1 - op_p`` (a
   ``torch.where``, no indexing by a mask).
4. Each operation's results are copied straight to the rows they take in the next slot (``index_copy_`` through
   the next permutation composed with the inverse of this one; padding rows go to padding rows), and after the
   last slot straight to their samples' own positions (padding rows to the positions after the batch).

So the batch is gathered once at the start, each slot costs its operations on ``m`` rows plus one copy of the
batch, and two buffers of ``m`` rows serve all the slots in turn (``m - n``, the padding, is at most ``k - 1``
rows, none when ``k`` divides the batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ablate.augment.ops import Op, warp


class PerSampleRandAugment:
    """``slots`` operations of ``ops`` per sample, each with its own value (``magnitude`` None: a strength
    uniform in [0, 1) per sample and slot; a number: that strength for all), each applied with probability
    ``op_p``; the geometric ones warp with ``interpolation``. The options are checked by ``Augmenter``; this
    class only applies them.
    """

    def __init__(
        self, ops: Sequence[Op], slots: int, magnitude: float | None, op_p: float, interpolation: str = "bilinear"
    ):
        self.ops = tuple(ops)
        self.interpolation = interpolation
        self.slots = slots
        self.magnitude = magnitude
        self.op_p = op_p
        self._runs = _runs(self.ops)
        self._ranges: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}

    @property
    def active(self) -> bool:
        """Whether any operation can change an image (so ``__call__`` is worth its cost)."""
        return self.slots > 0 and self.op_p > 0 and not all(op.is_identity for op in self.ops)

    def __call__(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """uint8 [n, 3, H, W] or float images in [0, 1] -> float images in [0, 1]: a new tensor, unless ``x`` is
        float and no operation can apply (then ``x`` itself)."""
        if not self.active or x.shape[0] == 0:
            return _unit(x)
        n, device = x.shape[0], x.device
        share = -(-n // len(self.ops))
        m = share * len(self.ops)
        perm = torch.randperm(m, device=device, generator=generator)  # row r holds sample perm[r] (padding if >= n)
        rows = _unit(x.index_select(0, perm.clamp(max=n - 1)))
        spare = torch.empty_like(rows)  # the slots write into ``spare`` and ``rows`` in turn
        for slot in range(self.slots):
            values, applied = self._row_values(share, device, generator)
            if slot + 1 < self.slots:
                next_perm = torch.randperm(m, device=device, generator=generator)
                destination = _inverse(next_perm).index_select(0, perm)  # where each row's sample goes next
            else:
                next_perm, destination = perm, perm  # sample j to position j, padding after the batch
            self._one_slot(rows, values, applied, share, spare, destination)
            rows, spare, perm = spare, rows, next_perm
        return rows[:n]

    def _ranges_on(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Each operation's weakest and strongest value and whether it is signed, made once per device."""
        if device not in self._ranges:
            self._ranges[device] = (
                torch.tensor([op.weakest for op in self.ops], device=device),
                torch.tensor([op.strongest for op in self.ops], device=device),
                torch.tensor([op.signed for op in self.ops], device=device),
            )
        return self._ranges[device]

    def _row_values(self, share: int, device: torch.device, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Each row's value (a strength on its operation's range, negated at random where the operation is
        signed) and whether the row's operation is applied (``op_p``)."""
        weakest, strongest, signed = (t.view(-1, 1).expand(-1, share).reshape(-1) for t in self._ranges_on(device))
        draws = torch.rand(3, weakest.shape[0], device=device, generator=generator)
        strength = draws[0] if self.magnitude is None else torch.full_like(draws[0], self.magnitude)
        value = torch.lerp(weakest, strongest, strength)
        return torch.where(signed & (draws[1] < 0.5), -value, value), draws[2] < self.op_p

    def _one_slot(
        self, rows: Tensor, values: Tensor, applied: Tensor, share: int, out: Tensor, destination: Tensor
    ) -> None:
        """Each operation on its own rows (a run of geometric operations as one warp), ``op_p``, and each result
        copied to ``out`` at the rows ``destination`` gives."""
        h, w = rows.shape[-2:]
        for first, last in self._runs:
            start, end = first * share, last * share
            part, value = rows[start:end], values[start:end]
            op = self.ops[first]
            if op.affine is not None:
                maps = [
                    self.ops[i].affine(value[(i - first) * share : (i - first + 1) * share], h, w)  # type: ignore[misc]
                    for i in range(first, last)
                ]
                linear, shift = torch.cat([linear for linear, _ in maps]), torch.cat([shift for _, shift in maps])
                result = warp(part, linear, shift, mode=self.interpolation)
            else:
                result = part if op.is_identity else op.apply(part, value)
            if self.op_p < 1.0 and not op.is_identity:
                result = torch.where(applied[start:end].view(-1, 1, 1, 1), result, part)
            out.index_copy_(0, destination[start:end], result)


def _runs(ops: Sequence[Op]) -> tuple[tuple[int, int], ...]:
    """The pool cut into runs ``[first, last)`` of operation indices: each image operation alone, each maximal
    run of geometric operations together (they share one warp)."""
    runs: list[tuple[int, int]] = []
    for i, op in enumerate(ops):
        if op.affine is not None and runs and ops[runs[-1][0]].affine is not None:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return tuple(runs)


def _inverse(perm: Tensor) -> Tensor:
    """The inverse permutation: ``_inverse(p)[p[r]] == r``."""
    return torch.empty_like(perm).scatter_(0, perm, torch.arange(len(perm), device=perm.device))


def _unit(x: Tensor) -> Tensor:
    """uint8 images -> float32 in [0, 1]; float images are returned as they are."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x
