"""The pieces of the fast CPU path without a training run: what ``auto`` decides, the prefetcher's order and
threads, and the threads and cores a trial's process gets (``configure_threads``)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest
import torch

from ablate.config.trainer import TRAINER_PARAMS
from ablate.errors import ConfigError
from ablate.training import runtime
from ablate.training.prefetch import Prefetcher
from ablate.training.runtime import Runtime, configure_threads, release_cores

AFFINITY = hasattr(os, "sched_setaffinity")


def section(**changes) -> dict:
    settings = {key: param.default for key, param in TRAINER_PARAMS.items()}
    return {**settings, "device": "cpu", **changes}


# ---- what auto decides on a CPU ---------------------------------------------------------------------------


def test_auto_on_a_cpu_is_channels_last_separate_forwards_and_folded_evaluation():
    rt = Runtime.from_trainer_section(section())
    assert rt.channels_last and rt.fuse_eval
    assert not rt.concat


def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: True)
    assert Runtime.from_trainer_section(section()).autocast
    assert not Runtime.from_trainer_section(section(precision="fp32")).autocast
    monkeypatch.setattr(runtime, "native_cpu_bf16", lambda: False)
    assert not Runtime.from_trainer_section(section()).autocast
    assert Runtime.from_trainer_section(section(precision="bf16")).autocast


def test_native_bf16_is_read_from_the_cpus_capabilities(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not runtime.native_cpu_bf16()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert runtime.native_cpu_bf16()
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert not runtime.native_cpu_bf16(), "a torch without the check counts as no native bf16"


def test_compile_only_when_asked_for():
    assert not Runtime.from_trainer_section(section(epochs=100, steps_per_epoch=1000)).compile
    assert Runtime.from_trainer_section(section(compile=True)).compile


def test_auto_overlaps_only_when_a_core_is_left_free(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setattr(runtime, "usable_cpus", lambda: threads + 1)
    assert Runtime.from_trainer_section(section()).overlap
    monkeypatch.setattr(runtime, "usable_cpus", lambda: threads)
    assert not Runtime.from_trainer_section(section()).overlap
    assert Runtime.from_trainer_section(section(overlap=True)).overlap


def test_settings_off_turn_every_lever_off():
    rt = Runtime.from_trainer_section(
        section(channels_last=False, compile=False, fuse_eval=False, overlap=False, epochs=100)
    )
    assert not (rt.channels_last or rt.compile or rt.fuse_eval or rt.overlap)


# ---- the prefetcher ---------------------------------------------------------------------------------------


def counting_maker():
    made: list[tuple[int, str]] = []

    def make() -> int:
        made.append((len(made), threading.current_thread().name))
        return len(made) - 1

    return make, made


def test_prefetcher_hands_items_in_order_and_makes_the_next_in_its_thread():
    make, made = counting_maker()
    with Prefetcher(make) as items:
        got = [items.take(more=i < 4) for i in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert len(made) == 5, "nothing is made past an item taken with more=False"
    assert made[0][1] == threading.current_thread().name, "the first item is made when it is taken"
    assert all(name.startswith("ablate-prefetch") for _, name in made[1:])


def test_prefetcher_disabled_makes_each_item_in_the_callers_thread():
    make, made = counting_maker()
    with Prefetcher(make, enabled=False) as items:
        assert [items.take(more=True) for _ in range(3)] == [0, 1, 2]
    assert len(made) == 3 and {name for _, name in made} == {threading.current_thread().name}


def test_prefetcher_runs_the_next_item_while_the_caller_works():
    started = threading.Event()

    def make() -> float:
        started.set()
        time.sleep(0.2)
        return time.monotonic()

    with Prefetcher(make) as items:
        items.take(more=True)
        assert started.wait(5), "the next item is started in the background"
        t0 = time.monotonic()
        time.sleep(0.3)  # the caller's work; the item is made meanwhile
        items.take(more=False)
        assert time.monotonic() - t0 < 0.45


def test_prefetcher_raises_a_background_error_when_its_item_is_taken():
    calls = []

    def make() -> int:
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("bad batch")
        return len(calls)

    with Prefetcher(make) as items:
        items.take(more=True)
        with pytest.raises(ValueError, match="bad batch"):
            items.take(more=False)


# ---- threads and cores of a trial's process ---------------------------------------------------------------


@pytest.fixture
def cores_folder(tmp_path, monkeypatch):
    """Claims in a folder of the test's own, so that a test never competes with trials running on the machine."""
    monkeypatch.setenv("ABLATE_CORES_DIR", str(tmp_path))
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    mask = os.sched_getaffinity(0) if AFFINITY else None
    yield tmp_path
    release_cores()
    torch.set_num_threads(threads)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp
    if AFFINITY:
        assert os.sched_getaffinity(0) == mask, "release_cores gives the process its mask back"


