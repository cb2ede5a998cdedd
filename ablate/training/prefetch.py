"""Make the next item while the caller works on this one: one background thread, one item ahead.

The trainer makes each step's batch (indices drawn and views augmented with its seeded generator) here while the
previous step trains, as the reference pipelines make batches in DataLoader workers. Items are made strictly one
after the other, in order, and the caller never touches what ``make`` uses while an item is being made, so a
seeded generator gives the same items as making them in the caller's thread: overlap changes when the work runs,
never its result. torch's kernels release the GIL, so the making runs on another core.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


class Prefetcher(Generic[T]):
    """``take(more)`` returns the next item and, when ``more``, starts making the one after it in the background.

    Disabled, it makes each item in the caller's thread when taken. Use it as a context manager: on exit it waits
    for an item still being made (whose work is then dropped) and stops its thread.
    """

    def __init__(self, make: Callable[[], T], enabled: bool = True):
        self.make = make
        self.enabled = enabled
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ablate-prefetch") if enabled else None
        self._pending: Future[T] | None = None

    def take(self, more: bool) -> T:
        item = self._pending.result() if self._pending is not None else self.make()
        self._pending = None
        if more and self._pool is not None:
            self._pending = self._pool.submit(self.make)
        return item

    def close(self) -> None:
        if self._pending is not None:
            self._pending.exception()  # wait; an error there belongs to an item nobody takes
            self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
