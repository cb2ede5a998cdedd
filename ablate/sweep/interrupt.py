"""Ctrl-C during a study, known for certain by the driver.

Tune catches SIGINT itself, stops its trials, saves its state and returns from ``fit()`` as if the experiment had
ended; it does not say that it was interrupted. Counting finished trials is not enough to tell: a Ctrl-C while
the search's last trials run leaves every trial counted finished, and the driver would go on to the baselines.
So the driver takes SIGINT itself: it records the request and asks Tune to stop through SIGUSR1, which Tune
handles exactly as its own Ctrl-C (it always registers it); Tune's SIGINT handler is switched off
(``TUNE_DISABLE_SIGINT_HANDLER``). A second Ctrl-C raises ``KeyboardInterrupt`` as usual.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

TUNE_SIGINT_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"


@dataclass
class Interrupt:
    requested: bool = False


def _tune_listens() -> bool:
    """Tune's SIGUSR1 handler is in place (from the first ``fit()`` on); before that SIGUSR1 would kill us."""
    handler = signal.getsignal(signal.SIGUSR1)
    return callable(handler) and getattr(handler, "__module__", "").startswith("ray.")


@contextlib.contextmanager
def catch_interrupt() -> Iterator[Interrupt]:
    """Within the block, the first Ctrl-C sets ``requested`` and stops a running Tune experiment gracefully."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        yield interrupt  # no signals here (a thread, or Windows): Tune's own handling stays
        return

    def on_sigint(signum, frame):
        if interrupt.requested:
            raise KeyboardInterrupt
        interrupt.requested = True
        print("interrupted: stopping the study once Ray Tune has saved its state (Ctrl-C again to abort)", flush=True)
        if _tune_listens():
            os.kill(os.getpid(), signal.SIGUSR1)

    before_handler = signal.signal(signal.SIGINT, on_sigint)
    before_switch = os.environ.get(TUNE_SIGINT_SWITCH)
    os.environ[TUNE_SIGINT_SWITCH] = "1"
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, before_handler)
        if before_switch is None:
            os.environ.pop(TUNE_SIGINT_SWITCH, None)
        else:
            os.environ[TUNE_SIGINT_SWITCH] = before_switch
