"""Ctrl-C (or SIGTERM) during a study, known for certain by the driver.

Tune catches SIGINT itself, stops its trials, saves its state and returns from ``fit()`` as if the experiment had
ended; it does not say that it was interrupted. Counting finished trials is not enough to tell: a Ctrl-C while
the search's last trials run leaves every trial counted finished, and the driver would go on to the baselines.
So the driver takes SIGINT itself: it records the request and asks Tune to stop through SIGUSR1, which Tune
handles exactly as its own Ctrl-C (it always registers it); Tune's SIGINT handler is switched off
(``TUNE_DISABLE_SIGINT_HANDLER``). A second Ctrl-C raises ``KeyboardInterrupt`` as usual.

SIGTERM is the first Ctrl-C too: batch schedulers (SLURM's preemption, Kubernetes, ``timeout``) stop a job with it,
and the study must then end as after a Ctrl-C (trials stopped once Tune saved its state, the tables written, the
lock released). Ray's own SIGTERM handler (``sys.exit`` in the middle of ``fit()``, or its core worker's crash
dump) is replaced within the block. The driver exits with ``128 + the signal's number`` (130, 143).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

TUNE_SIGINT_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"


SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Interrupt:
    requested: bool = False
    signum: int | None = None  # the signal that asked for the stop; None when Tune stopped on its own

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended (130 Ctrl-C, 143 SIGTERM)."""
        return 128 + (self.signum or signal.SIGINT)


def _tune_listens() -> bool:
    """Tune's SIGUSR1 handler is in place (from the first ``fit()`` on); before that SIGUSR1 would kill us."""
    handler = signal.getsignal(signal.SIGUSR1)
    return callable(handler) and getattr(handler, "__module__", "").startswith("ray.")


@contextlib.contextmanager
def catch_interrupt() -> Iterator[Interrupt]:
    """Within the block, the first Ctrl-C or SIGTERM sets ``requested`` and stops a running Tune experiment
    gracefully; a second one raises ``KeyboardInterrupt``."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        yield interrupt  # no signals here (a thread, or Windows): Tune's own handling stays
        return

    def on_signal(signum, frame):
        if interrupt.signum is not None:
            raise KeyboardInterrupt
        interrupt.requested, interrupt.signum = True, signum
        print(
            f"interrupted ({signal.Signals(signum).name}): stopping the study once Ray Tune has saved its state "
            "(Ctrl-C again to abort)",
            flush=True,
        )
        if _tune_listens():
            os.kill(os.getpid(), signal.SIGUSR1)

    before_handlers = {signum: signal.signal(signum, on_signal) for signum in SIGNALS}
    before_switch = os.environ.get(TUNE_SIGINT_SWITCH)
    os.environ[TUNE_SIGINT_SWITCH] = "1"
    try:
        yield interrupt
    finally:
        for signum, handler in before_handlers.items():
            signal.signal(signum, handler)
        if before_switch is None:
            os.environ.pop(TUNE_SIGINT_SWITCH, None)
        else:
            os.environ[TUNE_SIGINT_SWITCH] = before_switch
