"""The HTTP API (/api/v1) end to end: real nodes, real Redis, socket.io clients watching.

Every test runs on both stores; the cross-node tests run two nodes on one Redis.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.node_fixtures import RunningNode

pytest_plugins = ["tests.node_fixtures"]

KEY = "test-key-1"
OTHER_KEY = "test-key-2"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Api:
    """A backend calling one node's API."""

    def __init__(self, node: RunningNode, session: aiohttp.ClientSession) -> None:
        self.base = node.url + "/api/v1"
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        expect: int | None = None,
    ) -> tuple[int, Any]:
        sent_headers = {**AUTH, **(headers or {})}
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        async with self.session.request(
            method, self.base + path, data=data, headers=sent_headers
        ) as response:
            payload = await response.json(content_type=None)
            assert response.headers["Content-Type"].startswith("application/json")
            if expect is not None:
                assert response.status == expect, (response.status, payload)
            return response.status, payload


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def api_node(node_factory) -> RunningNode:
    return await node_factory(api_keys=(KEY, OTHER_KEY))


@pytest.fixture
def api(api_node: RunningNode, http: aiohttp.ClientSession) -> Api:
    return Api(api_node, http)


def notice(user: str, content: str, actor: str = "backend") -> dict[str, Any]:
    return {
        "actor": {"id": actor, "summary": "The Backend"},
        "target": {"objectType": "user", "id": user},
        "object": {"content": content},
    }


# -- authentication -----------------------------------------------------------------------


