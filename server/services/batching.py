"""Group calls that arrive together into one database round: the first call of a key starts
a round at once; calls that arrive while it runs share the next round. Under a burst (a
thousand viewers joining the same show in a few seconds) that is a handful of transactions
instead of a thousand; alone, a call waits for nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

# One round's work: for each item, its result or the exception to raise for that item alone.
Round = Callable[[K, list[T]], Awaitable[list[R | Exception]]]


class Grouped(Generic[K, T, R]):
    def __init__(self, run: Round[K, T, R], *, limit: int = 500) -> None:
        self._run = run
        self.limit = limit  # items per round
        self.rounds = 0
        self._waiting: dict[K, list[tuple[T, asyncio.Future[R]]]] = {}
        self._runners: dict[K, asyncio.Task[None]] = {}

    async def __call__(self, key: K, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((item, done))
        if key not in self._runners:
            self._runners[key] = asyncio.create_task(self._rounds(key))
        return await done

    async def aclose(self) -> None:
        """Stop the rounds in progress (at shutdown); their callers are cancelled."""
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    async def _rounds(self, key: K) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while waiting := self._waiting.get(key):
                batch, self._waiting[key] = waiting[: self.limit], waiting[self.limit :]
                batch = [(item, done) for item, done in batch if not done.cancelled()]
                if not batch:
                    continue
                try:
                    results = await self._run(key, [item for item, _ in batch])
                except Exception as exc:  # the whole round failed: every caller hears of it
                    results = [exc] * len(batch)
                self.rounds += 1
                for (_, done), result in zip(batch, results, strict=True):
                    if done.done():
                        continue
                    if isinstance(result, Exception):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
        finally:  # normally nothing is left; when cancelled (shutdown), no caller hangs
            for _, done in batch + self._waiting.pop(key, []):
                done.cancel()
            self._runners.pop(key, None)
