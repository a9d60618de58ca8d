"""A short chaos run (``benchmarks/chaos.py``): real Redis with an AOF, three nodes and
nginx; a node killed with SIGKILL twice and Redis once while clients send. Nothing may be
lost, repeated or reordered. The full run (300 clients, 60 s) is in BENCHMARKS.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_chaos():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("chaos", REPO / "benchmarks" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module
    spec.loader.exec_module(module)
    return module


async def test_a_short_chaos_run_loses_repeats_and_reorders_nothing() -> None:
    chaos = load_chaos()
    options = chaos.parse(["--clients", "24", "--rooms", "4", "--duration", "15",
                           "--interval", "1"])
    counts = await chaos.run(options)
    print(chaos.report(counts, options))
    assert len(counts.events) == 3  # two node kills and a Redis kill happened
    assert counts.sent > 100 and counts.reconnects > 0
    assert counts.received > 0 and counts.expected > 0
    assert not counts.failed, chaos.report(counts, options)
    assert (counts.lost, counts.duplicated, counts.reordered, counts.acked_missing) == (0, 0, 0, 0)
