"""read / received with receipts, conversations with unread counts, status and
get_status, invisible users: end to end on both stores."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

pytest.register_assert_rewrite("tests.node_fixtures")
from tests.node_fixtures import ChatClient, RunningNode  # noqa: E402

pytest_plugins = ["tests.node_fixtures"]

SECRET = "receipts-test-secret-of-at-least-32-bytes"


def token_for(claims: dict[str, Any]) -> str:
    """A JWT for ``claims``, valid for an hour (nodes require ``exp``)."""
    return jwt.encode({**claims, "exp": int(time.time()) + 3600}, SECRET)


def ok(reply: dict[str, Any]) -> Any:
    assert reply["status_code"] == 200, reply
    return reply.get("data")


async def mark(client: ChatClient, kind: str, target: dict[str, Any], seq: Any) -> dict[str, Any]:
    return await client.call(kind, {"verb": kind, "target": target, "object": {"seq": seq}})


async def conversations(client: ChatClient, **options: Any) -> dict[str, Any]:
    data = ok(await client.call("conversations", {"verb": "list", **options}))
    assert data["object"]["objectType"] == "conversations"
    return dict(data["object"])


async def statuses(client: ChatClient, *ids: str) -> dict[str, dict[str, Any]]:
    request = {"verb": "list", "object": {"attachments": [{"id": i} for i in ids]}}
    data = ok(await client.call("get_status", request))
    return {s["id"]: s for s in data["object"]["attachments"]}


def user(user_id: str) -> dict[str, Any]:
    return {"objectType": "user", "id": user_id}


async def test_reading_a_direct_conversation_sends_receipts(node: RunningNode) -> None:
    alice = await node.client(user="alice")
    bob = await node.client(user="bob")
    bob2 = await node.client(user="bob")
    sent = [ok(await alice.tell("bob", f"m{i}")) for i in range(3)]
    data = ok(await mark(bob, "received", user("alice"), 3))
    assert data["object"] == {"seq": 3, "epoch": sent[0]["epoch"], "moved": True}
    [got] = await alice.wait_for("gn_message_received")
    assert (got["actor"]["id"], got["object"]["seq"]) == ("bob", 3)
    assert got["target"] == {"id": "alice", "objectType": "user"}
    ok(await mark(bob, "read", user("alice"), 2))
    [read] = await alice.wait_for("gn_message_read")
    assert read["object"] == {"seq": 2, "epoch": sent[0]["epoch"]}
    # Bob's other session hears it too (its badge follows); the reading one does not.
    await bob2.wait_for("gn_message_read")
    await bob.settle()
    assert bob.events("gn_message_read") == []
    # Forward only: going back changes nothing and sends nothing.
    back = ok(await mark(bob, "read", user("alice"), 1))
    assert back["object"]["seq"] == 2 and back["object"]["moved"] is False
    await alice.settle()
    assert len(alice.events("gn_message_read")) == 1
    beyond = await mark(bob, "read", user("alice"), 4)
    assert beyond["status_code"] == 400 and "beyond" in beyond["data"]
    for bad in (0, -1, "3", None, True):
        reply = await mark(bob, "read", user("alice"), bad)
        assert reply["status_code"] == 400 and "object.seq" in reply["data"]


async def test_room_receipts_go_to_the_senders_up_to_a_room_size(node_factory: Any) -> None:
    node = await node_factory(receipts_max_room_size=3)
    alice, bob, carol = [await node.client(user=u) for u in ("alice", "bob", "carol")]
    room_id = await alice.create("lobby")
    for client in (alice, bob, carol):
        ok(await client.join(room_id))
    ok(await alice.say(room_id, "from alice"))
    ok(await bob.say(room_id, "from bob"))
    ok(await mark(carol, "read", {"id": room_id}, 2))
    for sender in (alice, bob):
        [receipt] = await sender.wait_for("gn_message_read")
        assert receipt["actor"]["id"] == "carol" and receipt["object"]["seq"] == 2
    # Sending moved bob's own read position past both messages: nothing moves, no receipt.
    assert ok(await mark(bob, "read", {"id": room_id}, 2))["object"]["moved"] is False
    # A fourth member makes the room too big for receipts; positions still move.
    dave = await node.client(user="dave")
    ok(await dave.join(room_id))
    ok(await alice.say(room_id, "third"))
    assert ok(await mark(dave, "read", {"id": room_id}, 3))["object"]["moved"] is True
    await alice.settle()
    assert [r["actor"]["id"] for r in alice.events("gn_message_read")] == ["carol"]
    outsider = await mark(dave, "read", {"id": "no-such-room"}, 1)
    assert outsider["status_code"] == 400


async def test_conversations_list_unread_counts_newest_first(node: RunningNode) -> None:
    alice = await node.client(user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    carol = await node.client(user="carol")
    ok(await carol.tell("bob", "hello bob"))  # bob has never logged in
    for i in range(3):
        ok(await alice.say(room_id, f"r{i}"))
    for i in range(2):
        ok(await alice.tell("bob", f"d{i}"))

    bob = await node.client(user="bob")
    listed = await conversations(bob)
    assert listed["totalItems"] == 2
    first, second = listed["attachments"]
    assert (first["id"], first["objectType"], first["seq"], first["unread"]) == (
        "alice",
        "user",
        2,
        2,
    )
    assert first["last"]["content"] == "d1" and first["last"]["epoch"] == first["epoch"]
    assert (second["id"], second["unread"], second["last"]["content"]) == ("carol", 1, "hello bob")

    ok(await bob.join(room_id))
    ok(await mark(bob, "read", user("alice"), 1))
    listed = await conversations(bob)
    assert [(c["id"], c["unread"]) for c in listed["attachments"]] == [
        ("alice", 1),
        (room_id, 3),
        ("carol", 1),
    ] or [(c["id"], c["unread"]) for c in listed["attachments"]] == [
        (room_id, 3),
        ("alice", 1),
        ("carol", 1),
    ]
    ok(await bob.say(room_id, "bob's own"))  # one's own message is read
    newest = (await conversations(bob))["attachments"][0]
    assert (newest["id"], newest["seq"], newest["unread"]) == (room_id, 4, 0)
    page = await conversations(bob, offset=1, limit=1)
    assert page["totalItems"] == 3 and len(page["attachments"]) == 1
    ok(await bob.leave(room_id))
    assert room_id not in [c["id"] for c in (await conversations(bob))["attachments"]]
    bad = await bob.call("conversations", {"limit": 0})
    assert bad["status_code"] == 400


async def test_status_last_seen_and_invisibility(node: RunningNode) -> None:
    alice = await node.client(user="alice")
    bob = await node.client(user="bob")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))
    found = await statuses(alice, "alice", "bob", "nobody")
    assert [found[u]["status"] for u in ("alice", "bob", "nobody")] == [
        "online",
        "online",
        "offline",
    ]
    assert found["nobody"]["last_seen"] is None
    assert ok(await bob.call("status", {"verb": "away"})) == {"verb": "away"}
    assert (await statuses(alice, "bob"))["bob"]["status"] == "away"

    # Invisible: shown offline, gone from member lists, leaves announced as a leave.
    ok(await bob.call("status", {"verb": "invisible"}))
    await alice.wait_for("gn_user_left", lambda e: e["actor"]["id"] == "bob")
    assert (await statuses(alice, "bob"))["bob"]["status"] == "offline"
    members = ok(await alice.call("users_in_room", {"verb": "list", "target": {"id": room_id}}))
    assert [m["id"] for m in members["object"]["attachments"]] == ["alice"]
    carol = await node.client(user="carol")
    joined = ok(await carol.join(room_id))
    [users] = [a for a in joined["object"]["attachments"] if a["objectType"] == "user"]
    listed = users["attachments"]
    assert [m["id"] for m in listed] == ["alice", "carol"]
    bob_view = ok(await bob.call("users_in_room", {"verb": "list", "target": {"id": room_id}}))
    assert "bob" in [m["id"] for m in bob_view["object"]["attachments"]]  # sees himself
    bob2 = await node.client(user="bob")
    ok(await bob2.join(room_id))  # an invisible user's join is not announced
    await bob2.disconnect()
    await bob.disconnect()
    await alice.settle()
    assert [e["actor"]["id"] for e in alice.events("gn_user_joined")] == ["bob", "carol"]
    assert [e["actor"]["id"] for e in alice.events("gn_user_left")] == ["bob"]
    gone = (await statuses(alice, "bob"))["bob"]
    assert gone["status"] == "offline" and gone["last_seen"] is not None

    for bad in ({"verb": "busy"}, {}, {"verb": 3}):
        assert (await alice.call("status", bad))["status_code"] == 400
    too_many = {"object": {"attachments": [{"id": f"u{i}"} for i in range(501)]}}
    assert (await alice.call("get_status", too_many))["status_code"] == 400
    assert (await alice.call("get_status", {"object": {"attachments": ["x"]}}))[
        "status_code"
    ] == 400


async def test_invisible_needs_the_token_claim_under_jwt(node_factory: Any) -> None:
    node = await node_factory(auth="jwt", jwt_secret=SECRET)
    plain = await node.client(auth={"token": token_for({"sub": "plain"})})
    ok(await plain.call("login", {}))
    refused = await plain.call("status", {"verb": "invisible"})
    assert refused["status_code"] == 403 and "invisible" in refused["data"]
    ok(await plain.call("status", {"verb": "away"}))
    token = token_for({"sub": "ghost", "invisible": True})
    ghost = await node.client(auth={"token": token})
    ok(await ghost.call("login", {}))
    assert ok(await ghost.call("status", {"verb": "invisible"})) == {"verb": "invisible"}


@pytest.mark.parametrize("backend", ["redis"])
async def test_receipts_unread_and_status_across_nodes(node_factory: Any) -> None:
    first, second = await node_factory(), await node_factory()
    alice = await first.client(user="alice")
    for i in range(3):
        ok(await alice.tell("bob", f"while you were away {i}"))
    bob = await second.client(user="bob")
    [conversation] = (await conversations(bob))["attachments"]
    assert (conversation["id"], conversation["unread"]) == ("alice", 3)
    ok(await mark(bob, "read", user("alice"), 3))
    [receipt] = await alice.wait_for("gn_message_read")
    assert (receipt["actor"]["id"], receipt["object"]["seq"]) == ("bob", 3)
    assert (await conversations(bob))["attachments"][0]["unread"] == 0
    ok(await bob.call("status", {"verb": "away"}))
    assert (await statuses(alice, "bob"))["bob"]["status"] == "away"


async def test_admins_see_invisible_users(node_factory: Any) -> None:
    node = await node_factory(auth="jwt", jwt_secret=SECRET)

    async def person(claims: dict[str, Any]) -> ChatClient:
        client = await node.client(auth={"token": token_for(claims)})
        ok(await client.call("login", {}))
        client.user = claims["sub"]
        return client

    ghost = await person({"sub": "ghost", "invisible": True})
    admin = await person({"sub": "root", "roles": ["admin"]})
    plain = await person({"sub": "plain"})
    room_id = await admin.create("lobby")
    ok(await ghost.call("status", {"verb": "invisible"}))
    ok(await ghost.join(room_id))
    listing = {"verb": "list", "target": {"id": room_id}}
    seen_by_admin = ok(await admin.call("users_in_room", listing))["object"]["attachments"]
    assert [u["id"] for u in seen_by_admin] == ["ghost"]
    assert (await statuses(admin, "ghost"))["ghost"]["status"] == "invisible"
    assert ok(await plain.call("users_in_room", listing))["object"]["attachments"] == []
    assert (await statuses(plain, "ghost"))["ghost"]["status"] == "offline"
