"""The ``Store`` contract, run against ``MemoryStore`` and ``RedisStore`` alike.

Every test taking ``store`` or ``harness`` runs once per store, so a behaviour the
server relies on cannot hold for one store only. Tests at the end cover what only
``RedisStore`` has: several nodes on one Redis, bytes replies, a lost server, key hygiene.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol
from uuid import uuid4

import pytest
import pytest_asyncio
import redis.asyncio
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from storage.base import (
    Dedupe,
    Fanout,
    LogHead,
    Member,
    Position,
    RoomNameTaken,
    RoomSummary,
    Store,
    StoreUnavailable,
)
from storage.keys import NOT_KEYS, KeySchema, hash_tag, key_schema_table
from storage.memory import MemoryStore
from storage.redis_store import RedisStore
from tests.redis_cluster_fixture import cluster_client_under
from tests.redis_fixture import free_port, redis_client_under

HISTORY_SIZE = 20

ALICE = Member("alice", "Alice")
BOB = Member("bob", "Bob")
CAROL = Member("carol", "Carol")


# -- harness: a store plus a way to hear its fanout ----------------------------------------


class Inbox(Protocol):
    async def take(self, count: int, timeout: float = 5.0) -> list[str]:
        """Up to ``count`` published texts, in arrival order; fewer if ``timeout`` ends."""
        ...


class QueueInbox:
    """Collects what ``MemoryStore`` hands to its publish callback for one channel."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def take(self, count: int, timeout: float = 5.0) -> list[str]:
        received: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                while len(received) < count:
                    received.append(await self.queue.get())
        except TimeoutError:
            pass
        return received


class PubSubInbox:
    """A real Redis subscription, the way a node hears another node's appends."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub

    async def take(self, count: int, timeout: float = 5.0) -> list[str]:
        received: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(received) < count and (remaining := deadline - loop.time()) > 0:
            message = await self.pubsub.get_message(
                ignore_subscribe_messages=True, timeout=remaining
            )
            if message is not None:
                received.append(message["data"])
        return received


class Harness(Protocol):
    store: Store

    async def listen(self, channel: str) -> Inbox:
        """Start receiving ``channel``; everything published afterwards arrives."""
        ...

    async def close(self) -> None: ...


class MemoryHarness:
    def __init__(self) -> None:
        self._inboxes: dict[str, QueueInbox] = {}
        self.store: Store = MemoryStore(HISTORY_SIZE, self._publish)

    def _publish(self, channel: str, text: str) -> None:
        inbox = self._inboxes.get(channel)
        if inbox is not None:
            inbox.queue.put_nowait(text)

    async def listen(self, channel: str) -> Inbox:
        return self._inboxes.setdefault(channel, QueueInbox())

    async def close(self) -> None:
        await self.store.close()


class RedisHarness:
    def __init__(self, client: redis.asyncio.Redis, keys: KeySchema) -> None:
        self._client = client
        self._keys = keys
        self._pubsubs: list[PubSub] = []
        self.store: Store = RedisStore(client, keys, HISTORY_SIZE)

    async def listen(self, channel: str) -> Inbox:
        pubsub = self._client.pubsub()
        self._pubsubs.append(pubsub)
        await pubsub.subscribe(self._keys.channel(channel))
        # Redis confirms a subscription once it is active; only then is a publish
        # guaranteed to reach us.
        while (await pubsub.get_message(timeout=5.0) or {}).get("type") != "subscribe":
            pass
        return PubSubInbox(pubsub)

    async def close(self) -> None:
        for pubsub in self._pubsubs:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
        await self.store.close()


class ClusterHarness:
    """A store on the test Redis Cluster; listening is SSUBSCRIBE on the channel's master,
    the way a node's sharded broker hears appends."""

    def __init__(self, client: RedisCluster, keys: KeySchema) -> None:
        self._client = client
        self._keys = keys
        self._subscribers: list[tuple[redis.asyncio.Redis, PubSub]] = []
        self.store: Store = RedisStore(client, keys, HISTORY_SIZE)

    async def listen(self, channel: str) -> Inbox:
        name = self._keys.channel(channel)
        master = self._client.get_node_from_key(name)
        assert master is not None
        subscriber = redis.asyncio.Redis(
            host=master.host, port=int(master.port), decode_responses=True
        )
        pubsub = subscriber.pubsub()
        self._subscribers.append((subscriber, pubsub))
        await pubsub.ssubscribe(name)
        while (await pubsub.get_message(timeout=5.0) or {}).get("type") != "ssubscribe":
            pass
        return PubSubInbox(pubsub)

    async def close(self) -> None:
        for subscriber, pubsub in self._subscribers:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            await subscriber.aclose()
        await self.store.close()


