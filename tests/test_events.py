"""The event stream out: every change of state appears once, with its shape, on both stores.

A node runs with ``--events-file``, so each test reads what the forwarder wrote (the
stream as a consumer sees it); on Redis the stream ``<prefix>events`` is read directly
too, to check it holds the same events in the same order.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio

from storage.base import DropEvents, Event, Member
from storage.keys import KeySchema
from storage.redis_store import RedisStore
from tests.node_fixtures import TIMEOUT, NodeFactory, RunningNode
from tests.test_api import KEY, Api

pytest_plugins = ["tests.node_fixtures"]

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


async def read_events(path: Path, wanted: int) -> list[dict[str, Any]]:
    """The events in the file once there are at least ``wanted`` of them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= wanted or loop.time() > deadline:
            return [json.loads(line) for line in lines]
        await asyncio.sleep(0.05)


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def check_common(event: dict[str, Any], node_id: str) -> None:
    assert re.fullmatch(UUID + r"(\.\d+)?", event["id"]), event
    assert RFC3339_MS.match(event["published"]), event
    assert event["node"] == node_id


async def start(node_factory: NodeFactory, tmp_path: Path, **settings: Any) -> RunningNode:
    return await node_factory(events_file=str(tmp_path / "events.jsonl"), node_id="n1", **settings)


# One stream, one order across all events (a cluster's per-slot streams have none
# between them: see test_on_a_redis_cluster_each_slot_has_its_stream...).
@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_every_event_type_has_its_shape(node_factory: NodeFactory, tmp_path: Path) -> None:
    node = await start(node_factory, tmp_path)
    alice = await node.client(user="alice", name="Alice")
    # Bob satisfies the ACL set below: a member it refuses would be removed from the room.
    bob = await node.client(user="bob", name="Bob", attributes={"city": "Oslo"})
    room_id = await alice.create("lobby")
    await alice.join(room_id)
    await bob.join(room_id)
    sent = (await alice.say(room_id, "hello"))["data"]
    told = (await alice.tell("bob", "psst"))["data"]
    acl = {"objectType": "acl", "attachments": [{"objectType": "city", "content": "Oslo"}]}
    assert (await alice.call("set_acl", {"target": {"id": room_id}, "object": acl}))[
        "status_code"
    ] == 200
    renamed = await alice.call("rename_room", {"target": {"id": room_id, "displayName": "hall"}})
    assert renamed["status_code"] == 200
    assert (await bob.leave(room_id))["status_code"] == 200
    await bob.disconnect()  # bob's last session: offline, no leave (he left already)
    await alice.join(room_id)  # again: no second join event
    removed = await alice.call("remove_room", {"target": {"id": room_id}})
    assert removed["status_code"] == 200, removed

    events = await read_events(tmp_path / "events.jsonl", 12)
    for event in events:
        check_common(event, "n1")
    kinds = [e["type"] for e in events]
    assert kinds == [
        "login",
        "login",
        "room_created",
        "join",
        "join",
        "message",
        "message",
        "acl_changed",
        "room_renamed",
        "leave",
        "offline",
        "room_removed",
    ], kinds
    assert len({e["id"] for e in events}) == len(events)

    login = of_type(events, "login")[0]
    assert login["verb"] == "login"
    assert login["actor"] == {"id": "alice", "summary": "Alice"}
    assert login["object"]["objectType"] == "session"

    created = of_type(events, "room_created")[0]
    assert created["verb"] == "create"
    assert created["target"] == {"id": room_id, "objectType": "room", "displayName": "lobby"}
    owners, rules = created["object"]["attachments"]
    assert owners == {"objectType": "owner", "attachments": [{"id": "alice", "content": "Alice"}]}
    assert rules == {"objectType": "acl", "attachments": []}

    joins = of_type(events, "join")
    assert [j["actor"]["id"] for j in joins] == ["alice", "bob"]
    assert joins[0]["target"] == {"id": room_id, "objectType": "room"}

    room_message, direct = of_type(events, "message")
    assert room_message["verb"] == "send"
    assert room_message["log"] == f"room:{room_id}"
    assert room_message["seq"] == sent["seq"] == 1
    assert room_message["epoch"] == sent["epoch"] and sent["epoch"]  # the log's, as stored
    assert room_message["published"] == sent["published"]
    assert room_message["actor"] == {"id": "alice", "summary": "Alice"}
    assert room_message["target"] == {"id": room_id, "objectType": "room"}
    assert room_message["object"] == {"id": sent["id"], "objectType": "group", "content": "hello"}
    assert direct["log"] == "dm:5:alice:bob" and direct["seq"] == told["seq"] == 1
    assert direct["epoch"] == told["epoch"]
    assert direct["target"] == {"id": "bob", "objectType": "user"}
    assert direct["object"]["content"] == "psst"

    changed = of_type(events, "acl_changed")[0]
    assert changed["verb"] == "update"
    assert changed["actor"]["id"] == "alice"
    assert changed["object"] == {
        "objectType": "acl",
        "attachments": [{"objectType": "city", "content": "Oslo"}],
    }

    rename = of_type(events, "room_renamed")[0]
    assert rename["verb"] == "rename"
    assert rename["target"]["displayName"] == "hall"
    assert rename["object"] == {"objectType": "room", "summary": "lobby"}

    leave = of_type(events, "leave")[0]
    assert leave["actor"] == {"id": "bob", "summary": "Bob"}
    assert leave["target"] == {"id": room_id, "objectType": "room"}

    offline = of_type(events, "offline")[0]
    assert offline["verb"] == "offline" and offline["actor"] == {"id": "bob", "summary": "Bob"}

    gone = of_type(events, "room_removed")[0]
    assert gone["verb"] == "remove" and gone["target"]["displayName"] == "hall"


