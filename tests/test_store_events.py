"""The stores' side of the event stream, on ``MemoryStore`` and ``RedisStore`` alike: an
event is added with its change, once, with its holes filled, and never without the change.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio

from core.events import Hole, Numbered, template
from storage.base import Dedupe, DropEvents, Event, Member, Store
from storage.event_log import EventLog, MemoryEventLog
from storage.keys import KeySchema
from storage.memory import MemoryStore
from storage.redis_events import RedisEventLog
from storage.redis_store import RedisStore

ALICE = Member("alice", "Alice")
BOB = Member("bob", "Bob")


@dataclass
class Harness:
    store: Store
    log: EventLog

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        [stream] = await self.log.streams()
        batch = await self.log.read(stream, None, 10_000)
        return [(e.routing_key, json.loads(e.event)) for e in batch.entries]


@pytest_asyncio.fixture(params=["memory", "redis"])
async def harness(
    request: pytest.FixtureRequest, redis_client: redis.asyncio.Redis, key_prefix: str
) -> AsyncIterator[Harness]:
    if request.param == "memory":
        log = MemoryEventLog(1000)
        yield Harness(MemoryStore(10, lambda channel, text: None, log), log)
        return
    keys = KeySchema(key_prefix)
    yield Harness(
        RedisStore(redis_client, keys, 10, events_maxlen=1000), RedisEventLog(redis_client, keys)
    )


def named(label: str) -> Event:
    return template(f"dino.test.x.{label}", [("what", label)])


async def labels(h: Harness) -> list[str]:
    return [event["what"] for _, event in await h.events()]


async def test_events_only_when_the_change_happens(harness: Harness) -> None:
    store = harness.store
    await store.create_room("r1", "one", [ALICE], event=named("create"))
    await store.create_room("r1", "one", [ALICE], event=named("create again"))  # a retry
    await store.register_session("s1", ALICE, "n1", event=named("login"))
    await store.register_session("s2", ALICE, "n1", event=named("login 2"))
    assert await store.join_room("r1", "s1", event=named("join"))
    assert not await store.join_room("r1", "s2", event=named("second session"))
    assert not await store.join_room("nope", "s1", event=named("unknown room"))
    assert not await store.leave_room("r1", "s2", event=named("not last"))
    assert await store.leave_room("r1", "s1", event=named("leave"))
    await store.set_acl("r1", {"city": "Oslo"}, event=named("acl"))
    await store.set_acl("nope", {"city": "Oslo"}, event=named("acl unknown"))
    await store.rename_room("r1", "one", event=named("same name"))
    await store.rename_room("nope", "x", event=named("rename unknown"))
    assert await store.remove_room("nope", "room:nope", event=named("remove unknown")) is None
    assert await store.remove_room("r1", "room:r1", event=named("remove")) is not None
    assert await labels(harness) == [
        "create", "login", "login 2", "join", "leave", "acl", "remove",
    ]  # fmt: skip


async def test_rename_fills_the_old_name(harness: Harness) -> None:
    await harness.store.create_room("r1", "old", [ALICE])
    event = template("dino.room_renamed.room.r1", [("old", Hole("old_name")), ("new", "n\u00e9w")])
    assert await harness.store.rename_room("r1", "n\u00e9w", event=event) == "old"
    ((key, body),) = await harness.events()
    assert key == "dino.room_renamed.room.r1"
    assert body == {"old": "old", "new": "n\u00e9w"}


async def test_append_fills_seq_and_a_retry_adds_nothing(harness: Harness) -> None:
    def message(n: int) -> Event:
        return template("dino.message.room.r", [("n", n), ("seq", Hole("seq"))])

    for n in range(1, 4):
        assert await harness.store.append("room:r", ',"n":1}', event=message(n)) == n
    dedupe = Dedupe("alice\nkey", 60_000)
    first = await harness.store.append_once("room:r", "}", (), dedupe, event=message(4))
    retry = await harness.store.append_once("room:r", "}", (), dedupe, event=message(5))
    assert retry.original is not None and first.seq == retry.seq == 4
    assert [body for _, body in await harness.events()] == [
        {"n": 1, "seq": 1}, {"n": 2, "seq": 2}, {"n": 3, "seq": 3}, {"n": 4, "seq": 4},
    ]  # fmt: skip


async def test_drop_session_adds_a_leave_per_room_then_offline(harness: Harness) -> None:
    store = harness.store
    for room in ("b", "a", "c"):
        await store.create_room(room, room, [])
    await store.register_session("s1", Member("u.1", 'Ü "1"'), "n1")
    await store.register_session("s2", Member("u.1", 'Ü "1"'), "n1")
    for room in ("b", "a", "c"):
        await store.join_room(room, "s1")
    await store.join_room("a", "s2")
    who = [("id", Hole("user_id")), ("name", Hole("user_name"))]
    events = DropEvents(
        leave=template(
            "dino.leave.room.",
            [("id", Numbered("e1", "n")), ("who", who), ("room", Hole("room_id"))],
            routing_hole="room_id",
        ),
        offline=template("dino.offline.user.", [("who", who)], routing_hole="user_id"),
    )
    left = await store.drop_session("s1", events=events)
    assert [room for room, _ in left] == ["b", "c"]  # s2 is still in a
    assert await store.drop_session("s2", events=events) == [("a", Member("u.1", 'Ü "1"'))]
    user = {"id": "u.1", "name": 'Ü "1"'}
    assert await harness.events() == [
        ("dino.leave.room.b", {"id": "e1.1", "who": user, "room": "b"}),
        ("dino.leave.room.c", {"id": "e1.2", "who": user, "room": "c"}),
        ("dino.leave.room.a", {"id": "e1.1", "who": user, "room": "a"}),
        ("dino.offline.user.u.1", {"who": user}),
    ]


async def test_a_standalone_event(harness: Harness) -> None:
    await harness.store.add_event(named("kick"))
    assert await harness.events() == [("dino.test.x.kick", {"what": "kick"})]
