"""Progress lines on stderr for long work, throttled so they cost nothing measurable."""

from __future__ import annotations

import sys
import time

from hf_cost.interrupts import raise_if_interrupted


class Progress:
    def __init__(self, enabled: bool = True, every_s: float = 2.0):
        self.enabled = enabled
        self.every_s = every_s
        self._next = 0.0

    def say(self, message: str) -> None:
        raise_if_interrupted()
        if self.enabled:
            print(message, file=sys.stderr, flush=True)

    def tick(self, message_fn) -> None:  # type: ignore[no-untyped-def]
        """Print ``message_fn()`` at most once per ``every_s``; call it from hot loops."""
        raise_if_interrupted()
        if not self.enabled:
            return
        now = time.perf_counter()
        if now >= self._next:
            self._next = now + self.every_s
            print("  " + message_fn(), file=sys.stderr, flush=True)

    def reset(self) -> None:
        self._next = time.perf_counter() + self.every_s
