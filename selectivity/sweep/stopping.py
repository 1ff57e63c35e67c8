"""Stopping a sweep on SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption) within seconds.

A bare KeyboardInterrupt is not enough, for two reasons seen in practice:

  * the kernel may deliver a process-directed signal to any thread of the driver (the
    pool's manager thread, a queue feeder). The main thread, asleep in a lock wait for the
    next finished run, is then not woken, and the Python handler runs only once a run
    finishes: the sweep trained the run to completion before it stopped, and an
    exception raised that late can land in a finalizer, where Python prints and drops it
    (the sweep then exited 0).
  * the process pool's workers catch BaseException around each task, so a worker whose
    run was interrupted goes on to the next queued run.

So the handler records the signal as well as raising; executors wait in short slices and
call `check()` between them, so a recorded stop is acted on within POLL_SECONDS, and they
hand a worker no new run once a stop is requested.

    with stop_on_signals():        # the `selectivity sweep` command
        run_sweep(...)             # raises SweepInterrupted; exit_code is 128 + the signal
"""
import signal
from contextlib import contextmanager
from typing import Iterator

POLL_SECONDS = 0.2  # how long an executor waits for a run before looking for a stop request
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: int | None = None  # the signal that asked this process to stop


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was asked to stop by a signal; finished runs and checkpoints stay."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


def _record_and_raise(signum, frame):
    global _received
    _received = signum
    raise SweepInterrupted(signum)


def check() -> None:
    """Raise SweepInterrupted if a stop signal arrived (even one whose exception was lost)."""
    if _received is not None:
        raise SweepInterrupted(_received)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the body, SIGINT and SIGTERM stop the sweep; the previous handlers come back after."""
    global _received
    _received = None
    previous = {signum: signal.signal(signum, _record_and_raise) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received = None
