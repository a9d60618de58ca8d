"""Moderation across nodes, and through the HTTP API.

Two in-process nodes on the real Redis (one server, and a Redis Cluster): an action
taken on node A reaches the user's sessions on node B (and A). The HTTP API's moderation
endpoints run on every store. A node restart in the middle of a ban runs real node
processes (``DinoNode``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import socketio

from tests.cluster_fixtures import DinoNode
from tests.node_fixtures import RunningNode
from tests.redis_fixture import free_port
from tests.test_api import KEY, Api, http  # noqa: F401  (http is a fixture)
from tests.test_moderation import ATTRS, left, ok, room_req, status

pytest_plugins = ["tests.node_fixtures"]


async def two_nodes(node_factory) -> tuple[RunningNode, RunningNode]:
    return await node_factory(api_keys=(KEY,)), await node_factory(api_keys=(KEY,))


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_kick_ban_mute_reach_sessions_on_every_node(node_factory, http):  # noqa: F811
    node_a, node_b = await two_nodes(node_factory)
    owner = await node_a.client(user="owner")
    watcher = await node_a.client(user="watcher")
    on_a = await node_a.client(user="bob", attributes=ATTRS)
    on_b = await node_b.client("polling", user="bob", attributes=ATTRS)
    room = await owner.create("across")
    for client in (owner, watcher, on_a, on_b):
        ok(await client.join(room))

    ok(await owner.call("kick", room_req(room, id="bob", content="out")))
    for client in (on_a, on_b):
        [kicked] = await client.wait_for("gn_kicked")
        assert kicked["object"]["content"] == "out"
        assert status(await client.say(room, "here?")) == 400  # out on its own node too
    [seen] = await watcher.wait_for("gn_user_kicked")
    assert seen["object"]["id"] == "bob"

    for client in (on_a, on_b):
        ok(await client.join(room))
    ok(await owner.call("mute", room_req(room, id="bob", duration="1h")))
    for client in (on_a, on_b):
        await client.wait_for("gn_muted")
        assert status(await client.say(room, "quiet?")) == 403
    ok(await owner.call("unmute", room_req(room, id="bob")))
    ok(await on_b.say(room, "back"))

    ok(await owner.call("ban", room_req(room, id="bob", duration="7d", content="enough")))
    for client in (on_a, on_b):
        [banned] = await client.wait_for("gn_banned")
        expires = datetime.fromisoformat(banned["object"]["expires"])
        assert abs(expires.timestamp() - (time.time() + 7 * 86400)) < 60
        assert status(await client.say(room, "still?")) == 400
        reply = await client.join(room)
        assert status(reply) == 403 and left(reply["data"], "for ", "6d 23h 59m", "7d"), reply
    users = ok(await watcher.call("users_in_room", {"target": {"id": room}}))
    assert [u["id"] for u in users["object"]["attachments"]] == ["owner", "watcher"]


@pytest.mark.parametrize("backend", ["redis", "cluster"])
async def test_delete_edit_and_rules_reach_every_node(node_factory, http):  # noqa: F811
    node_a, node_b = await two_nodes(node_factory)
    owner = await node_a.client(user="owner")
    sender = await node_b.client(user="sender", attributes={"level": "1"})
    reader = await node_a.client(user="reader", attributes={"level": "7"})
    room = await owner.create("edits")
    for client in (owner, sender, reader):
        ok(await client.join(room))
    sent = ok(await sender.say(room, "typo"))
    edited = ok(await sender.call("edit_message", room_req(room, id=sent["id"], content="fixed")))
    assert (await reader.wait_for("gn_message_edited"))[0] == edited
    deleted = ok(await owner.call("delete_message", room_req(room, id=sent["id"])))
    for client in (reader, sender):
        assert (await client.wait_for("gn_message_deleted"))[0] == deleted
    # The next message's seq follows the revisions: no gap, no repair, nothing twice.
    after = ok(await reader.say(room, "next"))
    assert after["seq"] == deleted["seq"] + 1
    got = await sender.wait_for("message", lambda m: m["object"]["content"] == "next")
    assert got == [after]
    # A tightened join rule takes the sender out on node B; the reader stays.
    reply = await owner.call(
        "set_acl", {"target": {"id": room}, "object": {"rules": {"join": {"level": "5:"}}}}
    )
    ok(reply)
    [kicked] = await sender.wait_for("gn_kicked")
    assert kicked["object"]["content"] == "access rules changed"
    assert status(await sender.say(room, "?")) == 400
    await reader.settle()
    assert "gn_kicked" not in reader.names()
    # A rule on sending counts on every node at once.
    ok(await owner.call(
        "set_acl", {"target": {"id": room}, "object": {"rules": {"send": {"level": "9:"}}}}
    ))
    reply = await reader.say(room, "can I?")
    assert status(reply) == 403 and "send" in reply["data"]


# -- the HTTP API ----------------------------------------------------------------------------


@pytest.fixture
async def api_and_node(node_factory, http) -> tuple[Api, RunningNode]:  # noqa: F811
    node = await node_factory(api_keys=(KEY,))
    return Api(node, http), node


async def test_api_roles_and_admins(api_and_node: tuple[Api, RunningNode]):
    api, node = api_and_node
    _, room = await api.call("POST", "/rooms", {"name": "api-roles"}, expect=201)
    assert (room["moderators"], room["rules"]) == ([], {})
    bob = await node.client(user="bob", name="Bob")
    _, room = await api.call(
        "PUT", f"/rooms/{room['id']}/roles/bob", {"role": "moderator"}, expect=200
    )
    assert room["moderators"] == [{"id": "bob", "summary": "Bob"}]
    _, room = await api.call("PUT", f"/rooms/{room['id']}/roles/bob", {"role": "owner"}, expect=200)
    assert (room["owners"], room["moderators"]) == ([{"id": "bob", "summary": "Bob"}], [])
    status_code, error = await api.call("PUT", f"/rooms/{room['id']}/roles/bob", {"role": "x"})
    assert status_code == 400 and "'x'" in error["error"]
    await api.call("PUT", "/rooms/nope/roles/bob", {"role": "owner"}, expect=404)
    _, admin = await api.call("PUT", "/users/carol/role", {"role": "admin"}, expect=200)
    assert admin == {"id": "carol", "summary": "carol", "role": "admin"}
    carol = await node.client(user="carol")
    ok(await carol.call("rename_room", {"target": {"id": room["id"], "displayName": "mine"}}))
    await api.call("PUT", "/users/carol/role", {"role": "none"}, expect=200)
    reply = await carol.call("rename_room", {"target": {"id": room["id"], "displayName": "no"}})
    assert status(reply) == 403
    status_code, error = await api.call("PUT", "/users/carol/role", {"role": "owner"})
    assert status_code == 400 and "admin" in error["error"]
    assert bob.user == "bob"


async def test_api_kick_bans_mutes(api_and_node: tuple[Api, RunningNode]):
    api, node = api_and_node
    _, room = await api.call("POST", "/rooms", {"name": "api-bans"}, expect=201)
    rid = room["id"]
    bob = await node.client(user="bob")
    ok(await bob.join(rid))
    _, kicked = await api.call("POST", f"/rooms/{rid}/users/bob/kick", {"reason": "x"}, expect=200)
    assert kicked == {"room": rid, "user": "bob", "sessions": 1}
    [notice] = await bob.wait_for("gn_kicked")
    assert "actor" not in notice  # the backend kicked
    status_code, error = await api.call("POST", f"/rooms/{rid}/users/bob/kick")
    assert status_code == 400 and "not in room" in error["error"]

    _, ban = await api.call("PUT", f"/rooms/{rid}/bans/bob", {"duration": "2h", "reason": "r"},
                            expect=200)
    assert (ban["user"]["id"], ban["reason"], ban["by"]) == ("bob", "r", None)
    assert abs(datetime.fromisoformat(ban["expires"]).timestamp() - time.time() - 7200) < 60
    assert status(await bob.join(rid)) == 403
    _, listed = await api.call("GET", f"/rooms/{rid}/bans", expect=200)
    assert listed["items"] == [ban]
    _, lifted = await api.call("DELETE", f"/rooms/{rid}/bans/bob", expect=200)
    assert lifted == ban
    await api.call("DELETE", f"/rooms/{rid}/bans/bob", expect=404)
    ok(await bob.join(rid))

    _, mute = await api.call("PUT", f"/rooms/{rid}/mutes/bob", {}, expect=200)
    assert mute["expires"] is None
    assert status(await bob.say(rid, "hm")) == 403
    _, listed = await api.call("GET", f"/rooms/{rid}/mutes", expect=200)
    assert [m["user"]["id"] for m in listed["items"]] == ["bob"]
    await api.call("DELETE", f"/rooms/{rid}/mutes/bob", expect=200)
    ok(await bob.say(rid, "hm"))

    _, global_ban = await api.call("PUT", "/bans/bob", {"duration": 60}, expect=200)
    await asyncio.wait_for(bob.disconnected.wait(), 10)
    _, listed = await api.call("GET", "/bans", expect=200)
    assert listed["items"] == [global_ban]
    again = await node.client()
    assert status(await again.login("bob")) == 403
    await api.call("DELETE", "/bans/bob", expect=200)
    ok(await again.login("bob"))

    for body, field in (({"duration": "1y"}, "duration"), ({"duration": 0}, "duration"),
                        ({"reason": ["x"]}, "reason")):
        status_code, error = await api.call("PUT", f"/rooms/{rid}/bans/bob", body)
        assert status_code == 400 and field in error["error"], (body, error)
    await api.call("PUT", "/rooms/nope/bans/bob", {}, expect=404)
    await api.call("GET", "/rooms/nope/mutes", expect=404)
    status_code, error = await api.call("PUT", f"/rooms/{rid}/bans/%20", {})
    assert status_code == 400 and "user_id" in error["error"]


async def test_api_rules_and_messages(api_and_node: tuple[Api, RunningNode]):
    api, node = api_and_node
    _, room = await api.call("POST", "/rooms", {"name": "api-rules"}, expect=201)
    rid = room["id"]
    alice = await node.client(user="alice", attributes={"age": "30"})
    ok(await alice.join(rid))
    rules = {"send": [{"age": {"min": 18}}, {"vip": {"in": ["yes"]}}], "list": {"age": "40:"}}
    _, got = await api.call("PUT", f"/rooms/{rid}/rules", {"rules": rules}, expect=200)
    assert got["rules"] == {"send": rules["send"], "list": [rules["list"]]}
    _, again = await api.call("GET", f"/rooms/{rid}/rules", expect=200)
    assert again == got
    listed = ok(await alice.call("list_rooms", {}))["object"]["attachments"]
    assert rid not in [r["id"] for r in listed]  # hidden from her by the list rule
    for body, fragment in (({}, "rules is required"), ({"rules": {"talk": {}}}, "'talk'"),
                           ({"rules": {"send": {"age": {"min": "x"}}}}, "rules.send.age.min")):
        status_code, error = await api.call("PUT", f"/rooms/{rid}/rules", body)
        assert status_code == 400 and fragment in error["error"], (body, error)
    await api.call("PUT", "/rooms/nope/rules", {"rules": {}}, expect=404)

    sent = ok(await alice.say(rid, "hello"))
    _, edited = await api.call("PATCH", f"/rooms/{rid}/messages/{sent['id']}",
                               {"content": "hello!"}, expect=200)
    assert edited["object"]["content"] == "hello!" and "actor" not in edited
    assert (await alice.wait_for("gn_message_edited"))[0] == edited
    _, deleted = await api.call("DELETE", f"/rooms/{rid}/messages/{sent['id']}", expect=200)
    assert deleted["verb"] == "delete"
    _, history = await api.call("GET", f"/rooms/{rid}/history", expect=200)
    first = history["items"][0]
    assert "content" not in first["object"] and "deleted" in first and "updated" in first
    assert [h["verb"] for h in history["items"]] == ["send", "edit", "delete"]
    await api.call("DELETE", f"/rooms/{rid}/messages/{sent['id']}", expect=404)
    await api.call("PATCH", f"/rooms/{rid}/messages/nope", {"content": "x"}, expect=404)
    status_code, error = await api.call("PATCH", f"/rooms/{rid}/messages/x", {"content": ""})
    assert status_code == 400 and "content" in error["error"]


# -- a node restart in the middle of a ban ---------------------------------------------------


async def login_on(url: str, user: str) -> tuple[socketio.AsyncClient, dict[str, Any]]:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, namespaces=["/chat"], transports=["websocket"], wait_timeout=10)
    reply = await client.call(
        "login", {"actor": {"id": user}}, namespace="/chat", timeout=10
    )
    return client, reply


async def test_a_ban_outlives_a_node_restart(redis_url: str, tmp_path: Path, http):  # noqa: F811
    prefix = f"dinotest:{uuid.uuid4().hex}:"
    node = DinoNode(f"ban-{uuid.uuid4().hex[:6]}", free_port(), redis_url, prefix, tmp_path,
                    lease_ttl=4.0, heartbeat_interval=1.0)
    node.args += ["--api-keys", KEY]
    await asyncio.to_thread(node.start)
    try:
        base = node.url + "/api/v1"
        headers = {"Authorization": f"Bearer {KEY}"}
        async with http.post(base + "/rooms", json={"name": "r"}, headers=headers) as response:
            room = await response.json()
        async with http.put(f"{base}/rooms/{room['id']}/bans/bob", json={"duration": "3d"},
                            headers=headers) as response:
            assert response.status == 200
        async with http.put(f"{base}/bans/eve", json={"duration": "2d"},
                            headers=headers) as response:
            assert response.status == 200
        await asyncio.to_thread(node.kill)
        await asyncio.to_thread(node.start)  # the same node, a new process
        bob, reply = await login_on(node.url, "bob")
        try:
            assert reply["status_code"] == 200
            joined = await bob.call("join", {"target": {"id": room["id"]}}, namespace="/chat",
                                    timeout=10)
            assert joined["status_code"] == 403
            assert left(joined["data"], "for ", "2d 23h 59m", "3d"), joined
        finally:
            await bob.disconnect()
        eve, reply = await login_on(node.url, "eve")
        try:
            assert reply["status_code"] == 403
            assert left(reply["data"], "for ", "1d 23h 59m", "2d"), reply
        finally:
            await eve.disconnect()
    finally:
        await asyncio.to_thread(node.stop)
        client = aioredis.from_url(redis_url)
        keys = [k async for k in client.scan_iter(prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
