"""Grouped calls: the first call runs at once, calls that arrive meanwhile share the next
round, each caller gets its own result or error, and a cancelled caller is left out."""

from __future__ import annotations

import asyncio

import pytest

from server.services.batching import Grouped


async def test_calls_arriving_during_a_round_share_the_next() -> None:
    rounds: list[tuple[str, list[int]]] = []
    release = asyncio.Event()

    async def run(key: str, items: list[int]) -> list[int | Exception]:
        rounds.append((key, items))
        await release.wait()
        return [n * 10 if n >= 0 else ValueError(f"negative {n}") for n in items]

    grouped: Grouped[str, int, int] = Grouped(run, limit=3)
    first = asyncio.create_task(grouped("a", 1))
    await asyncio.sleep(0)
    later = [asyncio.create_task(grouped("a", n)) for n in (2, -3, 4, 5)]
    other = asyncio.create_task(grouped("b", 6))
    await asyncio.sleep(0)
    release.set()
    assert await first == 10
    results = await asyncio.gather(*later, return_exceptions=True)
    assert results[0] == 20 and results[2:] == [40, 50]
    assert isinstance(results[1], ValueError) and str(results[1]) == "negative -3"
    assert await other == 60
    assert rounds == [("a", [1]), ("b", [6]), ("a", [2, -3, 4]), ("a", [5])]
    assert grouped.rounds == 4 and not grouped._runners and not grouped._waiting


async def test_a_failed_round_fails_its_callers_and_the_next_round_runs() -> None:
    calls = 0

    async def run(key: str, items: list[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise RuntimeError("database went away")
        return list(items)

    grouped: Grouped[str, int, int] = Grouped(run)
    first = asyncio.create_task(grouped("k", 1))
    await asyncio.sleep(0)
    second = asyncio.create_task(grouped("k", 2))
    with pytest.raises(RuntimeError, match="database went away"):
        await first
    assert await second == 2


async def test_a_cancelled_caller_is_left_out_of_its_round() -> None:
    seen: list[list[int]] = []
    release = asyncio.Event()

    async def run(key: str, items: list[int]) -> list[int | Exception]:
        seen.append(items)
        await release.wait()
        return list(items)

    grouped: Grouped[str, int, int] = Grouped(run)
    first = asyncio.create_task(grouped("k", 1))
    await asyncio.sleep(0)
    gone, kept = asyncio.create_task(grouped("k", 2)), asyncio.create_task(grouped("k", 3))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await first == 1 and await kept == 3
    assert seen == [[1], [3]]


async def test_aclose_stops_a_round_in_progress_and_its_callers() -> None:
    started = asyncio.Event()

    async def run(key: str, items: list[int]) -> list[int | Exception]:
        started.set()
        await asyncio.sleep(60)  # a database that does not answer
        return list(items)

    grouped: Grouped[str, int, int] = Grouped(run)
    caller = asyncio.create_task(grouped("k", 1))
    await started.wait()
    waiting = asyncio.create_task(grouped("k", 2))
    await asyncio.sleep(0)
    await asyncio.wait_for(grouped.aclose(), 1)
    for task in (caller, waiting):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not grouped._runners and not grouped._waiting
