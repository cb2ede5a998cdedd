"""weak() and strong() never read a tensor on the host: no device-to-host transfer, so on a GPU the views are
queued and the step never waits for them.

Two recorders watch every torch call the views make. A ``TorchFunctionMode`` sees the Python-level calls that read
a tensor's value on the host (``item``, ``tolist``, ``cpu``, ``numpy``, ``bool()``, ``int()``, ``float()``, ...)
and those whose output shape depends on the data (``nonzero``, boolean-mask indexing, ``unique``, ...). A
``TorchDispatchMode`` sees the ATen operators underneath, including those called inside library code
(``_local_scalar_dense`` is what every scalar read becomes). On a CPU machine no transfer costs anything, but the
calls are still seen, which is what makes the test meaningful there; the CUDA variant runs where a GPU is.
The last tests are the negative controls: code that syncs (as the previous per-slot ``bincount(...).tolist()``
did) must be caught.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ablate.augment import Augmenter

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"))]

HOST_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.cpu,
    torch.Tensor.numpy,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.Tensor.__complex__,
    torch.Tensor.__array__,
    torch.Tensor.equal,
    torch.equal,
    torch.allclose,
    torch.Tensor.allclose,
    torch.is_nonzero,
    torch.Tensor.is_nonzero,
}
DATA_DEPENDENT_SHAPES = {
    torch.nonzero,
    torch.Tensor.nonzero,
    torch.argwhere,
    torch.Tensor.argwhere,
    torch.masked_select,
    torch.Tensor.masked_select,
    torch.unique,
    torch.Tensor.unique,
    torch.unique_consecutive,
    torch.Tensor.unique_consecutive,
    torch.bincount,
    torch.Tensor.bincount,
    torch.repeat_interleave,
    torch.Tensor.repeat_interleave,
}
INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
SYNCING_ATEN = {
    "_local_scalar_dense",
    "item",
    "is_nonzero",
    "equal",
    "nonzero",
    "nonzero_static",
    "argwhere",
    "masked_select",
    "_unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "bincount",
    "repeat_interleave",
    "_to_copy",  # only when it lands on the CPU from elsewhere: checked below
    "_assert_async",  # fine on CUDA, a host read on the CPU: neither is expected here
}


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class HostReads(TorchFunctionMode):
    """Records each torch call that reads a tensor on the host or makes a shape from tensor data."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in HOST_READS or func in DATA_DEPENDENT_SHAPES:
            self.calls.append(getattr(func, "__name__", str(func)))
        elif func in INDEXING and len(args) > 1 and _bool_index(args[1]):
            self.calls.append(f"{func.__name__} with a boolean mask")
        elif func is torch.where and len(args) + len(kwargs) == 1:
            self.calls.append("torch.where(condition) (nonzero)")
        elif func in (torch.Tensor.to, torch.Tensor.cpu) and _to_cpu(args, kwargs):
            self.calls.append("Tensor.to(cpu)")
        return func(*args, **kwargs)


def _to_cpu(args, kwargs) -> bool:
    targets = [kwargs.get("device")] + list(args[1:])
    return any(str(t) == "cpu" or (isinstance(t, torch.device) and t.type == "cpu") for t in targets if t is not None)


class SyncingOperators(TorchDispatchMode):
    """Records the ATen operators that read device memory on the host or size their output by the data."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        out = func(*args, **kwargs)
        if name in SYNCING_ATEN and (name != "_to_copy" or _copies_to_host(args[0], out)):
            self.calls.append(name)
        return out


def _copies_to_host(source, out) -> bool:
    return isinstance(out, torch.Tensor) and out.device.type == "cpu" and source.device.type != "cpu"


def watched(view, *args) -> list[str]:
    with SyncingOperators() as operators, HostReads() as reads:
        view(*args)
    return reads.calls + operators.calls


CONFIGS = [
    {},
    {"strong_order": "ops_first", "strong_ops": 3, "pad_mode": "zeros", "cutout_fill": "adacm", "crop_p": 0.5},
    {"op_p": 0.5, "magnitude": 0.3, "interpolation": "nearest"},
    {"ops": ["rotate", "equalize", "autocontrast", "identity"], "strong_ops": 4},
    {"flip_p": 0.0, "crop_p": 0.0, "cutout": 0.0},
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", CONFIGS)
@pytest.mark.parametrize("n", [48, 7])
def test_weak_and_strong_read_nothing_on_the_host(device, options, n):
    aug = Augmenter(32, **options)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    aug.strong(x, g)  # the first call makes the per-device constants (a host-to-device copy, once)
    assert watched(aug.weak, x, g) == []
    assert watched(aug.strong, x, g) == []


# ---- negative controls ------------------------------------------------------------------------------------------


def old_slot(y: torch.Tensor) -> torch.Tensor:
    """The previous dispatch's grouping: group sizes read on the host once per slot."""
    op_index = torch.randint(0, 14, (len(y),))
    sizes = torch.bincount(op_index, minlength=14).tolist()
    return torch.cat([part * 0.5 for part in y.index_select(0, torch.argsort(op_index)).split(sizes)])


@pytest.mark.parametrize(
    "syncs, expected",
    [
        (old_slot, {"bincount", "tolist"}),
        (lambda y: y[y > 0.5], {"__getitem__ with a boolean mask"}),
        (lambda y: y * 2 if (y > 2).any() else y, {"__bool__", "_local_scalar_dense"}),
        (lambda y: y * float(y.mean()), {"__float__"}),
        (lambda y: torch.where(y > 0.5)[0], {"torch.where(condition) (nonzero)"}),
        (lambda y: y.masked_select(y > 0.5), {"masked_select"}),
    ],
)
def test_the_recorders_catch_host_reads(syncs, expected):
    calls = watched(syncs, torch.rand(20, 3, 4, 4))
    assert expected <= set(calls), calls
