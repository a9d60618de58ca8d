"""A short run of the event stream drill (``benchmarks/events_drill.py``): real Redis, two
``run.py`` nodes forwarding to a throwaway RabbitMQ; kill -9 of the forwarding node, then
kill -9 and restart of RabbitMQ, while messages flow. Every acknowledged message reaches
the consumer at least once, each log in order; duplicates are reported, not failed."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from benchmarks.events_drill import drill


async def test_no_event_lost_across_a_node_kill_and_a_broker_restart() -> None:
    # Bounded, so that a broker that never comes back fails the test instead of hanging.
    report = await asyncio.wait_for(drill(messages=240, rate=30.0, log=False), 400)
    print(f"\nevents drill: {asdict(report)}")
    assert report.notes == []
    assert report.missing == 0
    assert report.order_violations == 0
    assert report.logs == 2  # the room and the direct conversation
    # The survivor purged the killed node's user: its events reached the consumer too.
    assert sorted(set(report.purge_events)) == ["leave", "offline"]
    # RabbitMQ down did not stop the chat: every send to a live node was acknowledged.
    assert report.acknowledged >= 240 - 1