@pytest_asyncio.fixture(params=["memory", "redis", "cluster"])
async def harness(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Harness]:
    if request.param == "memory":
        memory = MemoryHarness()
        yield memory
        await memory.close()
        return
    if request.param == "cluster":
        nodes: str = request.getfixturevalue("redis_cluster").nodes
        async with cluster_client_under(nodes, key_prefix) as cluster:
            on_cluster = ClusterHarness(cluster, KeySchema(key_prefix))
            try:
                yield on_cluster
            finally:
                await on_cluster.close()
        return
    # Looked up lazily so that the memory half does not need a Redis server.
    url: str = request.getfixturevalue("redis_url")
    async with redis_client_under(url, key_prefix) as client:
        on_redis = RedisHarness(client, KeySchema(key_prefix))
        try:
            yield on_redis
        finally:
            await on_redis.close()


@pytest.fixture
def store(harness: Harness) -> Store:
    return harness.store


# -- helpers ------------------------------------------------------------------------------


async def new_room(store: Store, name: str = "lobby", owner: Member = ALICE) -> str:
    room_id = uuid4().hex
    await store.create_room(room_id, name, [owner])
    return room_id


async def joined(store: Store, room_id: str, sid: str, member: Member) -> bool:
    """Register ``sid`` for ``member`` on node n1 and join it to the room."""
    await store.register_session(sid, member, "n1")
    return await store.join_room(room_id, sid)


def text_tail(text: str) -> str:
    """An ``entry_tail``: the rest of a JSON object after its seq."""
    return ',"text":' + json.dumps(text) + "}"


def seq_of(entry: str) -> int:
    seq: int = json.loads(entry)["seq"]
    return seq


async def append_many(store: Store, log: str, count: int) -> list[int]:
    return [await store.append(log, text_tail(f"m{i}")) for i in range(count)]


async def seqs(
    store: Store,
    log: str,
    *,
    before: int | None = None,
    since: int | None = None,
    limit: int = 100,
) -> list[int]:
    entries = await store.history(log, before=before, since=since, limit=limit)
    return [seq_of(entry) for entry in entries]


# -- rooms ----------------------------------------------------------------------------------


async def test_create_get_and_list_rooms(store: Store) -> None:
    room = await store.create_room("r1", "zoo", [ALICE])
    assert (room.id, room.name, dict(room.owners), dict(room.acl)) == (
        "r1",
        "zoo",
        {"alice": "Alice"},
        {},
    )
    await store.create_room("r2", "aquarium", [BOB])
    fetched = await store.get_room("r1")
    assert fetched is not None
    assert (fetched.name, dict(fetched.owners), dict(fetched.acl)) == (
        "zoo",
        {"alice": "Alice"},
        {},
    )
    assert await store.get_room("nope") is None

    await joined(store, "r1", "s1", ALICE)
    await joined(store, "r1", "s2", ALICE)  # a second session is not a second member
    await joined(store, "r1", "s3", BOB)
    assert await store.list_rooms() == [
        RoomSummary("r2", "aquarium", 0),
        RoomSummary("r1", "zoo", 2),
    ]


async def test_list_rooms_empty(store: Store) -> None:
    assert await store.list_rooms() == []


async def test_duplicate_name_raises(store: Store) -> None:
    await store.create_room("r1", "lobby", [ALICE])
    with pytest.raises(RoomNameTaken):
        await store.create_room("r2", "lobby", [BOB])
    assert await store.get_room("r2") is None
    await store.create_room("r3", "Lobby", [BOB])  # names compare case-sensitively
    assert [r.name for r in await store.list_rooms()] == ["Lobby", "lobby"]


async def test_create_retried_after_a_lost_reply_succeeds(store: Store) -> None:
    first = await store.create_room("r1", "lobby", [ALICE])
    assert await store.create_room("r1", "lobby", [ALICE]) == first
    with pytest.raises(RoomNameTaken):
        await store.create_room("r1", "lobby", [BOB])  # not a retry: another owner
    with pytest.raises(ValueError, match="in use"):
        await store.create_room("r1", "other name", [ALICE])


