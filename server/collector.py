"""Garbage collection for a server that holds thousands of long-lived connections.

CPython's full collection walks every tracked object. In `showroom serve` most of them are
long-lived: what importing and building the app made, and each connected viewer's state
(sockets, sessions, room members). With 5,000 viewers a full collection took 45-100 ms on
the bench machine, a pause every viewer's next frame waits for, and the room, at 85-90%
of its core, then needs most of a second to catch up.

So what survives a full collection is frozen (`gc.freeze`): later collections skip it.
Frozen objects are still freed by reference counting when nothing refers to them; only
garbage *cycles* among them wait, until a sweep unfreezes everything and collects once.
A sweep runs when as many sockets have closed since the last one as are open now (at
least SWEEP_MIN), so frozen garbage stays within about the size of the live state, and
the pause comes while a room is emptying rather than while it is full.
"""

from __future__ import annotations

import gc
from typing import Any

SWEEP_MIN = 1000  # sockets closed before a sweep, however few are open


class Collector:
    def __init__(self) -> None:
        self.installed = False
        self.closed = 0  # sockets closed since the last sweep
        self.sweeps = 0
        self._sweeping = False

    def install(self) -> None:
        """Freeze what exists now (the imported modules and the built app) and every full
        collection's survivors from now on. For `showroom serve`, not for tests."""
        gc.collect()
        gc.freeze()
        if not self.installed:
            gc.callbacks.append(self._after)
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            gc.callbacks.remove(self._after)
            self.installed = False
        gc.unfreeze()

    def _after(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2 and not self._sweeping:
            gc.freeze()

    def socket_closed(self, still_open: int) -> None:
        """A live socket closed (`still_open` remain): sweep once enough have."""
        if not self.installed:
            return
        self.closed += 1
        if self.closed >= max(SWEEP_MIN, still_open):
            self.sweep()

    def sweep(self) -> None:
        """Collect the garbage cycles that died frozen: one full collection of everything,
        then freeze the survivors again."""
        self._sweeping = True
        try:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        finally:
            self._sweeping = False
        self.closed = 0
        self.sweeps += 1


COLLECTOR = Collector()  # the process's (garbage collection is process-wide)
