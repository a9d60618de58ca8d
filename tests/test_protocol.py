"""The protocol of README.md, end to end: real nodes, real socket.io clients.

Every test runs on both stores (memory, Redis); most also on both transports (websocket,
long-polling), and tests with several clients mix the two transports. ``ChatClient.call``
checks the envelope on every request: the ack and the ``gn_<event>`` event are the same
object. Before asserting that something was *not* received, tests ``settle()`` the client
(see ``tests/node_fixtures.py``), so an absence is never a matter of waiting long enough.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

pytest.register_assert_rewrite("tests.node_fixtures")
from tests.node_fixtures import NULL, ChatClient, RunningNode  # noqa: E402

# backend, transport, node, node_factory: see tests/node_fixtures.py
pytest_plugins = ["tests.node_fixtures"]

EVENTS = (
    "login",
    "create",
    "list_rooms",
    "join",
    "leave",
    "message",
    "users_in_room",
    "history",
    "set_acl",
    "rename_room",
    "remove_room",
)
JWT_SECRET = "a-test-secret-long-enough-for-hs256-and-for-hs512-which-wants-64-bytes"
RFC3339_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def other(transport: str) -> str:
    return "websocket" if transport == "polling" else "polling"


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    """The data of a 200 reply (fails with the reply when it is not one)."""
    assert reply["status_code"] == 200, reply
    data: dict[str, Any] = reply.get("data", {})
    return data


def bad(reply: dict[str, Any]) -> str:
    """The message of a 400 reply (fails with the reply when it is not one)."""
    assert reply["status_code"] == 400, reply
    assert set(reply) == {"status_code", "data"}, reply
    assert isinstance(reply["data"], str) and reply["data"], reply
    message: str = reply["data"]
    return message


def refused(reply: dict[str, Any]) -> str:
    """The message of a 403 reply: a refused permission (ownership, access rules)."""
    assert reply["status_code"] == 403, reply
    assert set(reply) == {"status_code", "data"}, reply
    assert isinstance(reply["data"], str) and reply["data"], reply
    message: str = reply["data"]
    return message


def entry(message: dict[str, Any]) -> dict[str, Any]:
    """The history entry README describes for a stored message activity."""
    return {
        "id": message["id"],
        "seq": message["seq"],
        "epoch": message["epoch"],
        "content": message["object"]["content"],
        "summary": message["actor"]["summary"],
        "published": message["published"],
        "actor": {"id": message["actor"]["id"]},
    }


def history_of(reply: dict[str, Any]) -> list[dict[str, Any]]:
    data = ok(reply)
    assert data["verb"] == "list"
    assert data["object"]["objectType"] == "history"
    entries: list[dict[str, Any]] = data["object"]["attachments"]
    return entries


def seqs(entries: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in entries]


def join_part(reply: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """One of the join reply's attachment lists: history, owner, acl or user."""
    parts = {a["objectType"]: a["attachments"] for a in ok(reply)["object"]["attachments"]}
    found: list[dict[str, Any]] = parts[kind]
    return found


def room_messages(client: ChatClient, room_id: str) -> list[dict[str, Any]]:
    return [m for m in client.events("message") if m["target"]["id"] == room_id]


async def set_acl(client: ChatClient, room_id: str, rules: dict[str, str]) -> dict[str, Any]:
    return await client.call(
        "set_acl",
        {
            "verb": "update",
            "target": {"id": room_id},
            "object": {
                "objectType": "acl",
                "attachments": [{"objectType": k, "content": v} for k, v in rules.items()],
            },
        },
    )


async def users_in_room(client: ChatClient, room_id: str) -> list[dict[str, Any]]:
    data = ok(await client.call("users_in_room", {"verb": "list", "target": {"id": room_id}}))
    assert data["verb"] == "list"
    assert data["target"] == {"id": room_id}
    assert data["object"]["objectType"] == "users"
    users: list[dict[str, Any]] = data["object"]["attachments"]
    return users


async def list_rooms(client: ChatClient) -> list[dict[str, Any]]:
    data = ok(await client.call("list_rooms", {"verb": "list"}))
    assert data["verb"] == "list"
    assert data["object"]["objectType"] == "rooms"
    rooms: list[dict[str, Any]] = data["object"]["attachments"]
    return rooms


