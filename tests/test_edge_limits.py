"""The edge's limits, one finding per test, on both stores: each limit holds against the
client that hits it, says why in a readable 400/403/503 (or closes that client only),
is counted in ``/health``, and leaves everyone else served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import jwt
import pytest

pytest.register_assert_rewrite("tests.node_fixtures")
from tests.eio_wire import Socket, Wire  # noqa: E402
from tests.node_fixtures import RunningNode  # noqa: E402
from tests.raw_client import health  # noqa: E402

pytest_plugins = ["tests.node_fixtures"]

SECRET = "an-edge-test-secret-that-is-long-enough-for-hs256"


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["status_code"] == 200, reply
    data: dict[str, Any] = reply.get("data", {})
    return data


def bad(reply: dict[str, Any]) -> str:
    assert reply["status_code"] == 400, reply
    message: str = reply["data"]
    return message


async def raw_connected(wire: Wire) -> Socket:
    socket = await wire.websocket()
    await socket.receive()
    await socket.send("40/chat,")
    assert (await socket.receive() or "").startswith("40/chat,")
    await socket.receive()  # gn_connect
    return socket


async def replies(socket: Socket, count: int) -> list[dict[str, Any]]:
    """The next ``count`` replies (``gn_*`` events) on a raw websocket."""
    found = []
    while len(found) < count:
        frame = await socket.receive()
        assert isinstance(frame, str), frame
        if frame.startswith('42/chat,["gn_'):
            found.append(json.loads(frame[len("42/chat,") :])[1])
    return found


# -- rate limits -----------------------------------------------------------------------


async def test_reconnecting_the_namespace_does_not_refill_the_event_budget(node_factory) -> None:
    node = await node_factory(max_events_per_second=5, max_event_burst=20)
    alice = await node.client("websocket", user="alice")
    async with aiohttp.ClientSession() as http:
        socket = await raw_connected(Wire(http, node.port))
        for _ in range(30):
            await socket.send('42/chat,["list_rooms",{}]')
        first = await replies(socket, 30)
        assert sum(r["data"] == "too many requests: at most 5 events per second" for r in first)
        await asyncio.sleep(1.0)  # five tokens back
        # Disconnect and connect the namespace again: python-socketio makes a new
        # session, and the budget used to start over with a full burst of 20.
        await socket.send("41/chat,")
        await socket.send("40/chat,")
        assert (await socket.receive() or "").startswith("40/chat,")
        started = time.monotonic()
        for _ in range(30):
            await socket.send('42/chat,["list_rooms",{}]')
        second = await replies(socket, 31)  # gn_connect, then the 30 replies
        elapsed = time.monotonic() - started
        handled = sum(r.get("data") != "too many requests: at most 5 events per second"
                      for r in second[1:])
        assert handled <= 3 + 5 * elapsed + 1, (handled, elapsed)  # not 20
    ok(await alice.call("list_rooms", {}))


async def test_namespace_connect_floods_close_the_connection(node_factory) -> None:
    node = await node_factory(max_events_per_second=1, max_event_burst=10)
    alice = await node.client("websocket", user="alice")
    async with aiohttp.ClientSession() as http:
        socket = await raw_connected(Wire(http, node.port))
        for _ in range(20):
            await socket.send("41/chat,")
            await socket.send("40/chat,")
        assert await socket.closed()
    assert (await health(node))["edge"]["rate_limited"] == 1
    ok(await alice.call("list_rooms", {}))


async def test_a_user_is_limited_across_their_sessions(node_factory) -> None:
    node = await node_factory(
        max_events_per_second=1000, max_event_burst=1000,
        max_user_events_per_second=2, max_user_event_burst=10,
    )  # fmt: skip
    tabs = [await node.client("websocket", user="mallory") for _ in range(3)]
    results = [await tab.call("list_rooms", {}) for tab in tabs for _ in range(10)]
    refused = [r for r in results if r["status_code"] == 400]
    assert refused, "30 requests from one user must exceed 10 + 2 per second"
    assert {r["data"] for r in refused} == {
        "too many requests: at most 2 events per second per user"
    }
    bob = await node.client("websocket", user="bob")
    ok(await bob.call("list_rooms", {}))


# -- connection caps and timeouts ------------------------------------------------------


def from_address(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_connections_are_capped_per_address_and_per_node(node_factory) -> None:
    node = await node_factory(max_connections=3, max_connections_per_address=2)
    async with from_address("127.0.0.1") as one, from_address("127.0.0.2") as two:
        first = [await Wire(one, node.port).websocket() for _ in range(2)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await Wire(one, node.port).websocket()
        assert refused.value.status == 503
        status, text = await Wire(one, node.port).request("GET", "EIO=4&transport=polling")
        assert (status, text) == (503, "too many connections from 127.0.0.1 (at most 2)")
        third = await Wire(two, node.port).websocket()  # another address: admitted
        with pytest.raises(aiohttp.WSServerHandshakeError) as full:
            await Wire(two, node.port).websocket()
        assert full.value.status == 503
        stats = await health(node)
        assert stats["connections"] == 3 and stats["edge"]["connections_refused"] == 3
        await first[0].close()
        await asyncio.sleep(0.2)
        await (await Wire(one, node.port).websocket()).close()  # room again once one left
        for socket in [*first[1:], third]:
            await socket.close()


async def test_slow_headers_are_cut_off_at_the_header_timeout(node_factory) -> None:
    node = await node_factory(header_timeout=1.0)
    loris = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n")
        loris.append((reader, writer))
    for _ in range(10):  # a header byte now and then, for up to 10 s
        for _, writer in loris:
            if not writer.is_closing():
                writer.write(b"X")
        await asyncio.sleep(0.3)
        if all(reader.at_eof() for reader, _ in loris):
            break
    for reader, _ in loris:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the node
    alice = await node.client("polling", user="alice")
    ok(await alice.call("list_rooms", {}))


async def test_a_polling_session_without_a_namespace_is_closed_after_the_connect_timeout(
    node_factory,
) -> None:
    node = await node_factory(connect_timeout=0.5, ping_interval=0.2, ping_timeout=1.0)
    async with aiohttp.ClientSession() as http:
        wire = Wire(http, node.port)
        sid = await wire.open_polling()
        closed = False
        for _ in range(50):  # keeps answering pings, never connects /chat
            status, text = await wire.poll(sid)
            if status == 400 or "1" in text.split("\x1e"):
                closed = True
                break
            if "2" in text.split("\x1e"):
                await wire.post(sid, "3")
        assert closed
    assert (await health(node))["edge"]["connect_timeouts"] == 1


# -- malformed input: one log line, not a traceback per packet ------------------------


async def test_malformed_posts_are_logged_once_per_offender_per_minute(
    node: RunningNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with aiohttp.ClientSession() as http:
        wire = Wire(http, node.port)
        for _ in range(20):
            sid = await wire.open_polling()
            assert (await wire.post(sid, "x-not-a-packet"))[0] == 400
    assert (await health(node))["edge"]["malformed_packets"] == 20
    edge_lines = [r for r in caplog.records if r.name == "dino.edge"]
    assert len(edge_lines) == 1 and "malformed packet" in edge_lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


# -- history, quotas, names, ids -------------------------------------------------------


async def test_a_large_history_is_cut_with_more_instead_of_dropping_the_reader(
    node_factory,
) -> None:
    node = await node_factory(
        max_events_per_second=10_000, max_event_burst=10_000,
        max_user_events_per_second=10_000, max_user_event_burst=10_000,
    )  # fmt: skip
    alice = await node.client("websocket", user="alice")
    room_id = await alice.create("archive")
    await alice.join(room_id)
    for i in range(500):
        content = f"{i:05}" + "x" * 10_235  # 10,240 bytes: the largest message allowed
        await alice.emit("message", {"target": {"id": room_id}, "object": {"content": content}})
    await alice.wait_for("gn_message", count=500)
    reader = await node.client("websocket", user="reader")
    newest = ok(await reader.history({"id": room_id}, limit=500))
    entries = newest["object"]["attachments"]
    assert newest["more"] is True and 0 < len(entries) < 500
    assert entries[-1]["seq"] == 500  # paging back keeps the newest
    assert len(json.dumps(entries)) <= node.settings.max_history_reply_bytes
    oldest = ok(await reader.history({"id": room_id}, since=0, limit=500))
    assert oldest["more"] is True and oldest["object"]["attachments"][0]["seq"] == 1
    small = ok(await reader.history({"id": room_id}, limit=5))
    assert "more" not in small and len(small["object"]["attachments"]) == 5
    assert (await health(node))["slow_consumers_dropped"] == 0
    assert reader.sio.connected


async def test_rooms_created_per_user_are_capped(node_factory) -> None:
    node = await node_factory(max_rooms_per_user_per_hour=3)
    mallory = await node.client("websocket", user="mallory")
    for i in range(3):
        await mallory.create(f"spam-{i}")
    reply = await mallory.call("create", {"target": {"displayName": "spam-3"}})
    assert bad(reply) == "too many rooms created: at most 3 per hour per user"
    alice = await node.client("websocket", user="alice")
    await alice.create("real")


async def test_new_conversations_per_user_are_capped(node_factory) -> None:
    node = await node_factory(max_new_conversations_per_hour=2)
    mallory = await node.client("polling", user="mallory")
    ok(await mallory.tell("u1", "hi"))
    ok(await mallory.tell("u2", "hi"))
    assert bad(await mallory.tell("u3", "hi")) == (
        "too many new conversations: at most 2 users per hour"
    )
    ok(await mallory.tell("u1", "again"))  # an existing conversation is not new
    alice = await node.client("websocket", user="alice")
    ok(await alice.tell("u3", "hi"))


@pytest.mark.parametrize("name", ['a"b', "ends-with\\", 'both"\\'])
async def test_event_names_are_escaped_in_replies(node: RunningNode, name: str) -> None:
    async with aiohttp.ClientSession() as http:
        socket = await raw_connected(Wire(http, node.port))
        await socket.send("42/chat," + json.dumps([name, {}]))
        frame = await socket.receive()
        assert isinstance(frame, str)
        event, reply = json.loads(frame[len("42/chat,") :])  # valid JSON
        assert event == "gn_" + name
        assert reply == {"status_code": 400, "data": f"unknown event '{name}'"}


@pytest.mark.parametrize("user", ["del\x7f", "nel\x85", "csi\x9b", "bell\x07"])
async def test_ids_with_control_characters_are_refused(node: RunningNode, user: str) -> None:
    client = await node.client("websocket")
    reply = await client.login(user)
    assert bad(reply) == "actor.id must not contain control characters"


async def test_a_jwt_sub_follows_the_id_rules(node_factory) -> None:
    node = await node_factory(auth="jwt", jwt_secret=SECRET)
    token = jwt.encode({"sub": "eve\x85", "exp": int(time.time()) + 60}, SECRET)
    client = await node.client("websocket", auth={"token": token})
    assert bad(await client.call("login", {})) == "token sub must not contain control characters"


# -- JWT expiry ------------------------------------------------------------------------


async def test_a_token_without_exp_is_refused_unless_allowed(node_factory) -> None:
    forever = jwt.encode({"sub": "ann"}, SECRET)
    strict = await node_factory(auth="jwt", jwt_secret=SECRET)
    client = await strict.client("websocket", auth={"token": forever})
    assert bad(await client.call("login", {})) == 'invalid token: Token is missing the "exp" claim'
    lenient = await node_factory(auth="jwt", jwt_secret=SECRET, jwt_require_exp=False)
    client = await lenient.client("websocket", auth={"token": forever})
    ok(await client.call("login", {}))


async def test_a_session_ends_when_its_token_expires(node_factory, transport: str) -> None:
    node = await node_factory(auth="jwt", jwt_secret=SECRET)
    soon = jwt.encode({"sub": "ann", "exp": int(time.time()) + 2}, SECRET)
    ann = await node.client(transport, auth={"token": soon})
    ok(await ann.call("login", {}))
    [closed] = await ann.wait_for("gn_session_closed", count=1)
    assert "token expired" in closed["object"]["content"]
    await asyncio.wait_for(ann.disconnected.wait(), 10)
    assert (await health(node))["sessions"] == 0


async def test_logging_in_again_with_a_fresh_token_keeps_the_session(node_factory) -> None:
    node = await node_factory(auth="jwt", jwt_secret=SECRET)
    soon = jwt.encode({"sub": "ann", "exp": int(time.time()) + 2}, SECRET)
    ann = await node.client("websocket", auth={"token": soon})
    ok(await ann.call("login", {}))
    fresh = jwt.encode({"sub": "ann", "exp": int(time.time()) + 3600}, SECRET)
    token_attachment = [{"objectType": "token", "content": fresh}]
    ok(await ann.call("login", {"actor": {"attachments": token_attachment}}))
    await asyncio.sleep(3)  # past the first token's expiry
    assert ann.sio.connected and not ann.events("gn_session_closed")
    ok(await ann.call("list_rooms", {}))
