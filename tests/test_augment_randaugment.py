"""The per-sample RandAugment dispatch (ablate/augment/randaugment.py): each sample's operation is uniform over the
pool at every batch position, every operation gets its share of each batch, the values follow each operation's
range, op_p skips operations, the slots compose, the samples come back in their order, and the batched result
equals applying each sample's operation to it alone."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from ablate.augment import POOL, Augmenter, Op
from ablate.augment.randaugment import PerSampleRandAugment

stats = pytest.importorskip("scipy.stats")

K = 14  # the size of the real pool


def _tag(i: int, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Channel 0 untouched (it holds the sample's index), channel 1 records the operations in base 16,
    channel 2 the last value."""
    out = x.clone()
    out[:, 1] = x[:, 1] * 16 + (i + 1)
    out[:, 2] = v.view(-1, 1, 1)
    return out


def tagging_pool(k: int = K) -> tuple[Op, ...]:
    """k operations that write their index and value into the image; operation i's values lie in [i, i + 0.5],
    the odd ones signed."""
    return tuple(
        Op(f"tag{i}", partial(_tag, i), weakest=float(i), strongest=i + 0.5, signed=i % 2 == 1) for i in range(k)
    )


def indexed(n: int) -> torch.Tensor:
    x = torch.zeros(n, 3, 2, 2)
    x[:, 0] = torch.arange(n, dtype=torch.float32).view(-1, 1, 1)
    return x


