"""The forwarder over both event logs (memory, and real Redis): resume after the last
confirmed event, one active forwarder per sink, a sink that goes down and comes back, and
events trimmed before they could be forwarded (counted, not silently lost).

The sink here is a small in-test ``Sink`` that records batches and can be switched off:
the sink's own protocol, not a stand-in for RabbitMQ (tests/test_events_amqp.py and the
drill use the real broker).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import pytest
import pytest_asyncio
import redis.asyncio

from core.events import template
from server.forwarder import Forwarder, SinkUnavailable
from storage.base import Event, Store
from storage.event_log import EventLog, MemoryEventLog, StreamEntry
from storage.keys import KeySchema
from storage.memory import MemoryStore
from storage.redis_events import RedisEventLog
from storage.redis_store import RedisStore

TIMEOUT = 10.0


class RecordingSink:
    name = "test"

    def __init__(self) -> None:
        self.events: list[int] = []  # the "n" of each event, in delivery order
        self.down = False

    async def publish(self, entries: Sequence[StreamEntry]) -> None:
        if self.down:
            raise SinkUnavailable("test sink is down")
        self.events += [json.loads(e.event)["n"] for e in entries]

    async def close(self) -> None:
        pass


@dataclass
class Stream:
    store: Store
    log: EventLog


MakeStream = Callable[[int], Stream]


def numbered(n: int) -> Event:
    return template(f"dino.test.n.{n}", [("n", n)])


async def add(stream: Stream, first: int, last: int) -> None:
    for n in range(first, last + 1):
        await stream.store.add_event(numbered(n))


async def until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture(params=["memory", "redis"])
async def make_stream(
    request: pytest.FixtureRequest, redis_url: str, key_prefix: str
) -> AsyncIterator[MakeStream]:
    """``make_stream(maxlen)``: a store writing events and the log reading them."""
    clients: list[redis.asyncio.Redis] = []

    def make(maxlen: int) -> Stream:
        if request.param == "memory":
            log = MemoryEventLog(maxlen)
            return Stream(MemoryStore(10, lambda channel, text: None, log), log)
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        clients.append(client)
        keys = KeySchema(key_prefix)
        return Stream(
            RedisStore(client, keys, 10, events_maxlen=maxlen), RedisEventLog(client, keys)
        )

    yield make
    for client in clients:
        keys = [k async for k in client.scan_iter(match=key_prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def forwarder(
    stream: Stream, sink: RecordingSink, holder: str, maxlen: int, lease_ttl: float = 1.0
) -> Forwarder:
    return Forwarder(stream.log, sink, holder, lease_ttl=lease_ttl, maxlen=maxlen, batch=50)


async def test_forwards_in_order_and_resumes_after_the_last_confirmed(
    make_stream: MakeStream,
) -> None:
    stream = make_stream(10_000)
    sink = RecordingSink()
    first = forwarder(stream, sink, "node-a", 10_000)
    await add(stream, 1, 120)
    first.start()
    await until(lambda: len(sink.events) >= 120, "the first 120 events")
    await first.stop()
    await add(stream, 121, 200)
    # A new forwarder (another node, or this one restarted) starts after event 120.
    second = forwarder(stream, sink, "node-b", 10_000)
    second.start()
    await until(lambda: len(sink.events) >= 200, "all 200 events")
    await second.stop()
    assert sink.events == list(range(1, 201))
    assert first.stats.forwarded + second.stats.forwarded == 200


async def test_one_forwarder_at_a_time_and_takeover(make_stream: MakeStream) -> None:
    stream = make_stream(10_000)
    sink = RecordingSink()
    # A generous lease: a loaded machine must not make node-a miss a renewal here.
    a = forwarder(stream, sink, "node-a", 10_000, lease_ttl=3.0)
    b = forwarder(stream, sink, "node-b", 10_000, lease_ttl=3.0)
    a.start()
    await until(lambda: a.stats.active, "node-a to take the lease")
    b.start()
    await add(stream, 1, 50)
    await until(lambda: len(sink.events) >= 50, "50 events")
    assert a.stats.active and not b.stats.active
    assert b.stats.forwarded == 0
    # node-a dies without releasing: node-b takes over once the lease (3 s) ran out.
    assert a._task is not None
    a._task.cancel()
    await add(stream, 51, 80)
    await until(lambda: b.stats.active and len(sink.events) >= 80, "node-b to take over")
    await b.stop()
    # At least once, in order: a duplicate can only repeat a batch node-a had not committed.
    seen = list(dict.fromkeys(sink.events))
    assert seen == list(range(1, 81))


async def test_sink_down_then_back_catches_up(make_stream: MakeStream) -> None:
    stream = make_stream(10_000)
    sink = RecordingSink()
    sink.down = True
    fwd = forwarder(stream, sink, "node-a", 10_000)
    fwd.start()
    await add(stream, 1, 300)
    await until(lambda: fwd.stats.sink_down and fwd.stats.backlog == 300, "a backlog of 300")
    sink.down = False
    await until(lambda: len(sink.events) >= 300, "catching up")
    await until(lambda: not fwd.stats.sink_down, "the sink to be seen back")
    await fwd.stop()
    assert sink.events == list(range(1, 301))


async def test_events_trimmed_before_forwarding_are_counted(
    make_stream: MakeStream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    maxlen = 100
    stream = make_stream(maxlen)
    sink = RecordingSink()
    fwd = forwarder(stream, sink, "node-a", maxlen)
    fwd.start()
    await add(stream, 1, 10)
    await until(lambda: len(sink.events) >= 10, "the first 10 events")
    sink.down = True
    await add(stream, 11, 1010)  # far more than the stream keeps
    sink.down = False
    await until(lambda: sink.events[-1:] == [1010], "the newest event")
    await fwd.stop()
    lost = fwd.stats.trimmed_before_forwarding
    assert lost > 0
    # Nothing is lost silently: every event was either forwarded or counted as trimmed.
    assert len(sink.events) + lost == 1010
    assert sink.events == sorted(sink.events)
    assert "trimmed from the stream before they reached test" in caplog.text
