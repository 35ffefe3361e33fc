"""server/collector.py: full collections freeze what survives them, so the next ones skip
a live room's long-lived state, and sweeps collect the garbage cycles that died frozen. Run
in a child interpreter: garbage collection is process-wide, and pytest's own must stay as
it is."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import gc, json, weakref
    from server import collector
    from server.collector import Collector

    class Node:
        def __init__(self):
            self.me = self  # a reference cycle, like a socket and its handlers

    c = Collector()
    c.install()
    out = {"callback": c._after in gc.callbacks}
    live = [Node() for _ in range(20_000)]  # a room's viewers' state
    gc.collect()  # a full collection: its survivors are frozen by the callback
    out["frozen_after_full"] = gc.get_freeze_count()
    out["tracked_after_full"] = len(gc.get_objects())

    # Viewers leave: their cycles die frozen and wait for a sweep.
    probe = weakref.ref(live[0])
    del live
    gc.collect()
    out["dead_cycle_kept_while_frozen"] = probe() is not None
    for n in range(collector.SWEEP_MIN - 1):
        c.socket_closed(still_open=0)
    out["sweeps_before"] = c.sweeps
    c.socket_closed(still_open=0)
    out["sweeps_after"] = c.sweeps
    out["dead_cycle_collected"] = probe() is None
    out["closed_reset"] = c.closed

    # With many still open, a sweep waits until as many have closed.
    for n in range(1500):
        c.socket_closed(still_open=2000)
    out["no_sweep_while_fewer_closed_than_open"] = c.sweeps == 1
    c.uninstall()
    out["uninstalled"] = c._after not in gc.callbacks and gc.get_freeze_count() == 0
    print(json.dumps(out))
    """
)


def test_full_collections_freeze_survivors_and_sweeps_collect_dead_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    out = json.loads(done.stdout)
    assert out["callback"]
    assert out["frozen_after_full"] > 20_000  # the viewers' objects are out of the collector's way
    assert out["tracked_after_full"] < 1_000
    assert out["dead_cycle_kept_while_frozen"]
    assert (out["sweeps_before"], out["sweeps_after"]) == (0, 1)
    assert out["dead_cycle_collected"] and out["closed_reset"] == 0
    assert out["no_sweep_while_fewer_closed_than_open"]
    assert out["uninstalled"]


def test_a_collector_not_installed_does_nothing() -> None:
    from server.collector import Collector

    c = Collector()
    for _ in range(5000):
        c.socket_closed(still_open=0)
    assert (c.closed, c.sweeps) == (0, 0)