def token(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode({"exp": int(time.time()) + 3600, **claims}, secret, algorithm="HS256")


def presence(verb: str, user: str, name: str, room_id: str) -> dict[str, Any]:
    return {
        "verb": verb,
        "actor": {"id": user, "summary": name},
        "target": {"id": room_id, "objectType": "room"},
    }


# -- connection and envelope ---------------------------------------------------------------


async def test_gn_connect_is_pushed_right_after_connecting(node: RunningNode, transport: str):
    client = await node.client(transport)
    await client.wait_for("gn_connect")
    assert client.received[0] == ("gn_connect", {"status_code": 200})
    ok(await client.login("alice"))
    assert client.events("gn_connect") == [{"status_code": 200}]


async def test_reply_arrives_as_gn_event_without_an_ack(node: RunningNode, transport: str):
    client = await node.client(transport, user="alice")
    await client.emit("list_rooms", {"verb": "list"})
    await client.emit("bogus", {})
    [rooms] = await client.wait_for("gn_list_rooms")
    assert rooms == {
        "status_code": 200,
        "data": {"verb": "list", "object": {"objectType": "rooms", "attachments": []}},
    }
    [unknown] = await client.wait_for("gn_bogus")
    bad(unknown)


def one_request_per_event(room_id: str, new_room: str) -> dict[str, dict[str, Any]]:
    """A valid request for every event but login, about ``room_id``."""
    return {
        "create": {"verb": "create", "target": {"displayName": new_room}},
        "list_rooms": {"verb": "list"},
        "join": {"verb": "join", "target": {"id": room_id}},
        "leave": {"verb": "leave", "target": {"id": room_id}},
        "message": {"verb": "send", "target": {"id": room_id}, "object": {"content": "hi"}},
        "users_in_room": {"verb": "list", "target": {"id": room_id}},
        "history": {"verb": "list", "target": {"id": room_id}},
        "set_acl": {"verb": "update", "target": {"id": room_id}, "object": {"attachments": []}},
        "rename_room": {"verb": "rename", "target": {"id": room_id, "displayName": new_room}},
        "remove_room": {"verb": "remove", "target": {"id": room_id}},
    }


async def test_every_event_needs_login_first(node: RunningNode, transport: str):
    owner = await node.client(other(transport), user="owner")
    room_id = await owner.create("lobby")
    ok(await owner.join(room_id))
    anonymous = await node.client(transport)
    requests = one_request_per_event(room_id, "sneaky")
    assert set(requests) | {"login"} == set(EVENTS)
    for event, payload in requests.items():
        message = bad(await anonymous.call(event, payload))
        assert "log in" in message, (event, message)
    # Nothing of it happened: no room, no member, no message.
    assert [r["content"] for r in await list_rooms(owner)] == ["lobby"]
    assert await users_in_room(owner, room_id) == [{"id": "owner", "content": "owner"}]
    assert history_of(await owner.history({"id": room_id})) == []
    # And the same connection may still log in and then do all of it.
    ok(await anonymous.login("late"))
    ok(await anonymous.call("list_rooms", {"verb": "list"}))


async def test_unknown_event_gets_gn_event_400(node: RunningNode, transport: str):
    client = await node.client(transport)
    assert "bogus" in bad(await client.call("bogus", {"verb": "bogus"}))
    ok(await client.login("alice"))
    assert "bogus" in bad(await client.call("bogus", {"verb": "bogus"}))
    assert "bogus" in bad(await client.call("bogus"))
    assert client.events("gn_bogus")[-1] == await client.call("bogus", [1])


@pytest.mark.parametrize(
    "payload", ["a string", ["a", "list"], 42, 4.5, True, [], ""], ids=repr
)
async def test_a_payload_that_is_not_an_object_is_refused(
    node: RunningNode, transport: str, payload: Any
):
    client = await node.client(transport)
    assert "JSON object" in bad(await client.call("login", payload))
    ok(await client.login("alice"))
    room_id = await client.create("lobby")
    ok(await client.join(room_id))
    for event in EVENTS:
        assert "JSON object" in bad(await client.call(event, payload)), event
    # The session is unharmed: still alice, still in the room.
    ok(await client.say(room_id, "still here"))
    assert await users_in_room(client, room_id) == [{"id": "alice", "content": "alice"}]


async def test_null_or_missing_payload_is_treated_as_an_empty_object(
    node: RunningNode, transport: str
):
    client = await node.client(transport)
    for event in ("login", "bogus"):
        empty = await client.call(event, {})
        assert await client.call(event, NULL) == empty
        assert await client.call(event) == empty
    ok(await client.login("alice"))
    for event in (*EVENTS, "bogus"):
        empty = await client.call(event, {})
        assert await client.call(event, NULL) == empty, event
        assert await client.call(event) == empty, event
        # {} is a valid request only for list_rooms; everything else misses a field.
        assert empty["status_code"] == (200 if event == "list_rooms" else 400), (event, empty)


# -- login ---------------------------------------------------------------------------------


async def test_login_returns_the_effective_user_with_attributes(node: RunningNode, transport: str):
    client = await node.client(transport)
    reply = await client.call(
        "login",
        {
            "verb": "login",
            "actor": {
                "id": "alice",
                "summary": "Alice Liddell",
                "attachments": [
                    {"objectType": "city", "content": "Shanghai"},
                    {"objectType": "age", "content": "31"},
                ],
            },
        },
    )
    assert reply == {
        "status_code": 200,
        "data": {
            "verb": "login",
            "actor": {
                "id": "alice",
                "summary": "Alice Liddell",
                "attachments": [
                    {"objectType": "city", "content": "Shanghai"},
                    {"objectType": "age", "content": "31"},
                ],
            },
        },
    }


async def test_login_summary_defaults_to_the_id(node: RunningNode, transport: str):
    client = await node.client(transport)
    data = ok(await client.login("bob"))
    assert data == {"verb": "login", "actor": {"id": "bob", "summary": "bob", "attachments": []}}
    room_id = await client.create("lobby")
    ok(await client.join(room_id))
    assert await users_in_room(client, room_id) == [{"id": "bob", "content": "bob"}]


async def test_login_again_as_the_same_user_updates_it_another_user_is_refused(
    node: RunningNode, transport: str
):
    owner = await node.client(other(transport), user="owner")
    room_id = await owner.create("club")
    ok(await set_acl(owner, room_id, {"city": "Shanghai"}))
    client = await node.client(transport, user="alice", attributes={"city": "Paris"})
    refused(await client.join(room_id))

    data = ok(await client.login("alice", name="Alice", attributes={"city": "Shanghai"}))
    assert data["actor"] == {
        "id": "alice",
        "summary": "Alice",
        "attachments": [{"objectType": "city", "content": "Shanghai"}],
    }
    ok(await client.join(room_id))  # the new attributes count

    message = bad(await client.login("mallory"))
    assert "mallory" in message
    # Still alice, still in the room.
    sent = ok(await client.say(room_id, "who am I"))
    assert sent["actor"]["id"] == "alice"
    assert [u["id"] for u in await users_in_room(client, room_id)] == ["alice"]


async def test_login_again_with_a_new_name_renames_the_user_in_rooms(
    node: RunningNode, transport: str
):
    alice = await node.client(transport, user="alice", name="Alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await alice.login("alice", name="Alice B."))
    assert ok(await alice.say(room_id, "renamed"))["actor"]["summary"] == "Alice B."
    assert await users_in_room(alice, room_id) == [{"id": "alice", "content": "Alice B."}]


@pytest.mark.parametrize(
    "actor",
    [
        None,
        {},
        {"summary": "no id"},
        {"id": ""},
        {"id": "   "},
        {"id": "x" * 129},
        {"id": ["alice"]},
        {"id": {"id": "alice"}},
        {"id": True},
        {"id": "line\nbreak"},
        {"id": "alice", "summary": ["Alice"]},
        {"id": "alice", "attachments": "city=Shanghai"},
        {"id": "alice", "attachments": ["city"]},
        {"id": "alice", "attachments": [{"objectType": "city"}]},
        {"id": "alice", "attachments": [{"content": "Shanghai"}]},
        {"id": "alice", "attachments": [{"objectType": "city", "content": 7.5}]},
        "alice",
    ],
    ids=repr,
)
async def test_login_with_a_bad_actor_is_refused(node: RunningNode, transport: str, actor: Any):
    client = await node.client(transport)
    payload: dict[str, Any] = {"verb": "login"}
    if actor is not None:
        payload["actor"] = actor
    bad(await client.call("login", payload))
    bad(await client.call("list_rooms", {"verb": "list"}))  # not logged in


async def test_login_id_of_128_characters_is_accepted(node: RunningNode, transport: str):
    client = await node.client(transport)
    user = "u" * 128
    assert ok(await client.login(user))["actor"]["id"] == user


# -- login with JWT ------------------------------------------------------------------------


async def jwt_node(node_factory) -> RunningNode:
    node: RunningNode = await node_factory(auth="jwt", jwt_secret=JWT_SECRET)
    return node


ALICE_CLAIMS = {"sub": "alice", "name": "Alice", "attributes": {"city": "Shanghai", "age": 31}}
ALICE_ACTOR = {
    "id": "alice",
    "summary": "Alice",
    "attachments": [
        {"objectType": "city", "content": "Shanghai"},
        {"objectType": "age", "content": "31"},
    ],
}


async def test_jwt_token_in_the_auth_payload(node_factory, transport: str):
    node = await jwt_node(node_factory)
    client = await node.client(transport, auth={"token": token(ALICE_CLAIMS)})
    data = ok(await client.call("login", {"verb": "login"}))
    assert data == {"verb": "login", "actor": ALICE_ACTOR}
    ok(await client.call("list_rooms", {"verb": "list"}))


async def test_jwt_token_as_an_attachment(node_factory, transport: str):
    node = await jwt_node(node_factory)
    client = await node.client(transport)
    payload = {
        "verb": "login",
        "actor": {"attachments": [{"objectType": "token", "content": token(ALICE_CLAIMS)}]},
    }
    assert ok(await client.call("login", payload)) == {"verb": "login", "actor": ALICE_ACTOR}


async def test_jwt_claims_win_over_what_the_client_says(node_factory, transport: str):
    node = await jwt_node(node_factory)
    watcher = await node.client(
        other(transport), auth={"token": token({"sub": "watcher"})}
    )
    ok(await watcher.call("login", {"verb": "login"}))
    room_id = await watcher.create("lobby")
    ok(await watcher.join(room_id))

    client = await node.client(transport, auth={"token": token(ALICE_CLAIMS)})
    payload = {
        "verb": "login",
        "actor": {
            "id": "mallory",
            "summary": "Mallory",
            "attachments": [{"objectType": "city", "content": "Paris"}],
        },
    }
    data = ok(await client.call("login", payload))
    assert data == {"verb": "login", "actor": ALICE_ACTOR}
    client.user = "alice"
    ok(await client.join(room_id))
    [joined] = await watcher.wait_for("gn_user_joined")
    assert joined == presence("join", "alice", "Alice", room_id)
    sent = ok(await client.say(room_id, "hello"))
    assert sent["actor"] == {"id": "alice", "summary": "Alice"}
    # The session's user is alice now: speaking as mallory is refused.
    payload = {"verb": "list", "actor": {"id": "mallory"}}
    assert bad(await client.call("list_rooms", payload)) == (
        "actor.id 'mallory' is not the logged-in user"
    )
    # Logging in again with a token for someone else is refused too.
    other_token = token({"sub": "bob"})
    attachment = {"objectType": "token", "content": other_token}
    bad(await client.call("login", {"verb": "login", "actor": {"attachments": [attachment]}}))
    assert ok(await client.say(room_id, "still me"))["actor"]["id"] == "alice"


@pytest.mark.parametrize(
    "bad_token",
    [
        pytest.param(
            token(ALICE_CLAIMS, secret="another-secret-" + "x" * 64), id="wrong-secret"
        ),
        pytest.param(token({**ALICE_CLAIMS, "exp": int(time.time()) - 3600}), id="expired"),
        pytest.param("not.a.jwt", id="garbage"),
        pytest.param(token({"name": "No Sub"}), id="no-sub"),
        pytest.param(token({"sub": 42}), id="numeric-sub"),
        pytest.param(
            jwt.encode({"sub": "alice"}, JWT_SECRET, algorithm="HS512"), id="other-algorithm"
        ),
        pytest.param(None, id="no-token"),
    ],
)
async def test_jwt_bad_or_missing_token_is_refused(node_factory, transport: str, bad_token):
    node = await jwt_node(node_factory)
    via_auth = await node.client(transport, auth={"token": bad_token} if bad_token else None)
    bad(await via_auth.call("login", {"verb": "login", "actor": {"id": "alice"}}))
    bad(await via_auth.call("list_rooms", {"verb": "list"}))

    via_attachment = await node.client(transport)
    actor: dict[str, Any] = {"id": "alice"}
    if bad_token:
        actor["attachments"] = [{"objectType": "token", "content": bad_token}]
    bad(await via_attachment.call("login", {"verb": "login", "actor": actor}))
    bad(await via_attachment.call("list_rooms", {"verb": "list"}))


async def test_jwt_client_cannot_add_attributes_the_token_does_not_give(
    node_factory, transport: str
):
    node = await jwt_node(node_factory)
    owner = await node.client(other(transport), auth={"token": token({"sub": "owner"})})
    ok(await owner.call("login", {"verb": "login"}))
    room_id = await owner.create("shanghai-only")
    ok(await set_acl(owner, room_id, {"city": "Shanghai"}))

    client = await node.client(transport, auth={"token": token({"sub": "bob"})})
    payload = {
        "verb": "login",
        "actor": {"attachments": [{"objectType": "city", "content": "Shanghai"}]},
    }
    data = ok(await client.call("login", payload))
    assert data["actor"]["attachments"] == []
    refused(await client.join(room_id))


# -- the session's user is authoritative ---------------------------------------------------


async def test_actor_id_of_another_user_is_refused(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))
    requests = {
        "login": {"verb": "login", "actor": {"id": "bob"}},
        **one_request_per_event(room_id, "bobs"),
    }
    for event, payload in requests.items():
        payload = {**payload, "actor": {"id": "bob", "summary": "Bob"}}
        assert bad(await alice.call(event, payload)) == (
            "actor.id 'bob' is not the logged-in user"
        ), event
    # None of it happened.
    assert [r["content"] for r in await list_rooms(alice)] == ["lobby"]
    assert history_of(await alice.history({"id": room_id})) == []
    assert [u["id"] for u in await users_in_room(alice, room_id)] == ["alice", "bob"]
    # Naming oneself is fine, and so is leaving actor out.
    payload = {"verb": "send", "actor": {"id": "alice"}, "target": {"id": room_id},
               "object": {"content": "me"}}
    assert ok(await alice.call("message", payload))["actor"]["id"] == "alice"
    await bob.settle()
    assert [m["actor"]["id"] for m in room_messages(bob, room_id)] == ["alice"]


# -- create --------------------------------------------------------------------------------


async def test_create_makes_a_room_with_a_uuid_and_does_not_join(
    node: RunningNode, transport: str
):
    alice = await node.client(transport, user="alice", name="Alice")
    reply = await alice.call("create", {"verb": "create", "target": {"displayName": "lobby"}})
    data = ok(reply)
    room_id = data["target"]["id"]
    assert str(uuid.UUID(room_id)) == room_id
    assert data == {
        "verb": "create",
        "actor": {"id": "alice", "summary": "Alice"},
        "target": {"id": room_id, "displayName": "lobby", "objectType": "room"},
    }
    assert await users_in_room(alice, room_id) == []
    bad(await alice.say(room_id, "not joined yet"))
    second = await alice.create("second")
    assert second != room_id
    # The creator owns it.
    joined = ok(await alice.join(room_id))
    assert joined["object"]["attachments"][1] == {
        "objectType": "owner",
        "attachments": [{"id": "alice", "content": "Alice"}],
    }


async def test_create_with_a_taken_name_is_refused(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    await alice.create("lobby")
    for client in (alice, bob):
        message = bad(
            await client.call("create", {"verb": "create", "target": {"displayName": "lobby"}})
        )
        assert "lobby" in message
    assert [r["content"] for r in await list_rooms(bob)] == ["lobby"]
    await bob.create("Lobby")  # names are compared as they are


@pytest.mark.parametrize(
    "target",
    [
        None,
        {},
        {"displayName": ""},
        {"displayName": "   "},
        {"displayName": "x" * 129},
        {"displayName": None},
        {"displayName": ["lobby"]},
        {"displayName": {"name": "lobby"}},
        {"displayName": True},
        {"displayName": 1.5},
        {"displayName": "tab\there"},
        "lobby",
        ["lobby"],
    ],
    ids=repr,
)
async def test_create_with_a_bad_name_is_refused(node: RunningNode, transport: str, target: Any):
    client = await node.client(transport, user="alice")
    payload: dict[str, Any] = {"verb": "create"}
    if target is not None:
        payload["target"] = target
    bad(await client.call("create", payload))
    assert await list_rooms(client) == []


async def test_create_names_of_1_and_128_characters(node: RunningNode, transport: str):
    client = await node.client(transport, user="alice")
    for name in ("x", "y" * 128, "Zürich 🏔"):
        data = ok(await client.call("create", {"verb": "create", "target": {"displayName": name}}))
        assert data["target"]["displayName"] == name


# -- list_rooms ----------------------------------------------------------------------------


async def test_list_rooms_is_sorted_by_name_and_counts_users(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    alice2 = await node.client(other(transport), user="alice")
    bob = await node.client(other(transport), user="bob")
    b_id = await alice.create("beta")
    a_id = await bob.create("alpha")
    c_id = await bob.create("gamma")
    for client in (alice, alice2, bob):
        ok(await client.join(b_id))
    ok(await bob.join(a_id))
    assert await list_rooms(alice) == [
        {"id": a_id, "content": "alpha", "summary": 1},
        {"id": b_id, "content": "beta", "summary": 2},  # alice's two sessions count once
        {"id": c_id, "content": "gamma", "summary": 0},
    ]
    ok(await alice.leave(b_id))
    assert [r["summary"] for r in await list_rooms(bob)] == [1, 2, 0]
    await alice2.disconnect()
    ok(await bob.leave(a_id))
    assert [r["summary"] for r in await list_rooms(bob)] == [0, 1, 0]


# -- join ----------------------------------------------------------------------------------


async def test_join_reply_has_the_seed_shape(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice", name="Alice")
    bob = await node.client(
        other(transport), user="bob", name="Bob", attributes={"city": "Shanghai", "age": "30"}
    )
    room_id = await alice.create("lobby")
    ok(await set_acl(alice, room_id, {"city": "Shanghai,Beijing", "age": "18:35"}))
    first = ok(await alice.join(room_id))
    assert join_part({"status_code": 200, "data": first}, "history") == []
    sent = [ok(await alice.say(room_id, f"message {i}")) for i in range(3)]

    reply = await bob.join(room_id)
    assert reply == {
        "status_code": 200,
        "data": {
            "verb": "join",
            "actor": {"id": room_id},
            "target": {"id": room_id, "displayName": "lobby", "objectType": "room"},
            "object": {
                "objectType": "room",
                "attachments": [
                    {"objectType": "history", "attachments": [entry(m) for m in sent]},
                    {"objectType": "owner", "attachments": [{"id": "alice", "content": "Alice"}]},
                    {"objectType": "moderator", "attachments": []},
                    {
                        "objectType": "acl",
                        "attachments": [
                            {"objectType": "age", "content": "18:35"},
                            {"objectType": "city", "content": "Shanghai,Beijing"},
                        ],
                    },
                    {
                        "objectType": "user",
                        "attachments": [
                            {"id": "alice", "content": "Alice"},
                            {"id": "bob", "content": "Bob"},
                        ],
                    },
                ],
            },
        },
    }


async def test_join_returns_the_newest_history_on_join_entries(node_factory, transport: str):
    node = await node_factory(history_on_join=3)
    alice = await node.client(transport, user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    sent = [ok(await alice.say(room_id, f"m{i}")) for i in range(5)]
    bob = await node.client(other(transport), user="bob")
    assert join_part(await bob.join(room_id), "history") == [entry(m) for m in sent[2:]]


@pytest.mark.parametrize(
    "target",
    [None, {}, {"id": ""}, {"id": ["x"]}, {"id": "no-such-room"}, {"id": str(uuid.uuid4())}, "x"],
    ids=repr,
)
async def test_join_an_unknown_or_missing_room_is_refused(
    node: RunningNode, transport: str, target: Any
):
    client = await node.client(transport, user="alice")
    payload: dict[str, Any] = {"verb": "join"}
    if target is not None:
        payload["target"] = target
    bad(await client.call("join", payload))


async def test_gn_user_joined_goes_to_the_others_only(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice", name="Alice")
    bob = await node.client(other(transport), user="bob", name="Bob")
    carol = await node.client(transport, user="carol")  # not in the room
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))
    [joined] = await alice.wait_for("gn_user_joined")
    assert joined == presence("join", "bob", "Bob", room_id)
    for client in (alice, bob, carol):
        await client.settle()
    assert alice.events("gn_user_joined") == [joined]
    assert bob.events("gn_user_joined") == []
    assert carol.events("gn_user_joined") == []


async def test_joining_twice_or_from_a_second_session_does_not_announce_again(
    node: RunningNode, transport: str
):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))
    await alice.wait_for("gn_user_joined")
    ok(await bob.join(room_id))  # harmless
    bob2 = await node.client(transport, user="bob")
    again = await bob2.join(room_id)
    assert [u["id"] for u in join_part(again, "user")] == ["alice", "bob"]
    await alice.settle()
    assert len(alice.events("gn_user_joined")) == 1
    assert [u["id"] for u in await users_in_room(alice, room_id)] == ["alice", "bob"]


# -- rename_room and remove_room --------------------------------------------------------------


async def rename(client: ChatClient, room_id: Any, name: Any) -> dict[str, Any]:
    return await client.call(
        "rename_room", {"verb": "rename", "target": {"id": room_id, "displayName": name}}
    )


async def remove(client: ChatClient, room_id: Any) -> dict[str, Any]:
    return await client.call("remove_room", {"verb": "remove", "target": {"id": room_id}})


async def test_an_owner_renames_a_room_and_its_members_hear_it(
    node: RunningNode, transport: str
):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    room_id = await alice.create("lobby")
    taken = await alice.create("hall")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))
    assert "owner" in refused(await rename(bob, room_id, "bob's room"))
    assert "exists" in bad(await rename(alice, room_id, "hall"))
    assert "no room" in bad(await rename(alice, "no-such-room", "x"))
    reply = ok(await rename(alice, room_id, "foyer"))
    assert reply["target"] == {"id": room_id, "displayName": "foyer", "objectType": "room"}
    for client in (alice, bob):
        [renamed] = await client.wait_for("gn_room_renamed")
        assert renamed["verb"] == "rename"
        assert renamed["actor"] == {"id": "alice", "summary": "alice"}
        assert renamed["target"] == reply["target"]
        assert renamed["object"] == {"objectType": "room", "summary": "lobby"}
    assert [(r["id"], r["content"]) for r in await list_rooms(alice)] == [
        (room_id, "foyer"),
        (taken, "hall"),
    ]
    assert join_part(await bob.join(room_id), "owner") == [{"id": "alice", "content": "alice"}]
    await alice.create("lobby")  # the old name is free