async def test_concurrent_creates_of_one_name_exactly_one_wins(store: Store) -> None:
    results = await asyncio.gather(
        *(store.create_room(f"r{i}", "contested", [ALICE]) for i in range(20)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(e, RoomNameTaken) for e in losers), losers
    assert await store.list_rooms() == [RoomSummary(winners[0].id, "contested", 0)]


async def test_set_acl_replaces_and_clears(store: Store) -> None:
    room_id = await new_room(store)
    await store.set_acl(room_id, {"age": "18:", "city": "Berlin"})
    room = await store.get_room(room_id)
    assert room is not None and dict(room.acl) == {"age": "18:", "city": "Berlin"}

    await store.set_acl(room_id, {"gender": "f"})  # replaces, does not merge
    room = await store.get_room(room_id)
    assert room is not None and dict(room.acl) == {"gender": "f"}

    await store.set_acl(room_id, {})
    room = await store.get_room(room_id)
    assert room is not None and dict(room.acl) == {}


async def test_set_acl_on_unknown_room_creates_nothing(store: Store) -> None:
    await store.set_acl("ghost", {"age": "18:"})
    assert await store.get_room("ghost") is None


# -- presence -------------------------------------------------------------------------------


async def test_first_and_last_session_of_a_user(store: Store) -> None:
    room_id = await new_room(store)
    assert await joined(store, room_id, "a1", ALICE) is True  # Alice arrives
    assert await joined(store, room_id, "a2", ALICE) is False  # her second tab
    assert await joined(store, room_id, "b1", BOB) is True
    assert await store.room_members(room_id) == [ALICE, BOB]

    assert await store.leave_room(room_id, "a1") is False  # a2 keeps her in
    assert await store.room_members(room_id) == [ALICE, BOB]
    assert await store.leave_room(room_id, "a2") is True  # now she is gone
    assert await store.leave_room(room_id, "a2") is False  # not in the room any more
    assert await store.room_members(room_id) == [BOB]
    assert await store.leave_room(room_id, "b1") is True
    assert await store.room_members(room_id) == []
    assert (await store.list_rooms())[0].members == 0


async def test_join_is_idempotent(store: Store) -> None:
    room_id = await new_room(store)
    assert await joined(store, room_id, "a1", ALICE) is True
    assert await store.join_room(room_id, "a1") is False
    # The second join did not count twice: one leave takes Alice out.
    assert await store.leave_room(room_id, "a1") is True
    assert await store.room_members(room_id) == []


async def test_join_needs_a_registered_session_and_an_existing_room(store: Store) -> None:
    room_id = await new_room(store)
    assert await store.join_room(room_id, "unregistered") is False
    assert await store.room_members(room_id) == []

    await store.register_session("a1", ALICE, "n1")
    assert await store.join_room("ghost", "a1") is False
    assert await store.room_members("ghost") == []
    assert [r.id for r in await store.list_rooms()] == [room_id]


async def test_leave_unknown_room_or_session(store: Store) -> None:
    room_id = await new_room(store)
    assert await store.leave_room(room_id, "nobody") is False
    assert await store.leave_room("ghost", "nobody") is False


async def test_room_members_sorted_by_id(store: Store) -> None:
    room_id = await new_room(store)
    for sid, member in [("s1", CAROL), ("s2", ALICE), ("s3", BOB)]:
        await joined(store, room_id, sid, member)
    assert await store.room_members(room_id) == [ALICE, BOB, CAROL]
    assert await store.room_members("ghost") == []


async def test_drop_session_returns_rooms_fully_left(store: Store) -> None:
    r1 = await new_room(store, "one")
    r2 = await new_room(store, "two")
    r3 = await new_room(store, "three")
    await joined(store, r1, "a1", ALICE)
    await joined(store, r2, "a1", ALICE)
    await joined(store, r3, "a1", ALICE)
    await joined(store, r2, "a2", ALICE)  # keeps Alice in r2
    await joined(store, r1, "b1", BOB)

    left = await store.drop_session("a1")
    assert left == sorted([(r1, ALICE), (r3, ALICE)])
    assert await store.room_members(r1) == [BOB]
    assert await store.room_members(r2) == [ALICE]
    assert await store.room_members(r3) == []
    assert await store.drop_session("a1") == []  # idempotent
    assert await store.drop_session("never-registered") == []
    assert await store.join_room(r1, "a1") is False  # a dropped session cannot rejoin
    assert await store.node_sessions("n1") == ["a2", "b1"]


async def test_drop_session_outside_rooms(store: Store) -> None:
    await store.register_session("a1", ALICE, "n1")
    assert await store.drop_session("a1") == []
    assert await store.node_sessions("n1") == []


async def test_node_sessions(store: Store) -> None:
    assert await store.node_sessions("n1") == []
    await store.register_session("s2", BOB, "n1")
    await store.register_session("s1", ALICE, "n1")
    await store.register_session("s3", CAROL, "n2")
    assert await store.node_sessions("n1") == ["s1", "s2"]
    assert await store.node_sessions("n2") == ["s3"]

    await store.register_session("s3", CAROL, "n1")  # registering again moves it
    assert await store.node_sessions("n1") == ["s1", "s2", "s3"]
    assert await store.node_sessions("n2") == []


# -- node leases ----------------------------------------------------------------------------


async def test_lease_expires_and_renewal_revives(store: Store) -> None:
    await store.renew_lease("short", 50)
    await store.renew_lease("long", 60_000)
    assert await store.expired_nodes() == []
    await asyncio.sleep(0.15)
    assert await store.expired_nodes() == ["short"]
    await store.renew_lease("short", 60_000)
    assert await store.expired_nodes() == []


async def test_live_nodes_are_those_with_a_running_lease(store: Store) -> None:
    assert await store.live_nodes() == []
    await store.renew_lease("short", 50)
    await store.renew_lease("long", 60_000)
    assert await store.live_nodes() == ["long", "short"]
    await asyncio.sleep(0.15)
    assert await store.live_nodes() == ["long"]
    await store.forget_node("long")  # a goodbye: gone at once, not after the lease
    assert await store.live_nodes() == []


async def test_node_stats_are_replaced_and_forgotten_with_the_node(store: Store) -> None:
    assert await store.node_stats(["a", "b"]) == {}
    await store.put_node_stats("a", '{"sessions": 1}')
    await store.put_node_stats("a", '{"sessions": 2}')
    await store.put_node_stats("b", "{}")
    assert await store.node_stats(["a", "b", "c"]) == {"a": '{"sessions": 2}', "b": "{}"}
    assert await store.node_stats([]) == {}
    await store.forget_node("a")
    assert await store.node_stats(["a", "b"]) == {"b": "{}"}


async def test_registering_again_renames_the_user_in_its_rooms(store: Store) -> None:
    room_id = await new_room(store)
    await store.register_session("s1", ALICE, "node-a")
    await store.join_room(room_id, "s1")
    await store.register_session("s1", Member(ALICE.id, "Alice II"), "node-a")
    assert await store.room_members(room_id) == [Member(ALICE.id, "Alice II")]


async def test_renewal_tells_whether_the_node_was_registered(store: Store) -> None:
    assert await store.renew_lease("n", 60_000) is False  # first start
    assert await store.renew_lease("n", 60_000) is True
    await store.forget_node("n")  # peers purged it as dead
    assert await store.renew_lease("n", 60_000) is False


async def test_forget_node(store: Store) -> None:
    await store.renew_lease("dead", 1)
    await asyncio.sleep(0.05)
    assert await store.expired_nodes() == ["dead"]
    await store.forget_node("dead")
    assert await store.expired_nodes() == []
    await store.forget_node("dead")  # idempotent


async def test_claim_node_cleanup_once_per_window(store: Store) -> None:
    claims = await asyncio.gather(*(store.claim_node_cleanup("dead", 200) for _ in range(10)))
    assert claims.count(True) == 1
    assert await store.claim_node_cleanup("other", 200) is True  # per node
    await asyncio.sleep(0.3)
    assert await store.claim_node_cleanup("dead", 200) is True  # the window ended


# -- message logs ---------------------------------------------------------------------------


async def test_append_numbers_from_one_by_one_per_log(store: Store) -> None:
    assert await append_many(store, "room:a", 5) == [1, 2, 3, 4, 5]
    assert await append_many(store, "room:b", 2) == [1, 2]
    assert await store.append("room:a", "}") == 6


async def test_entries_are_json_with_their_seq(store: Store) -> None:
    await store.append("log", ',"text":"héllo \\"quoted\\"","n":[1,2]}')
    await store.append("log", "}")
    entries = await store.history("log", before=None, since=None, limit=10)
    [head] = await store.log_heads(["log"])
    assert head.epoch
    assert [json.loads(e) for e in entries] == [
        {"seq": 1, "epoch": head.epoch, "text": 'héllo "quoted"', "n": [1, 2]},
        {"seq": 2, "epoch": head.epoch},
    ]


async def test_append_rejects_a_tail_that_is_not_the_rest_of_an_object(store: Store) -> None:
    with pytest.raises(ValueError, match="entry_tail"):
        await store.append("log", '"text":"x"}', None)
    assert await store.history("log", before=None, since=None, limit=10) == []


async def test_log_keeps_the_newest_history_size_entries(store: Store) -> None:
    await append_many(store, "log", HISTORY_SIZE + 5)
    assert await seqs(store, "log") == list(range(6, HISTORY_SIZE + 6))
    assert await store.append("log", "}") == HISTORY_SIZE + 6  # seq survives trimming


async def test_history_newest_first_page_and_before(store: Store) -> None:
    await append_many(store, "log", 10)
    assert await seqs(store, "log", limit=3) == [8, 9, 10]
    assert await seqs(store, "log", before=5, limit=3) == [2, 3, 4]
    assert await seqs(store, "log", before=3, limit=10) == [1, 2]
    assert await seqs(store, "log", before=1, limit=10) == []
    assert await seqs(store, "log", before=99, limit=2) == [9, 10]


async def test_history_since(store: Store) -> None:
    await append_many(store, "log", 10)
    assert await seqs(store, "log", since=2, limit=3) == [3, 4, 5]
    assert await seqs(store, "log", since=7, limit=10) == [8, 9, 10]
    assert await seqs(store, "log", since=0, limit=2) == [1, 2]
    assert await seqs(store, "log", since=10, limit=10) == []
    assert await seqs(store, "log", since=2, before=6, limit=10) == [3, 4, 5]


async def test_history_since_older_than_the_log_starts_at_the_oldest_kept(store: Store) -> None:
    await append_many(store, "log", HISTORY_SIZE + 5)
    assert await seqs(store, "log", since=1, limit=3) == [6, 7, 8]


async def test_history_edge_cases(store: Store) -> None:
    assert await store.history("unknown", before=None, since=None, limit=10) == []
    await append_many(store, "log", 3)
    assert await store.history("log", before=None, since=None, limit=0) == []
    assert await store.history("log", before=None, since=1, limit=0) == []


# -- fanout ---------------------------------------------------------------------------------


async def test_append_publishes_head_entry_tail(harness: Harness) -> None:
    inbox = await harness.listen("room:a")
    fanout = Fanout("room:a", 'sid\n42["message",', "]")
    seq = await harness.store.append("room:a", text_tail("hello"), [fanout])
    [entry] = await harness.store.history("room:a", before=None, since=None, limit=1)
    assert seq_of(entry) == seq
    assert await inbox.take(1) == ['sid\n42["message",' + entry + "]"]


async def test_append_publishes_on_every_fanout(harness: Harness) -> None:
    first, second = await harness.listen("user:a"), await harness.listen("user:b")
    seq = await harness.store.append(
        "dm:a:b", text_tail("hi"), [Fanout("user:a", "A", ""), Fanout("user:b", "B", "")]
    )
    [entry] = await harness.store.history("dm:a:b", before=None, since=None, limit=1)
    assert seq_of(entry) == seq
    assert await first.take(1) == ["A" + entry]
    assert await second.take(1) == ["B" + entry]


async def test_append_without_fanout_publishes_nothing(harness: Harness) -> None:
    inbox = await harness.listen("room:a")
    await harness.store.append("room:a", "}")
    assert await inbox.take(1, timeout=0.2) == []


async def test_concurrent_appends_arrive_in_seq_order(harness: Harness) -> None:
    inbox = await harness.listen("room:a")
    fanout = Fanout("room:a", "[", "]")
    appended = await asyncio.gather(
        *(harness.store.append("room:a", text_tail(f"m{i}"), [fanout]) for i in range(50))
    )
    assert sorted(appended) == list(range(1, 51))
    received = await inbox.take(50)
    assert [json.loads(text)[0]["seq"] for text in received] == list(range(1, 51))


# -- rooms made, renamed and removed by the backend ------------------------------------------


async def test_create_with_several_owners_and_an_acl(store: Store) -> None:
    room = await store.create_room("r1", "club", [ALICE, BOB], {"age": "18:"})
    assert (dict(room.owners), dict(room.acl)) == ({"alice": "Alice", "bob": "Bob"}, {"age": "18:"})
    fetched = await store.get_room("r1")
    assert fetched is not None
    assert (dict(fetched.owners), dict(fetched.acl)) == (dict(room.owners), dict(room.acl))


async def test_create_without_owners_and_its_retry(store: Store) -> None:
    room = await store.create_room("r1", "announcements", [])
    assert dict(room.owners) == {}
    assert await store.create_room("r1", "announcements", []) == room
    with pytest.raises(RoomNameTaken):
        await store.create_room("r2", "announcements", [])


async def test_rename_room(store: Store) -> None:
    await store.create_room("r1", "lobby", [ALICE])
    await store.create_room("r2", "hall", [BOB])
    assert await store.rename_room("r1", "foyer") == "lobby"
    room = await store.get_room("r1")
    assert room is not None and room.name == "foyer"
    assert [r.name for r in await store.list_rooms()] == ["foyer", "hall"]
    with pytest.raises(RoomNameTaken):
        await store.rename_room("r1", "hall")
    assert await store.rename_room("r1", "foyer") == "foyer"  # the same name: no change
    assert await store.rename_room("nope", "x") is None
    await store.create_room("r3", "lobby", [CAROL])  # the old name is free again


async def test_remove_room_takes_presence_and_log_with_it(store: Store) -> None:
    room_id = await new_room(store, "doomed")
    other = await new_room(store, "stays")
    await joined(store, room_id, "s1", ALICE)
    await joined(store, other, "s1", ALICE)
    await joined(store, room_id, "s2", BOB)
    await append_many(store, "room:" + room_id, 3)
    removed = await store.remove_room(room_id, "room:" + room_id)
    assert removed is not None and removed.name == "doomed"
    assert await store.get_room(room_id) is None
    assert [r.id for r in await store.list_rooms()] == [other]
    assert await store.room_members(room_id) == []
    assert await store.history("room:" + room_id, before=None, since=None, limit=10) == []
    alice = await store.user_presence("alice")
    assert alice is not None and alice.rooms == [other]
    assert await store.join_room(room_id, "s1") is False  # gone: nobody joins it
    assert await store.drop_session("s1") == [(other, ALICE)]  # nothing of it is left
    assert await store.remove_room(room_id, "room:" + room_id) is None
    await store.create_room("r-new", "doomed", [BOB])  # its name is free again


# -- users ------------------------------------------------------------------------------------


async def test_user_presence_counts_sessions_rooms_and_last_seen(store: Store) -> None:
    assert await store.user_presence("alice") is None
    room_id = await new_room(store)
    await joined(store, room_id, "s1", ALICE)
    await store.register_session("s2", ALICE, "n2")
    alice = await store.user_presence("alice")
    assert alice is not None
    assert (alice.name, alice.sessions, alice.rooms, alice.last_seen_ms) == (
        "Alice",
        2,
        [room_id],
        None,
    )
    await store.drop_session("s1")
    alice = await store.user_presence("alice")
    assert alice is not None and (alice.sessions, alice.rooms, alice.last_seen_ms) == (1, [], None)
    before_ms = int(time.time() * 1000) - 1000  # the Redis clock may differ a little
    await store.drop_session("s2")
    alice = await store.user_presence("alice")
    assert alice is not None and (alice.sessions, alice.rooms) == (0, [])
    assert alice.last_seen_ms is not None and alice.last_seen_ms >= before_ms


# -- idempotent appends -----------------------------------------------------------------------

ONCE = Dedupe("client-1", 60_000)


async def test_append_once_stores_a_retry_once(harness: Harness) -> None:
    inbox = await harness.listen("room:a")
    fanout = Fanout("room:a", "[", "]")
    first = await harness.store.append_once("room:a", text_tail("hello"), [fanout], ONCE)
    assert first.original is None
    retry = await harness.store.append_once("room:a", text_tail("hello again"), [fanout], ONCE)
    assert retry.seq == first.seq
    assert retry.original is not None and json.loads(retry.original)["text"] == "hello"
    assert await seqs(harness.store, "room:a") == [first.seq]
    assert len(await inbox.take(2, timeout=0.3)) == 1  # the retry published nothing
    other_key = await harness.store.append_once("room:a", "}", [], Dedupe("client-2", 60_000))
    other_log = await harness.store.append_once("log:b", "}", [], ONCE)  # keys are per log
    assert (other_key.original, other_log.original) == (None, None)
    assert (other_key.seq, other_log.seq) == (first.seq + 1, 1)


async def test_append_once_forgets_after_its_ttl(store: Store) -> None:
    short = Dedupe("k", 50)
    first = await store.append_once("log", "}", [], short)
    await asyncio.sleep(0.2)
    again = await store.append_once("log", "}", [], short)
    assert (again.original, again.seq) == (None, first.seq + 1)


async def test_concurrent_retries_store_exactly_once(store: Store) -> None:
    results = await asyncio.gather(
        *(store.append_once("log", text_tail(f"try {i}"), [], ONCE) for i in range(20))
    )
    assert {r.seq for r in results} == {1}
    assert sum(r.original is None for r in results) == 1
    assert await seqs(store, "log") == [1]


# -- epochs, positions, a user's logs, status ----------------------------------------------


async def test_log_heads_tell_epoch_seq_and_reach(store: Store) -> None:
    assert await store.log_heads([]) == []
    [empty] = await store.log_heads(["nothing"])
    assert empty == LogHead(None, 0, 1, None)
    await append_many(store, "log", HISTORY_SIZE + 3)
    appended = await store.append_entry("log", text_tail("last"))
    [head, other] = await store.log_heads(["log", "nothing"])
    assert head.epoch == appended.epoch and head.seq == appended.seq == HISTORY_SIZE + 4
    assert head.first_seq == 5  # trimmed: 1..4 are gone
    assert head.last is not None and json.loads(head.last)["text"] == "last"
    assert other == empty


async def test_a_log_started_again_has_a_new_epoch(store: Store) -> None:
    room_id = await new_room(store)
    first = await store.append_entry("room:" + room_id, "}")
    await store.remove_room(room_id, "room:" + room_id)
    assert (await store.log_heads(["room:" + room_id]))[0].seq == 0
    again = await store.append_entry("room:" + room_id, "}")
    assert again.seq == 1 and again.epoch != first.epoch
    other = await store.append_entry("other", "}")
    assert other.epoch  # every log has one


async def test_a_retried_append_reports_the_first_epoch(store: Store) -> None:
    first = await store.append_once("log", "}", [], ONCE)
    retry = await store.append_once("log", "}", [], ONCE)
    assert first.epoch and retry.epoch == first.epoch and retry.seq == first.seq


async def test_positions_move_forward_only(store: Store) -> None:
    assert await store.positions("alice", "read", ["log", "other"]) == [None, None]
    assert await store.move_position("alice", "log", "read", Position("e1", 5)) == Position("e1", 5)
    assert await store.move_position("alice", "log", "read", Position("e1", 3)) is None
    assert await store.move_position("alice", "log", "read", Position("e1", 5)) is None
    assert await store.positions("alice", "read", ["log"]) == [Position("e1", 5)]
    assert await store.positions("alice", "received", ["log"]) == [None]  # kinds apart
    assert await store.positions("bob", "read", ["log"]) == [None]  # users apart
    # A new epoch replaces the position whatever its seq: the log started again.
    assert await store.move_position("alice", "log", "read", Position("e2", 1)) is not None
    assert await store.positions("alice", "read", ["log"]) == [Position("e2", 1)]
    with pytest.raises(ValueError, match="kind"):
        await store.move_position("alice", "log", "seen", Position("e1", 1))


async def test_user_logs_newest_touch_first(store: Store) -> None:
    await store.add_user_logs("alice", ["room:a", "user:bob"], 1_000)
    await store.add_user_logs("alice", ["room:b"], 2_000)
    await store.add_user_logs("alice", ["room:a"], 3_000)
    assert await store.user_logs("alice", 10) == ["room:a", "room:b", "user:bob"]
    assert await store.user_logs("alice", 2) == ["room:a", "room:b"]
    await store.remove_user_log("alice", "room:b")
    assert await store.user_logs("alice", 10) == ["room:a", "user:bob"]
    assert await store.user_logs("bob", 10) == []


async def test_statuses_of_many_users_at_once(store: Store) -> None:
    await store.register_session("s1", ALICE, "n1")
    await store.set_status("alice", "away")
    await store.register_session("s2", BOB, "n1")
    await store.drop_session("s2")
    assert await store.invisible_among(["alice", "bob"]) == set()
    await store.set_status("bob", "invisible")
    assert await store.invisible_among(["alice", "bob", "nobody"]) == {"bob"}
    assert await store.invisible_among([]) == set()
    await store.set_status("bob", "away")
    assert await store.invisible_among(["bob"]) == set()
    await store.set_status("bob", "online")
    alice, bob, nobody = await store.user_statuses(["alice", "bob", "nobody"])
    assert (alice.status, alice.sessions, alice.last_seen_ms) == ("away", 1, None)
    assert (bob.status, bob.sessions) == ("online", 0) and bob.last_seen_ms is not None
    assert (nobody.status, nobody.sessions, nobody.last_seen_ms) == (None, 0, None)


# -- RedisStore only ------------------------------------------------------------------------


async def test_two_nodes_share_presence_and_order(redis_url: str, key_prefix: str) -> None:
    """Two RedisStores on separate connections behave as one store."""
    keys = KeySchema(key_prefix)
    async with (
        redis_client_under(redis_url, key_prefix) as client_a,
        redis_client_under(redis_url, key_prefix) as client_b,
    ):
        node_a = RedisStore(client_a, keys, HISTORY_SIZE)
        node_b = RedisStore(client_b, keys, HISTORY_SIZE)
        room_id = await new_room(node_a)
        await node_a.register_session("a1", ALICE, "node-a")
        await node_b.register_session("a2", ALICE, "node-b")
        assert await node_a.join_room(room_id, "a1") is True
        assert await node_b.join_room(room_id, "a2") is False  # Alice is in already
        assert await node_a.drop_session("a1") == []
        assert await node_b.drop_session("a2") == [(room_id, ALICE)]

        listener = RedisHarness(client_a, keys)
        inbox = await listener.listen("room")
        fanout = Fanout("room", "", "")
        await asyncio.gather(
            *(node.append("room", "}", [fanout]) for _ in range(25) for node in (node_a, node_b))
        )
        assert [seq_of(text) for text in await inbox.take(50)] == list(range(1, 51))
        await listener.close()


async def test_bytes_replies_are_decoded(
    redis_client: redis.asyncio.Redis, redis_url: str, key_prefix: str
) -> None:
    """A client without decode_responses still yields str (redis_client cleans up)."""
    store = RedisStore(redis.asyncio.Redis.from_url(redis_url), KeySchema(key_prefix), 5)
    room_id = await new_room(store, "bytes")
    await store.set_acl(room_id, {"age": "18:"})
    await joined(store, room_id, "a1", ALICE)
    room = await store.get_room(room_id)
    assert room is not None and dict(room.acl) == {"age": "18:"}
    assert await store.list_rooms() == [RoomSummary(room_id, "bytes", 1)]
    assert await store.room_members(room_id) == [ALICE]
    assert await store.node_sessions("n1") == ["a1"]
    appended = await store.append_entry("log", "}")
    expected = '{"seq":1,"epoch":"' + appended.epoch + '"}'
    assert await store.history("log", before=None, since=None, limit=5) == [expected]
    assert (await store.log_heads(["log"]))[0].epoch == appended.epoch
    assert await store.drop_session("a1") == [(room_id, ALICE)]
    await store.close()


async def test_unreachable_redis_raises_store_unavailable() -> None:
    client = redis.asyncio.Redis(
        host="127.0.0.1",
        port=free_port(),  # nothing listens there
        decode_responses=True,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 0),  # fail now, not after the default retries
    )
    store = RedisStore(client, KeySchema("dinotest:unreachable:"), HISTORY_SIZE)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "get_room": lambda: store.get_room("r1"),  # a pipeline
        "list_rooms": lambda: store.list_rooms(),  # a plain command
        "join_room": lambda: store.join_room("r1", "s1"),  # a script
        "append": lambda: store.append("log", "}", [Fanout("c", "", "")]),
    }
    for name, call in calls.items():
        with pytest.raises(StoreUnavailable, match=f"Redis unavailable during {name}"):
            await call()
    await store.close()