def draw(n: int, calls: int, slots: int = 1, op_p: float = 1.0, magnitude=None, seed: int = 0, k: int = K):
    """Per call: each sample's operations (slot by slot, [calls, n, slots]) and last value ([calls, n])."""
    dispatch = PerSampleRandAugment(tagging_pool(k), slots, magnitude, op_p)
    g = torch.Generator().manual_seed(seed)
    x = indexed(n)
    ops, values = [], []
    for _ in range(calls):
        y = dispatch(x, g)
        assert torch.equal(y[:, 0], x[:, 0]), "the samples must come back in their order"
        code = y[:, 1, 0, 0].round().long()
        ops.append(torch.stack([(code // 16 ** (slots - 1 - s)) % 16 - 1 for s in range(slots)], -1))
        values.append(y[:, 2, 0, 0])
    return torch.stack(ops), torch.stack(values)


def uniformity(counts: np.ndarray) -> tuple[float, float]:
    """(p-value of the pooled counts over all positions, smallest p-value of one position), chi-square tests of
    uniformity over the operations; ``counts`` is [positions, operations]."""
    pooled = stats.chisquare(counts.sum(0)).pvalue
    each = min(stats.chisquare(row).pvalue for row in counts)
    return float(pooled), float(each)


def counts_of(ops: torch.Tensor, k: int = K) -> np.ndarray:
    """[calls, n] operation indices -> [n, k] counts (a skipped operation, -1, is not counted)."""
    n = ops.shape[1]
    return np.stack([np.bincount(ops[:, j][ops[:, j] >= 0].numpy(), minlength=k) for j in range(n)])


def acceptable(counts: np.ndarray) -> bool:
    pooled, each = uniformity(counts)
    return pooled > 1e-3 and each > 1e-5


# ---- the statistics, with their negative controls --------------------------------------------------------------


@pytest.mark.parametrize("n", [48, 28, 5])
def test_each_sample_draws_each_operation_equally_often_at_every_position(n):
    """48 = 3 x 14 + 6 and 5 do not divide into the pool: padding rows keep each sample's draw uniform."""
    ops, _ = draw(n, calls=1400)
    assert (ops >= 0).all()
    assert acceptable(counts_of(ops[..., 0]))


def test_the_uniformity_check_rejects_a_remainder_bias_and_a_fixed_order():
    """Negative controls: the check must fail for (a) 48 samples cut into groups of 4, 4, 4, 4, 4, 4 and 3 x 8
    (the remainder to the first operations: probability 4/48 instead of 1/14), and (b) a position-bound
    assignment (sample j always draws operation j mod 14 or the next one)."""
    rng = np.random.default_rng(0)
    sizes = [4] * 6 + [3] * 8
    pool_of_rows = np.repeat(np.arange(K), sizes)
    biased = np.stack([pool_of_rows[rng.permutation(48)] for _ in range(1400)])
    assert not acceptable(counts_of(torch.from_numpy(biased)))
    fixed = np.stack([(np.arange(48) + rng.integers(0, 2)) % K for _ in range(1400)])
    assert not acceptable(counts_of(torch.from_numpy(fixed)))


def test_every_operation_gets_its_share_of_each_batch():
    ops, _ = draw(48, calls=200)  # share = ceil(48 / 14) = 4 rows each, 8 of the 56 are padding
    per_call = np.stack([np.bincount(call[:, 0].numpy(), minlength=K) for call in ops])
    assert per_call.max() == 4 and per_call.min() >= 4 - 8 and (per_call.sum(1) == 48).all()
    ops, _ = draw(28, calls=50)  # 14 divides 28: exactly two samples per operation, every time
    assert all((np.bincount(call[:, 0].numpy(), minlength=K) == 2).all() for call in ops)


def test_slots_are_independent_and_each_uniform():
    ops, _ = draw(48, calls=300, slots=2)
    pairs = (ops[..., 0] * K + ops[..., 1]).flatten().numpy()
    assert stats.chisquare(np.bincount(pairs, minlength=K * K)).pvalue > 1e-3
    for slot in range(2):
        assert acceptable(counts_of(ops[..., slot]))


def test_values_follow_each_operations_range_and_sign():
    ops, values = draw(48, calls=200)
    op, value = ops[..., 0].flatten(), values.flatten()
    magnitude = value.abs()
    assert ((magnitude >= op) & (magnitude <= op + 0.5)).all()
    unsigned = op % 2 == 0
    assert (value[unsigned] >= 0).all()
    negative = (value[~unsigned] < 0).float().mean().item()
    assert 0.45 < negative < 0.55
    # Strengths uniform in [0, 1): the position inside the range is uniform.
    assert stats.kstest((magnitude - op).numpy() / 0.5, "uniform").pvalue > 1e-3


def test_a_fixed_magnitude_is_the_same_strength_everywhere():
    ops, values = draw(30, calls=20, magnitude=0.5)
    torch.testing.assert_close(values.abs(), ops[..., 0].float() + 0.25, atol=1e-6, rtol=0)


def test_op_p_skips_operations_per_sample():
    ops, _ = draw(48, calls=300, op_p=0.3)
    applied = (ops[..., 0] >= 0).float().mean().item()
    assert 0.28 < applied < 0.32
    assert acceptable(counts_of(ops[..., 0]))  # the ones applied are still uniform


def test_edge_cases():
    dispatch = PerSampleRandAugment(POOL, 2, None, 1.0)
    assert dispatch(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), None).shape == (0, 3, 8, 8)
    x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    y = dispatch(x, torch.Generator().manual_seed(0))
    assert y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 1
    identity = PerSampleRandAugment(POOL[:1], 2, None, 1.0)
    assert not identity.active
    torch.testing.assert_close(identity(x, None), x / 255.0)
    assert not PerSampleRandAugment(POOL, 2, None, 0.0).active and not PerSampleRandAugment(POOL, 0, None, 1.0).active


# ---- the batched result is each sample's own operation ------------------------------------------------------------


def one_by_one(x, ops, slots, magnitude, op_p, seed):
    """The dispatch written as a loop over samples, with the same draws in the same order: per slot a permutation
    of the m = ceil(n / k) k rows, then strengths, signs and op_p draws per row."""
    g = torch.Generator().manual_seed(seed)
    y = x.float() / 255.0
    n, k = len(x), len(ops)
    share = -(-n // k)
    for _ in range(slots):
        perm = torch.randperm(share * k, generator=g)
        strength, sign, keep = torch.rand(3, share * k, generator=g)
        out = y.clone()
        for row, sample in enumerate(perm.tolist()):
            if sample >= n or keep[row] >= op_p:
                continue
            op = ops[row // share]
            s = strength[row] if magnitude is None else torch.tensor(magnitude)
            value = op.weakest + s * (op.strongest - op.weakest)
            value = -value if op.signed and sign[row] < 0.5 else value
            out[sample] = op.apply(y[sample : sample + 1], value.view(1))[0]
        y = out
    return y


@pytest.mark.parametrize("slots, op_p, magnitude", [(1, 1.0, None), (2, 1.0, None), (3, 0.5, None), (2, 1.0, 0.7)])
def test_batched_dispatch_equals_each_samples_own_operations(slots, op_p, magnitude):
    x = torch.randint(0, 256, (33, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    dispatch = PerSampleRandAugment(POOL, slots, magnitude, op_p)
    batched = dispatch(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(batched, one_by_one(x, POOL, slots, magnitude, op_p, seed=5), atol=2e-5, rtol=0)


# ---- fewer kernels: the geometric operations share one warp ---------------------------------------------------------


class CountWarps(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.warps = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.warps += func is torch.nn.functional.grid_sample
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("strong_ops", [1, 3])
def test_one_warp_per_slot_for_all_five_geometric_operations(strong_ops):
    aug = Augmenter(32, strong_ops=strong_ops)
    with CountWarps() as counter:
        aug.strong(torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8), torch.Generator().manual_seed(0))
    assert counter.warps == strong_ops