async def test_an_owner_removes_a_room_and_its_members_are_out(
    node: RunningNode, transport: str
):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    room_id = await alice.create("doomed")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))
    ok(await alice.say(room_id, "last words"))
    assert "owner" in refused(await remove(bob, room_id))
    reply = ok(await remove(alice, room_id))
    assert reply["target"]["id"] == room_id
    for client in (alice, bob):
        [removed] = await client.wait_for("gn_room_removed")
        assert removed["verb"] == "remove"
        assert removed["target"] == {"id": room_id, "displayName": "doomed", "objectType": "room"}
        assert "before sending" in bad(await client.say(room_id, "hello?"))
        assert "no room" in bad(await client.join(room_id))
        assert "no room" in bad(await client.history({"id": room_id}))
    await bob.settle()
    assert bob.events("gn_user_left") == []  # the room is gone, nobody "left" it
    assert await list_rooms(alice) == []
    assert "no room" in bad(await remove(alice, room_id))
    again = await alice.create("doomed")  # a new room: nothing of the old one carries over
    assert join_part(await alice.join(again), "history") == []


@pytest.mark.parametrize(
    "target",
    [None, {}, {"id": ""}, {"id": 5.5}, {"id": "r", "displayName": ""}, {"id": "r"}, "room"],
    ids=repr,
)
async def test_rename_room_with_a_bad_target_is_refused(node: RunningNode, target: Any):
    alice = await node.client(user="alice")
    bad(await alice.call("rename_room", {"verb": "rename", "target": target}))
    if not (isinstance(target, dict) and "displayName" in target):
        bad(await alice.call("remove_room", {"verb": "remove", "target": target}))