async def test_the_api_is_off_without_keys(node: RunningNode, http: aiohttp.ClientSession):
    for path in ("/api/v1/rooms", "/api/v1/openapi.json", "/api/nothing"):
        async with http.get(node.url + path, headers=AUTH) as response:
            assert response.status == 404
            assert "--api-keys" in (await response.json())["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {KEY}x"},
        {"Cookie": f"api_key={KEY}"},
    ],
    ids=repr,
)
async def test_a_missing_or_wrong_key_is_refused(api_node, http, headers):
    async with http.get(api_node.url + "/api/v1/rooms", headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "API key" in (await response.json())["error"]


async def test_a_key_in_the_query_string_is_not_accepted(api_node, http):
    async with http.get(api_node.url + f"/api/v1/rooms?api_key={KEY}&key={KEY}") as response:
        assert response.status == 401


async def test_every_configured_key_works(api_node, http):
    for key in (KEY, OTHER_KEY):
        headers = {"Authorization": f"Bearer {key}"}
        async with http.get(api_node.url + "/api/v1/rooms", headers=headers) as response:
            assert response.status == 200


async def test_unknown_paths_and_methods(api: Api):
    assert (await api.call("GET", "/nothing"))[0] == 404
    status, body = await api.call("PUT", "/rooms")
    assert status == 405 and body["error"]


# -- messages and notifications --------------------------------------------------------------


async def test_a_notification_reaches_every_session_of_the_user(api, api_node):
    phone = await api_node.client("websocket", user="alice")
    laptop = await api_node.client("polling", user="alice")
    _, sent = await api.call("POST", "/messages", notice("alice", "your order shipped"), expect=201)
    assert sent["seq"] == 1 and sent["actor"] == {"id": "backend", "summary": "The Backend"}
    assert sent["object"] == {"content": "your order shipped", "objectType": "private"}
    for client in (phone, laptop):
        [pushed] = await client.wait_for("message")
        assert pushed == sent  # the same activity, seq and id included
    history = await phone.history({"objectType": "user", "id": "backend"})
    entries = history["data"]["object"]["attachments"]
    assert [e["content"] for e in entries] == ["your order shipped"]


async def test_a_room_message_from_the_backend_is_a_room_message(api, api_node):
    alice = await api_node.client(user="alice")
    room_id = await alice.create("news")
    await alice.join(room_id)
    await alice.say(room_id, "first")
    body = {"actor": {"id": "bot"}, "target": {"objectType": "room", "id": room_id},
            "object": {"content": "from the backend", "objectType": "announcement"}}
    _, sent = await api.call("POST", "/messages", body, expect=201)
    assert sent["seq"] == 2 and sent["actor"] == {"id": "bot", "summary": "bot"}
    [pushed] = await alice.wait_for("message", lambda m: m["actor"]["id"] == "bot")
    assert pushed == sent
    _, history = await api.call("GET", f"/rooms/{room_id}/history", expect=200)
    assert [m["seq"] for m in history["items"]] == [1, 2]


async def test_a_message_to_an_unknown_room_is_404(api):
    body = {"actor": {"id": "bot"}, "target": {"objectType": "room", "id": "nope"},
            "object": {"content": "x"}}
    status, error = await api.call("POST", "/messages", body)
    assert status == 404 and "nope" in error["error"]


async def test_one_call_notifies_a_thousand_users(api, api_node):
    watchers = [await api_node.client(user=f"user{i}") for i in (0, 499, 999)]
    body = {"actor": {"id": "backend"}, "object": {"content": "maintenance at noon"},
            "targets": [{"objectType": "user", "id": f"user{i}"} for i in range(1000)]}
    _, sent = await api.call("POST", "/messages", body, expect=201)
    assert len(sent["items"]) == 1000
    assert [m["target"]["id"] for m in sent["items"]] == [f"user{i}" for i in range(1000)]
    assert {m["seq"] for m in sent["items"]} == {1}  # one conversation each
    for watcher in watchers:
        [pushed] = await watcher.wait_for("message")
        assert pushed["object"]["content"] == "maintenance at noon"


async def test_idempotency_key_makes_retries_store_nothing_new(api, api_node):
    alice = await api_node.client(user="alice")
    headers = {"Idempotency-Key": "order-42-shipped"}
    results = await asyncio.gather(
        *(api.call("POST", "/messages", notice("alice", "shipped"), headers=headers)
          for _ in range(10))
    )
    assert {status for status, _ in results} == {201}
    assert len({body["id"] for _, body in results}) == 1
    assert {body["seq"] for _, body in results} == {1}
    await alice.settle()
    assert len(alice.events("message")) == 1
    # Another key is another message; a multi-target retry is exact per target.
    _, other = await api.call("POST", "/messages", notice("alice", "shipped"),
                              headers={"Idempotency-Key": "order-43-shipped"}, expect=201)
    assert other["seq"] == 2
    many = {"actor": {"id": "backend"}, "object": {"content": "hi"},
            "targets": [{"id": "alice"}, {"id": "bob"}]}
    _, first = await api.call("POST", "/messages", many, headers={"Idempotency-Key": "k"})
    _, again = await api.call("POST", "/messages", many, headers={"Idempotency-Key": "k"})
    assert first == again


async def test_broadcast_reaches_every_session_even_before_login(api, api_node):
    anonymous = await api_node.client()
    alice = await api_node.client("polling", user="alice")
    body = {"object": {"content": "we restart at 2am", "objectType": "maintenance"}}
    _, pushed = await api.call("POST", "/broadcast", body, expect=200)
    for client in (anonymous, alice):
        [got] = await client.wait_for("gn_broadcast")
        assert got == pushed and got["object"]["objectType"] == "maintenance"
    status, _ = await api.call("GET", "/rooms/no-such-room/history")
    assert status == 404  # nothing was stored anywhere


# -- rooms -----------------------------------------------------------------------------------


async def test_room_lifecycle(api, api_node):
    body = {"name": "support", "owners": [{"id": "alice", "summary": "Alice"}],
            "acl": {"city": "Berlin,Paris"}}
    _, room = await api.call("POST", "/rooms", body, expect=201)
    assert room["name"] == "support" and room["owners"] == [{"id": "alice", "summary": "Alice"}]
    assert room["acl"] == {"city": "Berlin,Paris"}
    assert (await api.call("POST", "/rooms", body))[0] == 409
    _, listed = await api.call("GET", "/rooms", expect=200)
    assert listed["items"] == [{"id": room["id"], "name": "support", "members": 0}]
    assert (await api.call("GET", f"/rooms/{room['id']}", expect=200))[1] == room

    outsider = await api_node.client(user="bob", attributes={"city": "Rome"})
    assert (await outsider.join(room["id"]))["status_code"] == 403
    _, opened = await api.call("PUT", f"/rooms/{room['id']}/acl", {"acl": {}}, expect=200)
    assert opened["acl"] == {}
    assert (await outsider.join(room["id"]))["status_code"] == 200
    _, users = await api.call("GET", f"/rooms/{room['id']}/users", expect=200)
    assert users["items"] == [{"id": "bob", "summary": "bob"}]


async def test_unknown_rooms_and_users_are_404(api):
    for method, path, body in [
        ("GET", "/rooms/nope", None),
        ("PATCH", "/rooms/nope", {"name": "x"}),
        ("DELETE", "/rooms/nope", None),
        ("PUT", "/rooms/nope/acl", {"acl": {}}),
        ("GET", "/rooms/nope/users", None),
        ("GET", "/rooms/nope/history", None),
        ("GET", "/users/nobody", None),
        ("POST", "/users/nobody/disconnect", None),
    ]:
        status, error = await api.call(method, path, body)
        assert status == 404, (method, path, error)
        assert "nope" in error["error"] or "nobody" in error["error"]


@pytest.mark.parametrize(
    ("method", "path", "body", "named"),
    [
        ("POST", "/messages", {}, "actor"),
        ("POST", "/messages", {"actor": {"id": "a"}, "object": {"content": "x"}}, "target"),
        ("POST", "/messages", {"actor": {"id": "a"}, "target": {"id": "u"}}, "object"),
        ("POST", "/messages", {"actor": {"id": "a"}, "target": {"id": "u"},
                               "object": {"content": ""}}, "object.content"),
        ("POST", "/messages", {"actor": {"id": "a"}, "target": {"id": "u"},
                               "object": {"content": 5}}, "object.content"),
        ("POST", "/messages", {"actor": {"id": "a"}, "target": {"id": "u", "objectType": "x"},
                               "object": {"content": "x"}}, "target.objectType"),
        ("POST", "/messages", {"actor": {"id": "a\x01"}, "target": {"id": "u"},
                               "object": {"content": "x"}}, "actor.id"),
        ("POST", "/messages", {"actor": {"id": "a"}, "targets": [],
                               "object": {"content": "x"}}, "targets"),
        ("POST", "/messages", {"actor": {"id": "a"}, "targets": [{"id": "u"}] * 2,
                               "object": {"content": "x"}}, "targets"),
        ("POST", "/messages", {"actor": {"id": "a"}, "object": {"content": "x"},
                               "targets": [{"id": f"u{i}"} for i in range(1001)]}, "targets"),
        ("POST", "/messages", {"actor": {"id": "a"}, "target": {"id": "u"},
                               "object": {"content": "x" * 10_241}}, "object.content"),
        ("POST", "/messages", [], "JSON object"),
        ("POST", "/broadcast", {"object": {}}, "object.content"),
        ("POST", "/rooms", {}, "name"),
        ("POST", "/rooms", {"name": "x" * 129}, "name"),
        ("POST", "/rooms", {"name": "ok", "owners": "alice"}, "owners"),
        ("POST", "/rooms", {"name": "ok", "owners": [{"summary": "A"}]}, "owners[0].id"),
        ("POST", "/rooms", {"name": "ok", "acl": {"age": "old:"}}, "age"),
        ("POST", "/rooms", {"name": "ok", "acl": {"age": 18}}, "acl.age"),
        ("POST", "/rooms", {"name": "ok", "acl": []}, "acl"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
async def test_bad_bodies_are_400_naming_the_field(api, method, path, body, named):
    status, error = await api.call(method, path, body)
    assert status == 400, error
    assert named in error["error"]


async def test_a_body_that_is_not_json_or_too_large(api, api_node, http):
    assert (await api.call("POST", "/rooms", raw=b"{not json"))[0] == 400
    assert (await api.call("POST", "/rooms", raw=b"\xff\xfe"))[0] == 400
    too_big = b'{"name": "' + b"x" * 1_100_000 + b'"}'
    status, error = await api.call("POST", "/rooms", raw=too_big)
    assert status == 413 and "bytes" in error["error"]


async def test_bad_history_queries(api, api_node):
    _, room = await api.call("POST", "/rooms", {"name": "r"}, expect=201)
    for query in ("limit=0", "limit=501", "since=-1", "before=0", "limit=x", "since=1.5"):
        status, error = await api.call("GET", f"/rooms/{room['id']}/history?{query}")
        assert status == 400, (query, error)
        assert query.split("=")[0] in error["error"]


# -- across nodes (real Redis) ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["redis"])
async def test_across_nodes(node_factory, http):
    node_a = await node_factory(api_keys=(KEY,))
    node_b = await node_factory(api_keys=(KEY,))
    api_a = Api(node_a, http)
    on_b = await node_b.client(user="alice")
    also_on_a = await node_a.client("polling", user="alice")
    member_b = await node_b.client(user="bob")

    # A notification posted on A reaches alice's session on B.
    _, sent = await api_a.call("POST", "/messages", notice("alice", "hello from A"), expect=201)
    assert (await on_b.wait_for("message"))[0] == sent

    # Rename and removal reach members on both nodes.
    _, room = await api_a.call("POST", "/rooms", {"name": "ops"}, expect=201)
    for client in (on_b, member_b, also_on_a):
        assert (await client.join(room["id"]))["status_code"] == 200
    await api_a.call("PATCH", f"/rooms/{room['id']}", {"name": "operations"}, expect=200)
    for client in (on_b, member_b, also_on_a):
        [renamed] = await client.wait_for("gn_room_renamed")
        assert renamed["target"]["displayName"] == "operations"
        assert renamed["object"]["summary"] == "ops"
    _, user = await api_a.call("GET", "/users/alice", expect=200)
    assert (user["online"], user["sessions"], user["rooms"]) == (True, 2, [room["id"]])
    assert user["status"] == "online"
    await api_a.call("DELETE", f"/rooms/{room['id']}", expect=200)
    for client in (on_b, member_b, also_on_a):
        [removed] = await client.wait_for("gn_room_removed")
        assert removed["target"]["id"] == room["id"]
        # Out of the room on its own node: sending there is refused.
        reply = await client.say(room["id"], "anyone?")
        assert reply["status_code"] == 400
    _, user = await api_a.call("GET", "/users/alice", expect=200)
    assert user["rooms"] == []

    # One call closes alice's sessions on both nodes; bob stays.
    _, before = await api_a.call("POST", "/users/alice/disconnect", {"reason": "account closed"},
                                 expect=200)
    assert before["sessions"] == 2
    for client in (on_b, also_on_a):
        [closed] = await client.wait_for("gn_session_closed")
        assert closed["object"]["content"] == "account closed"
        await asyncio.wait_for(client.disconnected.wait(), 10)
    assert member_b.sio.connected

    async def offline() -> dict[str, Any]:
        while True:
            _, user = await api_a.call("GET", "/users/alice", expect=200)
            if not user["online"]:
                return user
            await asyncio.sleep(0.05)

    gone = await asyncio.wait_for(offline(), 10)
    assert gone["sessions"] == 0 and gone["last_seen"] is not None
    assert gone["status"] == "offline"


async def test_notifications_sent_while_offline_show_as_unread_conversations(api, api_node):
    await api.call("POST", "/messages", notice("dana", "your order shipped"), expect=201)
    await api.call("POST", "/messages", notice("dana", "it arrives today"), expect=201)
    dana = await api_node.client(user="dana")
    reply = await dana.call("conversations", {"verb": "list"})
    [conversation] = reply["data"]["object"]["attachments"]
    assert (conversation["id"], conversation["objectType"]) == ("backend", "user")
    assert (conversation["seq"], conversation["unread"]) == (2, 2)
    assert conversation["last"]["content"] == "it arrives today"
    _, user = await api.call("GET", "/users/dana", expect=200)
    assert user["status"] == "online"