@pytest.mark.parametrize("cpus", [0, -1, float("nan"), "2", True])
def test_configure_threads_refuses_a_bad_cpu_count(cpus):
    with pytest.raises(ConfigError, match=r"resources\.cpu"):
        configure_threads(cpus)


def test_configure_threads_sets_torch_and_child_threads(cores_folder):
    plan = configure_threads(1.0, pin=False)
    assert plan.threads == torch.get_num_threads() == 1 and plan.cores == ()
    assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "1"
    assert configure_threads(2.7, pin=True).threads == 2  # whole cores only
    assert configure_threads(0.5).threads == 1  # a fraction of a core still runs one thread


@pytest.mark.skipif(not AFFINITY, reason="no sched_setaffinity on this system")
def test_configure_threads_pins_every_thread_to_claimed_cores_and_releases_them(cores_folder):
    first = min(os.sched_getaffinity(0))
    plan = configure_threads(1)
    assert plan.cores == (first,)
    assert os.sched_getaffinity(0) == {first}
    started = []
    worker = threading.Thread(target=lambda: started.append(os.sched_getaffinity(0)))
    worker.start()
    worker.join()
    assert started == [{first}], "a thread started later inherits the pinning"
    assert (cores_folder / f"core{first}.lock").exists()
    again = configure_threads(1)  # a Ray actor's next trial: the old claim is released, then claimed anew
    assert again.cores == (first,)


@pytest.mark.skipif(not AFFINITY, reason="no sched_setaffinity on this system")
def test_fractional_cpus_are_not_pinned(cores_folder):
    mask = os.sched_getaffinity(0)
    assert configure_threads(1.5).cores == ()
    assert os.sched_getaffinity(0) == mask


def _claim_in_child(folder: str, to_parent, from_parent) -> None:
    os.environ["ABLATE_CORES_DIR"] = folder
    to_parent.put(configure_threads(1).cores)
    from_parent.get(timeout=120)  # hold the claim until the parent has seen every child's


@pytest.mark.skipif(not AFFINITY, reason="no sched_setaffinity on this system")
def test_packed_processes_claim_different_cores_and_an_extra_one_stays_unpinned(cores_folder):
    usable = len(os.sched_getaffinity(0))
    context = multiprocessing.get_context("spawn")
    to_parent, to_children = context.Queue(), context.Queue()
    children = [
        context.Process(target=_claim_in_child, args=(str(cores_folder), to_parent, to_children), daemon=True)
        for _ in range(usable + 1)
    ]
    cores = []
    try:
        for child in children:  # one after the other, so that the extra one is the last
            child.start()
            cores.append(to_parent.get(timeout=60))
    finally:
        for _ in children:
            to_children.put("done")
        for child in children:
            child.join(timeout=60)
    pinned = [c for c in cores if c]
    assert len(pinned) == usable and len({c[0] for c in pinned}) == usable, f"each core once: {cores}"
    assert cores[-1] == (), "no core was left for the extra process, so it runs unpinned"
    assert configure_threads(1).cores != (), "the children's claims ended with them"