# -- leave and disconnect ------------------------------------------------------------------


async def test_leave_announces_and_stops_delivery(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob", name="Bob")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))
    assert await bob.leave(room_id) == {"status_code": 200}
    [left] = await alice.wait_for("gn_user_left")
    assert left == presence("leave", "bob", "Bob", room_id)
    assert [u["id"] for u in await users_in_room(alice, room_id)] == ["alice"]
    ok(await alice.say(room_id, "bob is gone"))
    await bob.settle()
    assert room_messages(bob, room_id) == []
    assert bob.events("gn_user_left") == []
    bad(await bob.say(room_id, "let me in"))
    assert "not in room" in bad(await bob.leave(room_id))


async def test_leave_a_room_not_joined_is_refused(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    room_id = await alice.create("lobby")
    bad(await alice.leave(room_id))
    bad(await alice.leave("no-such-room"))
    bad(await alice.call("leave", {"verb": "leave"}))
    # Another session of the same user is in the room; this one is not.
    alice2 = await node.client(other(transport), user="alice")
    ok(await alice2.join(room_id))
    bad(await alice.leave(room_id))
    assert [u["id"] for u in await users_in_room(alice, room_id)] == ["alice"]


async def test_disconnect_leaves_every_room(node: RunningNode, transport: str):
    alice = await node.client(other(transport), user="alice")
    bob = await node.client(transport, user="bob", name="Bob")
    rooms = [await alice.create(name) for name in ("one", "two")]
    for room_id in rooms:
        ok(await alice.join(room_id))
        ok(await bob.join(room_id))
    await bob.disconnect()
    left = await alice.wait_for("gn_user_left", count=2)
    assert sorted(left, key=lambda p: rooms.index(p["target"]["id"])) == [
        presence("leave", "bob", "Bob", room_id) for room_id in rooms
    ]
    for room_id in rooms:
        assert [u["id"] for u in await users_in_room(alice, room_id)] == ["alice"]
    assert [r["summary"] for r in await list_rooms(alice)] == [1, 1]


async def test_a_user_with_two_sessions_stays_until_the_last_one_leaves(
    node: RunningNode, transport: str
):
    watcher = await node.client(transport, user="watcher")
    alice1 = await node.client(transport, user="alice", name="Alice")
    alice2 = await node.client(other(transport), user="alice", name="Alice")
    room_id = await watcher.create("lobby")
    for client in (watcher, alice1, alice2):
        ok(await client.join(room_id))
    ok(await alice1.leave(room_id))
    await watcher.settle()
    assert watcher.events("gn_user_left") == []
    assert [u["id"] for u in await users_in_room(watcher, room_id)] == ["alice", "watcher"]
    # The remaining session still gets the room's messages; the one that left does not.
    ok(await watcher.say(room_id, "still there?"))
    await alice2.wait_for("message", lambda m: m["object"]["content"] == "still there?")
    await alice1.settle()
    assert room_messages(alice1, room_id) == []

    await alice2.disconnect()
    [left] = await watcher.wait_for("gn_user_left")
    assert left == presence("leave", "alice", "Alice", room_id)
    assert [u["id"] for u in await users_in_room(watcher, room_id)] == ["watcher"]


# -- message -------------------------------------------------------------------------------


async def test_message_is_stamped_and_delivered_to_every_member(
    node: RunningNode, transport: str
):
    alice = await node.client(transport, user="alice", name="Alice")
    bob = await node.client(other(transport), user="bob")
    carol = await node.client(transport, user="carol")  # not in the room
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))

    reply = await alice.call(
        "message",
        {
            "verb": "send",
            "target": {"id": room_id},
            "object": {"content": "hello, world", "objectType": "group"},
        },
    )
    sent = ok(reply)
    assert str(uuid.UUID(sent["id"], version=4)) == sent["id"]
    assert RFC3339_MS_UTC.match(sent["published"]), sent["published"]
    published = datetime.fromisoformat(sent["published"].replace("Z", "+00:00"))
    assert published.tzinfo == UTC
    assert sent == {
        "id": sent["id"],
        "seq": 1,
        "epoch": sent["epoch"],
        "published": sent["published"],
        "verb": "send",
        "actor": {"id": "alice", "summary": "Alice"},
        "target": {"id": room_id, "objectType": "room"},
        "object": {"content": "hello, world", "objectType": "group"},
    }
    for client in (alice, bob):
        assert await client.wait_for("message") == [sent]
    await carol.settle()
    assert carol.events("message") == []

    # objectType defaults to "group" and is kept when given.
    plain = ok(await bob.call(
        "message", {"verb": "send", "target": {"id": room_id}, "object": {"content": "x"}}
    ))
    assert plain["object"] == {"content": "x", "objectType": "group"}
    custom = ok(await bob.call(
        "message",
        {"verb": "send", "target": {"id": room_id},
         "object": {"content": "y", "objectType": "announcement"}},
    ))
    assert custom["object"] == {"content": "y", "objectType": "announcement"}
    for client in (alice, bob):
        assert await client.wait_for("message", count=3) == [sent, plain, custom]
    assert history_of(await bob.history({"id": room_id})) == [
        entry(m) for m in (sent, plain, custom)
    ]