def ok(reply: dict[str, Any]) -> Any:
    assert reply["status_code"] == 200, reply
    return reply.get("data")


# One stream, one order across all events (a cluster's per-slot streams have none
# between them: see test_on_a_redis_cluster_each_slot_has_its_stream...).
@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_edits_roles_moderation_and_status_have_their_events(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node = await start(node_factory, tmp_path)
    alice = await node.client(user="alice", name="Alice")
    bob = await node.client(user="bob", name="Bob")
    room_id = await alice.create("lobby")
    await alice.join(room_id)
    await bob.join(room_id)
    first = ok(await bob.say(room_id, "tpyo"))
    second = ok(await bob.say(room_id, "oops"))
    room = {"id": room_id}
    edited = ok(
        await bob.call(
            "edit_message",
            {"target": room, "object": {"id": first["id"], "content": "typo"}},
        )
    )
    deleted = ok(
        await alice.call("delete_message", {"target": room, "object": {"id": second["id"]}})
    )
    ok(
        await alice.call(
            "set_role", {"target": room, "object": {"id": "bob", "content": "moderator"}}
        )
    )
    ok(await alice.call("set_role", {"target": room, "object": {"id": "bob", "content": "none"}}))
    ok(
        await alice.call(
            "mute", {"target": room, "object": {"id": "bob", "content": "calm", "duration": "1h"}}
        )
    )
    ok(await alice.call("unmute", {"target": room, "object": {"id": "bob"}}))
    ok(await alice.call("kick", {"target": room, "object": {"id": "bob", "content": "out"}}))
    await bob.wait_for("gn_kicked")
    ok(await alice.call("ban", {"target": room, "object": {"id": "bob", "duration": None}}))
    ok(await alice.call("unban", {"target": room, "object": {"id": "bob"}}))
    # Refused and repeated changes make no event: a second unban is 400, the same status
    # again changes nothing.
    assert (await alice.call("unban", {"target": room, "object": {"id": "bob"}}))[
        "status_code"
    ] == 400
    ok(await bob.call("status", {"verb": "away"}))
    ok(await bob.call("status", {"verb": "away"}))

    events = await read_events(tmp_path / "events.jsonl", 18)
    for event in events:
        check_common(event, "n1")
    kinds = [e["type"] for e in events][5:]  # after 2 logins, created, 2 joins
    assert kinds == [
        "message",
        "message",
        "message_edited",
        "message_deleted",
        "role_set",
        "role_set",
        "mute",
        "unmute",
        "kick",
        "ban",
        "unban",
        "status_changed",
    ], kinds

    log = f"room:{room_id}"
    edit = of_type(events, "message_edited")[0]
    assert edit["verb"] == "edit" and edit["log"] == log
    assert edit["seq"] == edited["seq"] == 3 and edit["epoch"] == first["epoch"]
    assert edit["actor"] == {"id": "bob", "summary": "Bob"}
    assert edit["target"] == {"id": room_id, "objectType": "room"}
    assert edit["object"] == {
        "objectType": "message", "id": first["id"], "seq": 1, "content": "typo"
    }  # fmt: skip
    delete = of_type(events, "message_deleted")[0]
    assert delete["verb"] == "delete" and delete["seq"] == deleted["seq"] == 4
    assert delete["actor"]["id"] == "alice"
    assert delete["object"] == {"objectType": "message", "id": second["id"], "seq": 2}

    made, unmade = of_type(events, "role_set")
    assert made["verb"] == "set_role" and made["actor"]["id"] == "alice"
    assert made["target"] == {"id": room_id, "objectType": "room"}
    assert made["object"] == {
        "id": "bob", "summary": "Bob", "objectType": "user", "content": "moderator"
    }  # fmt: skip
    assert unmade["object"]["content"] == "none"

    mute = of_type(events, "mute")[0]
    assert mute["verb"] == "mute" and mute["actor"] == {"id": "alice"}
    assert mute["target"] == {"id": room_id, "objectType": "room"}
    assert mute["object"]["id"] == "bob" and mute["object"]["content"] == "calm"
    assert RFC3339_MS.match(mute["object"]["expires"])
    unmute = of_type(events, "unmute")[0]
    assert unmute["verb"] == "unmute" and unmute["object"]["id"] == "bob"

    kick = of_type(events, "kick")[0]
    assert kick["verb"] == "kick" and kick["actor"] == {"id": "alice", "summary": "Alice"}
    assert kick["object"] == {"id": "bob", "summary": "Bob", "objectType": "user", "content": "out"}
    ban = of_type(events, "ban")[0]
    assert ban["verb"] == "ban" and ban["object"]["expires"] is None
    assert ban["target"] == {"id": room_id, "objectType": "room"}
    assert of_type(events, "unban")[0]["verb"] == "unban"

    status = of_type(events, "status_changed")[0]
    assert status["verb"] == "status" and status["actor"] == {"id": "bob", "summary": "Bob"}
    assert status["object"] == {"objectType": "status", "content": "away"}
    # Routing keys name what each event is about.
    assert len({e["id"] for e in events}) == len(events)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_global_ban_and_the_api_make_events(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node = await start(node_factory, tmp_path, api_keys=(KEY,))
    carol = await node.client(user="carol", name="Carol")
    async with aiohttp.ClientSession() as http:
        api = Api(node, http)
        await api.call("PUT", "/bans/carol", {"reason": "spam"}, expect=200)
        await carol.wait_for("gn_banned")
        await api.call("DELETE", "/bans/carol", expect=200)
    events = await read_events(tmp_path / "events.jsonl", 4)
    ban, unban = of_type(events, "ban"), of_type(events, "unban")
    assert len(ban) == len(unban) == 1
    assert ban[0]["target"] == {"objectType": "global"} and "actor" not in ban[0]
    assert ban[0]["object"]["content"] == "spam"
    assert unban[0]["object"] == {"id": "carol", "summary": "Carol", "objectType": "user"}


# One stream, one order across all events (a cluster's per-slot streams have none
# between them: see test_on_a_redis_cluster_each_slot_has_its_stream...).
@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_dropped_session_leaves_each_room_then_goes_offline(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node = await start(node_factory, tmp_path)
    alice = await node.client(user="alice", name="Alice")
    rooms = [await alice.create(name) for name in ("a", "b", "c")]
    for room_id in rooms:
        await alice.join(room_id)
    second = await node.client(user="alice", name="Alice")
    await second.disconnect()  # not her last session: nothing but its login
    await alice.disconnect()

    events = await read_events(tmp_path / "events.jsonl", 3 + 3 + 2 + 3 + 1)
    tail = events[-4:]
    assert [e["type"] for e in tail] == ["leave", "leave", "leave", "offline"]
    assert sorted(e["target"]["id"] for e in tail[:3]) == sorted(rooms)
    base = tail[0]["id"].rsplit(".", 1)[0]
    assert [e["id"] for e in tail[:3]] == [f"{base}.1", f"{base}.2", f"{base}.3"]
    assert all(e["actor"] == {"id": "alice", "summary": "Alice"} for e in tail)
    assert len(of_type(events, "offline")) == 1


@pytest.mark.parametrize("backend", ["redis"])
async def test_the_stream_is_off_with_maxlen_0(
    node_factory: NodeFactory, key_prefix: str, redis_client: redis.asyncio.Redis
) -> None:
    node = await node_factory(events_maxlen=0)
    alice = await node.client(user="alice")
    room_id = await alice.create("quiet")
    await alice.join(room_id)
    assert (await alice.say(room_id, "no event"))["status_code"] == 200
    keys = KeySchema(key_prefix)
    assert await redis_client.exists(keys.events()) == 0
    assert await redis_client.exists(keys.log(f"room:{room_id}")) == 1


@pytest.mark.parametrize("backend", ["redis"])
async def test_redis_stream_holds_the_same_events(
    node_factory: NodeFactory, tmp_path: Path, key_prefix: str, redis_client: redis.asyncio.Redis
) -> None:
    node = await start(node_factory, tmp_path)
    alice = await node.client(user="alice")
    room_id = await alice.create("r")
    await alice.join(room_id)
    seqs = [(await alice.say(room_id, f"m{i}"))["data"]["seq"] for i in range(5)]
    written = await read_events(tmp_path / "events.jsonl", 8)
    stream = await redis_client.xrange(KeySchema(key_prefix).events())
    in_stream = [json.loads(fields["event"]) for _, fields in stream]
    assert in_stream == written
    keys = [fields["key"] for _, fields in stream]
    assert keys[-1] == f"dino.message.room.{room_id}"
    assert keys[:3] == ["dino.login.user.alice", f"dino.room_created.room.{room_id}",
                        f"dino.join.room.{room_id}"]  # fmt: skip
    assert [e["seq"] for e in of_type(in_stream, "message")] == seqs == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("backend", ["redis"])
async def test_one_log_in_order_across_two_nodes(
    node_factory: NodeFactory, key_prefix: str, redis_client: redis.asyncio.Redis
) -> None:
    first = await node_factory(node_id="n1", max_events_per_second=10_000, max_event_burst=10_000)
    second = await node_factory(node_id="n2", max_events_per_second=10_000, max_event_burst=10_000)
    alice = await first.client(user="alice")
    bob = await second.client(user="bob")
    room_id = await alice.create("both")
    await alice.join(room_id)
    await bob.join(room_id)

    async def send_all(client: Any, label: str) -> list[dict[str, Any]]:
        replies = await asyncio.gather(*(client.say(room_id, f"{label}{i}") for i in range(40)))
        return [r["data"] for r in replies]

    sent = [m for batch in await asyncio.gather(send_all(alice, "a"), send_all(bob, "b"))
            for m in batch]  # fmt: skip
    stream = await redis_client.xrange(KeySchema(key_prefix).events())
    messages = [json.loads(f["event"]) for _, f in stream if f["key"].startswith("dino.message.")]
    assert [e["seq"] for e in messages] == list(range(1, 81))
    # The stream's seq is the message's seq, whichever node stored it.
    assert {e["object"]["id"]: e["seq"] for e in messages} == {m["id"]: m["seq"] for m in sent}
    assert {e["node"] for e in messages} == {"n1", "n2"}


@pytest.mark.parametrize("backend", ["cluster"])
async def test_on_a_redis_cluster_each_slot_has_its_stream_and_one_forwarder_reads_all(
    node_factory: NodeFactory, tmp_path: Path, key_prefix: str, redis_cluster_client: Any
) -> None:
    """Rooms in different slots: each room's events are in its slot's stream, in seq
    order; the file forwarder (one of the two nodes holds its lease) writes every event
    of every stream, each log in seq order."""
    path = tmp_path / "events.jsonl"
    limits = {"max_events_per_second": 10_000, "max_event_burst": 10_000}
    first = await node_factory(node_id="n1", events_file=str(path), **limits)
    second = await node_factory(node_id="n2", events_file=str(tmp_path / "n2.jsonl"), **limits)
    alice = await first.client(user="alice")
    bob = await second.client(user="bob")
    keys = KeySchema(key_prefix)
    rooms = [await alice.create(f"room {i}") for i in range(6)]
    for room_id in rooms:
        await alice.join(room_id)
        await bob.join(room_id)
    slots = {keys.events_stream_for(keys.room_info(r)) for r in rooms}
    assert len(slots) > 1  # the rooms' events are in several streams

    async def send_all(client: Any, label: str) -> None:
        for i in range(10):
            await asyncio.gather(*(client.say(r, f"{label}{i}") for r in rooms))

    await asyncio.gather(send_all(alice, "a"), send_all(bob, "b"))
    for room_id in rooms:
        stream = keys.events_stream_for(keys.room_info(room_id))
        entries = [json.loads(f["event"]) for _, f in await redis_cluster_client.xrange(stream)]
        mine = [e["seq"] for e in of_type(entries, "message") if e["target"]["id"] == room_id]
        assert mine == list(range(1, 21))

    # 2 logins, 6 rooms created, 12 joins, 120 messages; both files together (the lease
    # may move), at least once.
    written: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while loop.time() < deadline:
        written = [json.loads(line) for f in (path, tmp_path / "n2.jsonl") if f.exists()
                   for line in f.read_text().splitlines()]  # fmt: skip
        if len({e["id"] for e in written}) >= 140:
            break
        await asyncio.sleep(0.1)
    assert len({e["id"] for e in written}) == 140
    # A lease that moved may have sent a batch twice: the first copy of each counts.
    first_copies: dict[str, dict[str, Any]] = {}
    for event in written:
        first_copies.setdefault(event["id"], event)
    once = list(first_copies.values())
    for room_id in rooms:
        seqs = [e["seq"] for e in of_type(once, "message") if e["target"]["id"] == room_id]
        assert seqs == list(range(1, 21)), (room_id, seqs)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_members_an_access_rule_change_removes_leave_in_the_stream(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    node = await start(node_factory, tmp_path)
    alice = await node.client(user="alice", name="Alice")
    bob = await node.client(user="bob", name="Bob")  # no city: the new rule refuses him
    room_id = await alice.create("lobby")
    await alice.join(room_id)
    await bob.join(room_id)
    acl = {"objectType": "acl", "attachments": [{"objectType": "city", "content": "Oslo"}]}
    ok(await alice.call("set_acl", {"target": {"id": room_id}, "object": acl}))
    await bob.wait_for("gn_kicked")
    events = await read_events(tmp_path / "events.jsonl", 7)
    assert [e["type"] for e in events][-2:] == ["acl_changed", "leave"]
    assert events[-1]["actor"] == {"id": "bob", "summary": "Bob"}
    assert events[-1]["target"] == {"id": room_id, "objectType": "room"}


def _fixed(kind: str, room_id: str) -> Event:
    return Event(f"dino.{kind}.room.{room_id}", (json.dumps({"type": kind, "room": room_id}),))


async def _stream_kinds(client: redis.asyncio.Redis, keys: KeySchema) -> list[str]:
    return [json.loads(fields["event"])["type"] for _, fields in await client.xrange(keys.events())]


async def test_a_join_backed_out_by_a_racing_drop_adds_its_leave(
    key_prefix: str, redis_client: redis.asyncio.Redis
) -> None:
    """The Redis join takes several steps (a session's keys and a room's keys may be in
    different slots): when a drop begins between them, the join is backed out. Its join
    event is in the stream by then, so the backing out adds the matching leave."""
    keys = KeySchema(key_prefix)
    store = RedisStore(redis_client, keys, 10, events_maxlen=1000)
    await store.create_room("r1", "lobby", [Member("alice", "Alice")])
    await store.register_session("s1", Member("bob", "Bob"), "n1")
    join_room_script = store._join_room  # the step that writes presence and the event

    async def then_a_drop_begins(**kwargs: Any) -> Any:
        result = await join_room_script(**kwargs)
        await redis_client.hset(keys.session_info("s1"), "dropping", "1")
        return result

    store._join_room = then_a_drop_begins  # type: ignore[assignment]
    joined = await store.join_room(
        "r1", "s1", event=_fixed("join", "r1"), backout_event=_fixed("leave", "r1")
    )
    assert joined is False
    assert await store.room_members("r1") == []
    assert await _stream_kinds(redis_client, keys) == ["join", "leave"]


async def test_racing_joins_and_drops_pair_every_join_event_with_a_leave(
    key_prefix: str, redis_client: redis.asyncio.Redis
) -> None:
    keys = KeySchema(key_prefix)
    store = RedisStore(redis_client, keys, 10, events_maxlen=10_000)
    await store.create_room("r1", "lobby", [Member("alice", "Alice")])
    drop = DropEvents(
        leave=Event("dino.leave.room.", ('{"type":"leave","room":', "}"), ("room_id",), "room_id"),
        offline=Event("dino.offline.user.", ('{"type":"offline"}',), (), "user_id"),
    )
    for i in range(30):
        sid = f"s{i}"
        await store.register_session(sid, Member(f"u{i}", "U"), "n1")
        join = store.join_room(
            "r1", sid, event=_fixed("join", "r1"), backout_event=_fixed("leave", "r1")
        )
        await asyncio.gather(join, store.drop_session(sid, events=drop))
    assert await store.room_members("r1") == []
    kinds = await _stream_kinds(redis_client, keys)
    assert kinds.count("join") == kinds.count("leave")
