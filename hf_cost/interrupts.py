"""Ctrl-C and SIGTERM during a run: raised as `Interrupted` where it is safe to stop, held
while the output is being committed (output.py), and never lost inside a finalizer."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: the run stops, and its staged files are removed.

    A BaseException (like KeyboardInterrupt) so that no `except Exception` swallows it.
    """

    def __init__(self, signal_name: str):
        self.signal_name = signal_name
        self.kept_in: Path | None = None  # set when the run had already been moved in
        super().__init__(signal_name)


_received: list[str] = []  # signals seen inside signals_as_interrupts, in order


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` inside the block (the default handlers return after).

    Python runs a handler at the next bytecode, which may be inside a ``__del__`` or a GC
    callback, where the exception is printed and dropped, or inside library code that turns
    it into another error (safetensors loading raises a ValueError). The signal is therefore
    also recorded: `raise_if_interrupted` (called from progress output and training steps)
    raises it again, and any error that leaves the block after a signal is reported as the
    interruption it is. An `Interrupted` dropped that way is not printed either (Python would
    print it as "Exception ignored in ... Traceback"): it is recorded, and raised again.
    """

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        _received.append(name)
        raise Interrupted(name)

    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, Interrupted):
            previous_hook(info)

    _received.clear()
    previous = {s: signal.signal(s, handler) for s in _HELD_SIGNALS}
    sys.unraisablehook = unraisable
    try:
        yield
    except Interrupted:
        raise
    except BaseException as exc:
        if _received:
            raise Interrupted(_received[0]) from exc
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        sys.unraisablehook = previous_hook
        _received.clear()


def raise_if_interrupted() -> None:
    """Raise `Interrupted` again if a signal arrived whose exception was swallowed."""
    if _received:
        raise Interrupted(_received[0])


@contextmanager
def signals_held() -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM wait until the block is done, then are delivered as usual. The block
    gets the list of signals held so far, to stop early on its own terms (a LoadGen test: its
    system under test runs inside LoadGen's C++, where no exception may escape).

    Held at the Python level: a handler that only records the signal stands in during the
    block. (Blocking with pthread_sigmask would not do: it masks the main thread only, the
    kernel then hands the signal to another thread, e.g. a tqdm monitor, and Python still
    runs the handler on the main thread, in the middle of the block.)
    """
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in _HELD_SIGNALS}
    try:
        yield pending
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)