async def test_seq_grows_by_exactly_one_per_room(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    one = await alice.create("one")
    two = await alice.create("two")
    for client in (alice, bob):
        ok(await client.join(one))
        ok(await client.join(two))
    got = []
    for i in range(6):
        sender = (alice, bob)[i % 2]
        got.append(ok(await sender.say(one, f"m{i}"))["seq"])
    assert got == [1, 2, 3, 4, 5, 6]
    assert ok(await bob.say(two, "first in two"))["seq"] == 1
    assert ok(await alice.say(one, "seventh"))["seq"] == 7


async def test_message_to_a_room_not_joined_is_refused(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    bad(await bob.say(room_id, "not a member"))
    bad(await bob.say("no-such-room", "nowhere"))
    ok(await bob.join(room_id))
    ok(await bob.leave(room_id))
    bad(await bob.say(room_id, "left already"))
    await alice.settle()
    assert room_messages(alice, room_id) == []
    assert history_of(await alice.history({"id": room_id})) == []


@pytest.mark.parametrize(
    "obj",
    [
        None,
        "hello",
        ["hello"],
        {},
        {"content": ""},
        {"content": "   "},
        {"content": "\n\t "},
        {"content": None},
        {"content": 42},
        {"content": 4.2},
        {"content": True},
        {"content": ["hello"]},
        {"content": {"text": "hello"}},
        {"content": "hello", "objectType": ["group"]},
    ],
    ids=repr,
)
async def test_message_with_bad_content_is_refused(node: RunningNode, transport: str, obj: Any):
    alice = await node.client(transport, user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    payload: dict[str, Any] = {"verb": "send", "target": {"id": room_id}}
    if obj is not None:
        payload["object"] = obj
    bad(await alice.call("message", payload))
    assert history_of(await alice.history({"id": room_id})) == []


@pytest.mark.parametrize(
    ("content", "accepted"),
    [
        ("a" * 10_240, True),
        ("a" * 10_241, False),
        ("é" * 5_120, True),  # 2 bytes each: 10,240 bytes, 5,120 characters
        ("é" * 5_120 + "a", False),
        ("€" * 3_413 + "a", True),  # 3 bytes each: 10,239 + 1
        ("€" * 3_414, False),  # 10,242 bytes, 3,414 characters
        ("🙂" * 2_560, True),  # 4 bytes each
        ("🙂" * 2_560 + "a", False),
        ("é" * 6_000, False),  # 6,000 characters but 12,000 bytes
    ],
    ids=lambda v: f"{len(v)}chars" if isinstance(v, str) else str(v),
)
async def test_message_size_limit_is_10240_utf8_bytes(
    node: RunningNode, transport: str, content: str, accepted: bool
):
    alice = await node.client(transport, user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    reply = await alice.say(room_id, content)
    if accepted:
        assert ok(reply)["object"]["content"] == content
        [stored] = history_of(await alice.history({"id": room_id}))
        assert stored["content"] == content
    else:
        assert "10240" in bad(reply)
        assert history_of(await alice.history({"id": room_id})) == []


async def test_rapid_messages_from_two_senders_arrive_in_seq_order_everywhere(
    node: RunningNode, transport: str
):
    per_sender = 50
    sender1 = await node.client(transport, user="s1")
    sender2 = await node.client(other(transport), user="s2")
    receiver_ws = await node.client("websocket", user="r1")
    receiver_poll = await node.client("polling", user="r2")
    room_id = await sender1.create("busy")
    everyone = (sender1, sender2, receiver_ws, receiver_poll)
    for client in everyone:
        ok(await client.join(room_id))

    async def blast(sender: ChatClient, name: str) -> None:
        # Emitted without waiting for replies: a polling sender posts them in one batch.
        for i in range(per_sender):
            await sender.emit(
                "message",
                {"verb": "send", "target": {"id": room_id}, "object": {"content": f"{name}-{i}"}},
            )

    await asyncio.gather(blast(sender1, "s1"), blast(sender2, "s2"))
    total = 2 * per_sender
    for client in everyone:
        got = await client.wait_for("message", count=total)
        assert seqs(got) == list(range(1, total + 1)), client.user
        for name in ("s1", "s2"):
            mine = [m["object"]["content"] for m in got if m["actor"]["id"] == name]
            assert mine == [f"{name}-{i}" for i in range(per_sender)], (client.user, name)
    for sender, name in ((sender1, "s1"), (sender2, "s2")):
        replies = await sender.wait_for("gn_message", count=per_sender)
        assert all(r["status_code"] == 200 for r in replies)
        assert [r["data"]["object"]["content"] for r in replies] == [
            f"{name}-{i}" for i in range(per_sender)
        ]
        assert seqs([r["data"] for r in replies]) == sorted(seqs([r["data"] for r in replies]))
    stored = history_of(await receiver_ws.history({"id": room_id}, limit=500))
    assert stored == [entry(m) for m in receiver_ws.events("message")]


async def test_a_polling_client_may_post_more_than_16_packets_at_once(node: RunningNode):
    # engine.io's default is 16 packets per POST, the rest silently dropped; socket.io
    # clients post everything they buffered at once (a reconnect: login, rejoins, ...).
    sender = await node.client("polling", user="alice")
    room_id = await sender.create("lobby")
    ok(await sender.join(room_id))
    for i in range(20):  # queued together: one POST carries all twenty
        await sender.emit(
            "message", {"verb": "send", "target": {"id": room_id}, "object": {"content": str(i)}}
        )
    await sender.flush()
    # Handled in order: when this reply is here, every earlier one has been sent.
    ok(await sender.call("list_rooms", {"verb": "list"}))
    replies = sender.events("gn_message")
    assert [r["status_code"] for r in replies] == [200] * 20
    assert seqs(history_of(await sender.history({"id": room_id}))) == list(range(1, 21))


# -- messages between users ----------------------------------------------------------------


async def test_user_message_reaches_every_session_but_the_sending_one(
    node: RunningNode, transport: str
):
    alice1 = await node.client(transport, user="alice", name="Alice")
    alice2 = await node.client(other(transport), user="alice", name="Alice")
    bob1 = await node.client(transport, user="bob")
    bob2 = await node.client(other(transport), user="bob")
    carol = await node.client(transport, user="carol")

    sent = ok(await alice1.tell("bob", "psst"))
    assert sent == {
        "id": sent["id"],
        "seq": 1,
        "epoch": sent["epoch"],
        "published": sent["published"],
        "verb": "send",
        "actor": {"id": "alice", "summary": "Alice"},
        "target": {"id": "bob", "objectType": "user"},
        "object": {"content": "psst", "objectType": "private"},
    }
    assert RFC3339_MS_UTC.match(sent["published"])
    for client in (bob1, bob2, alice2):
        assert await client.wait_for("message") == [sent]
    for client in (alice1, carol):
        await client.settle()
        assert client.events("message") == []


async def test_a_message_to_oneself_reaches_ones_other_sessions_once(
    node: RunningNode, transport: str
):
    alice1 = await node.client(transport, user="alice")
    alice2 = await node.client(other(transport), user="alice")
    sent = ok(await alice1.tell("alice", "note to self"))
    assert sent["target"] == {"id": "alice", "objectType": "user"}
    assert await alice2.wait_for("message") == [sent]
    for client in (alice1, alice2):
        await client.settle()
    assert alice1.events("message") == []
    assert alice2.events("message") == [sent]
    own = history_of(await alice2.history({"objectType": "user", "id": "alice"}))
    assert own == [entry(sent)]


async def test_user_conversation_history_is_shared_by_both_users(
    node: RunningNode, transport: str
):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    carol = await node.client(transport, user="carol")
    sent = [
        ok(await alice.tell("bob", "hi bob")),
        ok(await bob.tell("alice", "hi alice")),
        ok(await alice.tell("bob", "how are you")),
    ]
    assert seqs(sent) == [1, 2, 3]
    ok(await carol.tell("bob", "a separate conversation"))
    expected = [entry(m) for m in sent]
    assert history_of(await alice.history({"objectType": "user", "id": "bob"})) == expected
    assert history_of(await bob.history({"objectType": "user", "id": "alice"})) == expected
    reply = ok(await bob.history({"objectType": "user", "id": "alice"}, since=1, limit=1))
    assert reply == {
        "verb": "list",
        "target": {"id": "alice"},
        "object": {"objectType": "history", "attachments": [expected[1]]},
    }
    # carol's view of "bob" is her own conversation with him, not alice's.
    assert [e["content"] for e in history_of(await carol.history(
        {"objectType": "user", "id": "bob"}
    ))] == ["a separate conversation"]
    assert history_of(await carol.history({"objectType": "user", "id": "alice"})) == []


async def test_user_message_to_someone_offline_is_kept_for_later(
    node: RunningNode, transport: str
):
    alice = await node.client(transport, user="alice")
    sent = ok(await alice.tell("dave", "read this later"))
    dave = await node.client(other(transport), user="dave")
    assert history_of(await dave.history({"objectType": "user", "id": "alice"})) == [entry(sent)]


async def test_user_message_is_validated_like_a_room_message(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    bad(await alice.tell("bob", ""))
    bad(await alice.tell("bob", "a" * 10_241))
    bad(await alice.call("message", {"verb": "send", "target": {"objectType": "user"},
                                     "object": {"content": "to nobody"}}))
    bad(await alice.call("message", {"verb": "send", "target": {"objectType": "planet",
                                     "id": "mars"}, "object": {"content": "hello?"}}))
    assert history_of(await alice.history({"objectType": "user", "id": "bob"})) == []


# -- users_in_room -------------------------------------------------------------------------


async def test_users_in_room_lists_distinct_users_sorted_by_id(node: RunningNode, transport: str):
    zed = await node.client(transport, user="zed", name="Zed")
    amy = await node.client(other(transport), user="amy", name="Amy")
    amy2 = await node.client(transport, user="amy", name="Amy")
    outsider = await node.client(other(transport), user="outsider")
    room_id = await zed.create("lobby")
    for client in (zed, amy, amy2):
        ok(await client.join(room_id))
    reply = await outsider.call("users_in_room", {"verb": "list", "target": {"id": room_id}})
    assert reply == {
        "status_code": 200,
        "data": {
            "verb": "list",
            "target": {"id": room_id},
            "object": {
                "objectType": "users",
                "attachments": [{"id": "amy", "content": "Amy"}, {"id": "zed", "content": "Zed"}],
            },
        },
    }
    bad(await outsider.call("users_in_room", {"verb": "list", "target": {"id": "nope"}}))
    bad(await outsider.call("users_in_room", {"verb": "list"}))


# -- history -------------------------------------------------------------------------------


async def test_history_before_since_and_limit(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice", name="Alice")
    reader = await node.client(other(transport), user="reader")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    sent = [ok(await alice.say(room_id, f"m{i}")) for i in range(1, 11)]
    assert seqs(sent) == list(range(1, 11))

    async def read(**options: Any) -> list[int]:
        return seqs(history_of(await reader.history({"id": room_id}, **options)))

    # A reader need not be in the room (no ACL): the full reply.
    reply = ok(await reader.history({"id": room_id}))
    assert reply == {
        "verb": "list",
        "target": {"id": room_id},
        "object": {"objectType": "history", "attachments": [entry(m) for m in sent]},
    }
    assert await read(limit=3) == [8, 9, 10]  # the newest, oldest first
    assert await read(before=5) == [1, 2, 3, 4]
    assert await read(before=5, limit=2) == [3, 4]
    assert await read(before=1) == []
    assert await read(before=100) == list(range(1, 11))
    assert await read(since=7) == [8, 9, 10]  # the oldest after since
    assert await read(since=2, limit=3) == [3, 4, 5]
    assert await read(since=0, limit=1) == [1]
    assert await read(since=10) == []
    assert await read(since=50) == []
    assert await read(limit=1) == [10]
    assert await read(limit=500) == list(range(1, 11))
    # An empty log.
    empty = await alice.create("empty")
    assert history_of(await reader.history({"id": empty})) == []


async def test_history_default_limit_is_50(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    for i in range(55):
        ok(await alice.tell("bob", f"m{i}"))
    got = seqs(history_of(await alice.history({"objectType": "user", "id": "bob"})))
    assert got == list(range(6, 56))
    got = seqs(history_of(await alice.history({"objectType": "user", "id": "bob"}, since=0)))
    assert got == list(range(1, 51))


@pytest.mark.parametrize(
    "options",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": -1},
        {"limit": "5"},
        {"limit": 2.5},
        {"limit": True},
        {"limit": [5]},
        {"before": "x"},
        {"before": "5"},
        {"before": 0},
        {"before": -3},
        {"before": 1.5},
        {"before": False},
        {"since": -1},
        {"since": "x"},
        {"since": {"seq": 1}},
        {"target": None},
        {"target": {"id": "no-such-room"}},
        {"target": {"objectType": "user"}},
        {"target": {"objectType": "galaxy", "id": "m31"}},
        {"target": "lobby"},
    ],
    ids=repr,
)
async def test_history_with_bad_options_is_refused(
    node: RunningNode, transport: str, options: dict[str, Any]
):
    alice = await node.client(transport, user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await alice.say(room_id, "one"))
    payload: dict[str, Any] = {"verb": "list", "target": {"id": room_id}, **options}
    if payload["target"] is None:
        del payload["target"]
    bad(await alice.call("history", payload))


# -- set_acl and ACL enforcement -----------------------------------------------------------


async def test_only_an_owner_can_set_the_acl(node: RunningNode, transport: str):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob", attributes={"city": "Shanghai"})
    room_id = await alice.create("lobby")
    ok(await bob.join(room_id))
    assert "owner" in refused(await set_acl(bob, room_id, {"city": "Beijing"}))
    assert join_part(await bob.join(room_id), "acl") == []
    assert await set_acl(alice, room_id, {"city": "Shanghai"}) == {"status_code": 200}
    assert join_part(await bob.join(room_id), "acl") == [
        {"objectType": "city", "content": "Shanghai"}
    ]
    bad(await set_acl(alice, "no-such-room", {"city": "Beijing"}))
    # set_acl replaces the whole ACL; an empty list clears it.
    ok(await set_acl(alice, room_id, {"age": "18:"}))
    assert join_part(await alice.join(room_id), "acl") == [{"objectType": "age", "content": "18:"}]
    ok(await set_acl(alice, room_id, {}))
    assert join_part(await alice.join(room_id), "acl") == []
    ok(await alice.call("set_acl", {"verb": "update", "target": {"id": room_id}}))


@pytest.mark.parametrize(
    "acl_object",
    [
        {"attachments": [{"objectType": "city", "content": ""}]},
        {"attachments": [{"objectType": "city", "content": ",,"}]},
        {"attachments": [{"objectType": "city", "content": " , "}]},
        {"attachments": [{"objectType": "age", "content": "a:b"}]},
        {"attachments": [{"objectType": "age", "content": "18:x"}]},
        {"attachments": [{"objectType": "age", "content": "eighteen:35"}]},
        {"attachments": [{"objectType": "", "content": "x"}]},
        {"attachments": [{"content": "Shanghai"}]},
        {"attachments": [{"objectType": "city"}]},
        {"attachments": [{"objectType": "city", "content": ["Shanghai"]}]},
        {"attachments": ["city=Shanghai"]},
        {"attachments": {"objectType": "city", "content": "Shanghai"}},
        {"attachments": "city"},
        "acl",
        [],
    ],
    ids=repr,
)
async def test_set_acl_with_a_bad_rule_is_refused_and_changes_nothing(
    node: RunningNode, transport: str, acl_object: Any
):
    alice = await node.client(transport, user="alice")
    room_id = await alice.create("lobby")
    ok(await set_acl(alice, room_id, {"city": "Shanghai"}))
    payload = {"verb": "update", "target": {"id": room_id}, "object": acl_object}
    bad(await alice.call("set_acl", payload))
    assert join_part(await alice.join(room_id), "acl") == [
        {"objectType": "city", "content": "Shanghai"}
    ]


@pytest.mark.parametrize(
    ("attributes", "admitted"),
    [
        ({"city": "Shanghai", "age": "31"}, True),
        ({"city": "Beijing", "age": "18"}, True),  # range ends are inclusive
        ({"city": "Beijing", "age": "35"}, True),
        ({"city": "Beijing", "age": "25.5"}, True),
        ({"city": "Paris", "age": "31"}, False),
        ({"city": "shanghai", "age": "31"}, False),  # values compare exactly
        ({"city": "Shanghai", "age": "17"}, False),
        ({"city": "Shanghai", "age": "36"}, False),
        ({"city": "Shanghai", "age": "thirty"}, False),
        ({"city": "Shanghai"}, False),  # a missing attribute refuses
        ({"age": "31"}, False),
        ({}, False),
    ],
    ids=repr,
)
async def test_acl_decides_who_may_join_and_read(
    node: RunningNode, transport: str, attributes: dict[str, str], admitted: bool
):
    owner = await node.client(other(transport), user="owner")  # no attributes at all
    room_id = await owner.create("club")
    ok(await set_acl(owner, room_id, {"city": "Shanghai,Beijing", "age": "18:35"}))
    ok(await owner.join(room_id))  # owners are always admitted
    ok(await owner.say(room_id, "members only"))
    ok(await owner.history({"id": room_id}))

    guest = await node.client(transport, user="guest", attributes=attributes)
    join = await guest.join(room_id)
    history = await guest.history({"id": room_id})
    if admitted:
        assert [e["content"] for e in join_part(join, "history")] == ["members only"]
        assert [e["content"] for e in history_of(history)] == ["members only"]
        ok(await guest.say(room_id, "glad to be here"))
    else:
        refused(join)
        refused(history)
        bad(await guest.say(room_id, "let me in"))
        assert [u["id"] for u in await users_in_room(owner, room_id)] == ["owner"]


async def test_open_ended_ranges(node: RunningNode, transport: str):
    owner = await node.client(transport, user="owner")
    adults = await owner.create("adults")
    kids = await owner.create("kids")
    ok(await set_acl(owner, adults, {"age": "18:"}))
    ok(await set_acl(owner, kids, {"age": ":12"}))
    old = await node.client(other(transport), user="old", attributes={"age": "99"})
    young = await node.client(other(transport), user="young", attributes={"age": "7"})
    ok(await old.join(adults))
    refused(await old.join(kids))
    ok(await young.join(kids))
    refused(await young.join(adults))


# -- text that is not Unicode -------------------------------------------------------------

# JSON may carry a lone surrogate ("\ud800"); Python decodes it into a str that no
# UTF-8 encoder accepts. Stored, it would break every reply that carries it.
SURROGATE = "\\ud800"  # as it is written in JSON text


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        pytest.param(
            "message",
            '{"verb":"send","target":{"id":"ROOM"},"object":{"content":"x %s y"}}',
            id="content",
        ),
        pytest.param(
            "message",
            '{"verb":"send","target":{"id":"ROOM"},"object":{"content":"x","objectType":"g%s"}}',
            id="object-type",
        ),
        pytest.param(
            "message",
            '{"verb":"send","target":{"objectType":"user","id":"bob%s"},"object":{"content":"x"}}',
            id="user-id",
        ),
        pytest.param(
            "create", '{"verb":"create","target":{"displayName":"room %s"}}', id="room-name"
        ),
        pytest.param(
            "set_acl",
            '{"verb":"update","target":{"id":"ROOM"},'
            '"object":{"attachments":[{"objectType":"city","content":"Sh%s"}]}}',
            id="acl-rule",
        ),
        pytest.param(
            "login", '{"verb":"login","actor":{"id":"alice","summary":"Al%sce"}}', id="name"
        ),
        pytest.param(
            "login",
            '{"verb":"login","actor":{"id":"alice",'
            '"attachments":[{"objectType":"city","content":"Sh%s"}]}}',
            id="attribute",
        ),
    ],
)
async def test_a_lone_surrogate_is_refused_and_poisons_nothing(
    node: RunningNode, transport: str, event: str, payload: str
):
    alice = await node.client(transport, user="alice")
    bob = await node.client(other(transport), user="bob")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    ok(await bob.join(room_id))
    ok(await alice.say(room_id, "before"))

    reply = await alice.call_raw(event, payload.replace("ROOM", room_id) % SURROGATE)
    bad(reply)

    # Everything that would carry the text still works, for everyone.
    assert [r["content"] for r in await list_rooms(bob)] == ["lobby"]
    ok(await alice.say(room_id, "after"))
    for client in (alice, bob):
        got = await client.wait_for("message", count=2)
        assert [m["object"]["content"] for m in got] == ["before", "after"]
    carol = await node.client(transport, user="carol")
    joined = await carol.join(room_id)
    assert [e["content"] for e in join_part(joined, "history")] == ["before", "after"]
    assert [u["id"] for u in join_part(joined, "user")] == ["alice", "bob", "carol"]
    assert [e["content"] for e in history_of(await bob.history({"id": room_id}))] == [
        "before",
        "after",
    ]
    assert history_of(await bob.history({"objectType": "user", "id": "alice"})) == []


@pytest.mark.parametrize(
    "packet",
    [
        f'2/chat,["bo{SURROGATE}gus",{{}}]',
        f'2/chat,["list_rooms",{{"actor":{{"id":"x{SURROGATE}"}}}}]',
    ],
    ids=["event-name", "actor-id"],
)
async def test_a_reply_that_would_echo_a_lone_surrogate_keeps_the_connection(
    node: RunningNode, packet: str
):
    client = await node.client("polling", user="alice")
    await client.send_raw(packet)
    await client.flush()
    # Another event than the raw packet's, whose own gn_ reply (a 400) came first.
    reply = asyncio.create_task(client.call("login", {"actor": {"id": "alice"}}))
    dropped = asyncio.create_task(client.disconnected.wait())
    done, pending = await asyncio.wait({reply, dropped}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert dropped not in done, "the connection was lost"
    ok(reply.result())


# -- a misbehaving client ------------------------------------------------------------------


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value: scalars, long and odd strings, nested lists and objects."""
    kind = rng.choice(["int", "float", "bool", "null", "str", "bigstr", "list", "dict", "deep"])
    if kind == "int":
        return rng.choice([0, -1, 2**53, -(2**31), rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -1e300, 1e-300, 3.14])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "str":
        return rng.choice(["", " ", "\x00\x01", "💣" * 50, "<script>", "' OR 1=1 --", "{}"])
    if kind == "bigstr":
        return rng.choice(["x", "é", "🙂"]) * rng.randint(1_000, 15_000)
    if kind == "deep":
        value: Any = "bottom"
        for i in range(rng.randint(50, 400)):
            value = [value] if i % 2 else {"k": value}
        return value
    if depth > 3:
        return rng.random()
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randint(0, 5))}


def _garbage_request(rng: random.Random, room_id: str) -> tuple[str, Any]:
    """An (event, payload) that the protocol must refuse with 400 from a logged-in user."""
    event = rng.choice([*EVENTS, "bogus", "gn_message", "disconnect_me", "__proto__"])
    style = rng.choice(["not-an-object", "foreign-actor", "bad-target", "oversize"])
    if event not in EVENTS:
        return event, _random_value(rng)  # unknown events are refused, whatever they carry
    if style == "not-an-object":
        payload = _random_value(rng)
        while isinstance(payload, dict) or payload is None:
            payload = _random_value(rng)
        return event, payload
    if style == "foreign-actor" or event in ("login", "list_rooms"):
        actor_id = _random_value(rng)
        while actor_id is None or str(actor_id) == "garbler":
            actor_id = _random_value(rng)
        return event, {"actor": {"id": actor_id}, "target": _random_value(rng)}
    if style == "bad-target":
        target = _random_value(rng)
        while isinstance(target, dict) or target is None:
            target = _random_value(rng)
        return event, {"target": target, "object": _random_value(rng)}
    # oversize, or not joined: either way the message is refused
    content = rng.choice(["a" * 10_241, "é" * 5_121, "🙂" * 2_600])
    return "message", {"target": {"id": room_id}, "object": {"content": content}}


def garbage_request(rng: random.Random, room_id: str, max_bytes: int = 60_000) -> tuple[str, Any]:
    """``_garbage_request`` that fits one socket.io packet (the node closes a connection
    that sends a larger one: --max-message-bytes * 8, 81,920 bytes by default)."""
    while True:
        event, payload = _garbage_request(rng, room_id)
        if len(json.dumps([event, payload]).encode()) <= max_bytes:
            return event, payload


# socket.io packets that cannot be read as an event: no reply is possible, but the
# connection and everyone else must be unaffected.
MALFORMED_PACKETS = [
    '2/chat,["message",{',
    "2/chat,",
    "2/chat,[]",
    "2/chat,[42]",
    '2/chat,{"a":1}',
    '2/chat,["login"',
    "2/chat," + "[" * 2000 + "]" * 2000,
    '2/nowhere,["login",{}]',
    "9garbage",
    "",
]


async def test_a_flooding_client_is_held_to_its_rate_and_harms_nobody(
    node_factory, transport: str
):
    node = await node_factory(max_events_per_second=5, max_event_burst=10)
    alice = await node.client(other(transport), user="alice")
    # The connection's namespace CONNECT and its login took one token each.
    flooder = await node.client(transport, user="flooder")
    replies = [await flooder.call("list_rooms", {"verb": "list"}) for _ in range(30)]
    assert all(r["status_code"] == 200 for r in replies[:8])  # the rest of the burst
    refused = [r for r in replies if r["status_code"] != 200]
    assert refused, "30 requests in well under 4 s must exceed 10 + 5 per second"
    assert {r["status_code"] for r in refused} == {400}
    assert {r["data"] for r in refused} == {"too many requests: at most 5 events per second"}
    # Others are not limited by it, and the flooder is served again once it slows down.
    ok(await alice.call("list_rooms", {"verb": "list"}))
    await asyncio.sleep(0.5)
    ok(await flooder.call("list_rooms", {"verb": "list"}))


async def test_an_unparseable_packet_closes_its_sender_and_harms_nobody(
    node: RunningNode, transport: str
):
    """socket.io for Node closes a client whose packet it cannot parse; so does dino."""
    alice = await node.client(other(transport), user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    for packet in MALFORMED_PACKETS:
        garbler = await node.client(transport, user="garbler")
        await garbler.send_raw(packet)
        await garbler.flush()
        # Closed, or (for what socket.io can still parse, e.g. another namespace) served.
        closed = asyncio.create_task(garbler.disconnected.wait())
        served = asyncio.create_task(garbler.call("list_rooms", {}))
        await asyncio.wait({closed, served}, return_when=asyncio.FIRST_COMPLETED)
        if not closed.done():
            ok(served.result())
        closed.cancel()
        served.cancel()
        await asyncio.gather(closed, served, return_exceptions=True)
        await garbler.disconnect()
    ok(await alice.say(room_id, "still here"))
    got = await alice.wait_for("message", count=1)
    assert [m["object"]["content"] for m in got] == ["still here"]


async def test_an_unparseable_event_closes_its_sender(node: RunningNode, transport: str):
    garbler = await node.client(transport, user="garbler")
    await garbler.send_raw('2/chat,["message",{')
    await garbler.flush()
    await asyncio.wait_for(garbler.disconnected.wait(), 10)


async def test_a_client_flooding_garbage_gets_400s_and_harms_nobody(
    node: RunningNode, transport: str
):
    alice = await node.client(other(transport), user="alice")
    bob = await node.client(transport, user="bob")
    garbler = await node.client(transport, user="garbler")
    room_id = await alice.create("lobby")
    for client in (alice, bob):
        ok(await client.join(room_id))
    rounds = 20

    async def chat() -> list[str]:
        said = []
        for i in range(rounds):
            for client in (alice, bob):
                content = f"{client.user} {i}"
                ok(await client.say(room_id, content))
                said.append(content)
        return said

    async def flood() -> list[tuple[str, dict[str, Any]]]:
        rng = random.Random(20261128)
        replies = []
        for _ in range(150):
            event, payload = garbage_request(rng, room_id)
            replies.append((event, await garbler.call(event, payload)))
        return replies

    said, replies = await asyncio.gather(chat(), flood())
    wrong = [(event, r) for event, r in replies if r["status_code"] != 400]
    assert wrong == []
    # The chat went on: everybody got every message, in order, and the log is intact.
    for client in (alice, bob):
        got = await client.wait_for("message", count=len(said))
        assert [m["object"]["content"] for m in got] == said
        assert seqs(got) == list(range(1, len(said) + 1))
    stored = history_of(await bob.history({"id": room_id}, limit=500))
    assert [e["content"] for e in stored] == said
    assert seqs(stored) == list(range(1, len(said) + 1))
    assert [u["id"] for u in await users_in_room(bob, room_id)] == ["alice", "bob"]
    assert [r["content"] for r in await list_rooms(bob)] == ["lobby"]
    # And the garbler is still connected and still itself.
    assert garbler.sio.connected
    assert ok(await garbler.join(room_id))["actor"] == {"id": room_id}
    assert ok(await garbler.say(room_id, "sorry"))["actor"]["id"] == "garbler"