async def test_scripts_survive_a_flushed_script_cache(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> None:
    """After a Redis restart the scripts are gone; the store loads them again."""
    store = RedisStore(redis_client, KeySchema(key_prefix), HISTORY_SIZE)
    assert await store.append("log", "}") == 1
    await redis_client.script_flush()
    assert await store.append("log", "}") == 2


async def test_no_presence_keys_outlive_their_sessions(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> None:
    keys = KeySchema(key_prefix)
    store = RedisStore(redis_client, keys, HISTORY_SIZE)
    room_id = await new_room(store)
    await joined(store, room_id, "a1", ALICE)
    await joined(store, room_id, "a2", ALICE)
    await joined(store, room_id, "b1", BOB)
    await store.leave_room(room_id, "a2")
    for sid in ("a1", "a2", "b1"):
        await store.drop_session(sid)
    remaining = {key async for key in redis_client.scan_iter(match=key_prefix + "*")}
    assert remaining == {
        keys.rooms(),
        keys.room_names(),
        keys.room_info(room_id),
        keys.room_owners(room_id),
        # A user's name and last seen time are kept: they are what "last seen" means.
        keys.user_info(ALICE.id),
        keys.user_info(BOB.id),
    }


# -- KeySchema ------------------------------------------------------------------------------


def test_keys_of_one_owner_share_a_hash_tag() -> None:
    keys = KeySchema("p:")
    assert keys.room_users("r:1") == "p:{room:r:1}:users"
    room = {keys.room_info("r"), keys.room_users("r"), keys.log("room:r"), keys.channel("room:r")}
    assert {hash_tag(key) for key in room} == {"room:r"}
    session = {keys.session_info("s"), keys.session_rooms("s")}
    assert {hash_tag(key) for key in session} == {"session:s"}
    assert hash_tag(keys.rooms()) == hash_tag(keys.room_names()) == "rooms"
    assert hash_tag(keys.log("dm:1:a:b")) == hash_tag(keys.log_seq("dm:1:a:b"))
    # A brace in an id ends the tag early, for every key of that owner alike.
    assert hash_tag(keys.room_info("a}b")) == hash_tag(keys.log("room:a}b")) == "room:a"


def test_channel_name_inverts_channel() -> None:
    keys = KeySchema("dino:")
    for name in ("room:x", "user:a}b:ch", ""):
        assert keys.channel_name(keys.channel(name)) == name


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        KeySchema("dino{x}:")


def test_ids_with_colons_cannot_alias_other_keys() -> None:
    keys = KeySchema()
    assert keys.room_info("x}:users") != keys.room_users("x")
    assert keys.log("x:seq") != keys.log_seq("x")
    assert keys.log("x}:seq") != keys.log_seq("x")
    assert keys.session_info("x:rooms") != keys.session_rooms("x")
    every = [
        getattr(keys, name)(*(["x"] * len(inspect.signature(getattr(keys, name)).parameters)))
        for name in vars(KeySchema)
        if not name.startswith("_") and name != "channel_name"
    ]
    assert len(set(every)) == len(every)


def test_key_schema_table_lists_every_key() -> None:
    table = key_schema_table(KeySchema("dino:"))
    assert "| `dino:{room:<room_id>}:users` | hash |" in table
    assert "| `dino:{<name>}:ch` | channel |" in table
    public = [n for n in vars(KeySchema) if not n.startswith("_") and n not in NOT_KEYS]
    assert len(table.splitlines()) == 2 + len(public)


async def test_concurrent_renames_agree_everywhere(store: Store) -> None:
    """Of concurrent renames one wins, and the room, the index and the names agree."""
    room_id = await new_room(store, "start")
    await asyncio.gather(*(store.rename_room(room_id, f"name {i}") for i in range(10)))
    room = await store.get_room(room_id)
    assert room is not None
    assert await store.list_rooms() == [RoomSummary(room_id, room.name, 0)]
    other = await new_room(store, "start")  # the old name is free again
    for i in range(10):  # and every losing name too
        if f"name {i}" != room.name:
            assert await store.rename_room(other, f"name {i}") is not None


async def test_racing_joins_leaves_and_drops_leave_no_ghost(store: Store) -> None:
    """A join racing a leave or a drop of the same session ends with the session either
    in the room and in its room set, or in neither: a drop then cleans everything."""
    room_id = await new_room(store)
    await store.register_session("a0", ALICE, "n1")
    for _ in range(20):
        await asyncio.gather(store.join_room(room_id, "a0"), store.leave_room(room_id, "a0"))
        await asyncio.gather(store.leave_room(room_id, "a0"), store.join_room(room_id, "a0"))
    await store.drop_session("a0")
    for i in range(20):
        await store.register_session(f"b{i}", BOB, "n1")
        await asyncio.gather(store.join_room(room_id, f"b{i}"), store.drop_session(f"b{i}"))
    assert await store.room_members(room_id) == []
    assert await store.node_sessions("n1") == []
