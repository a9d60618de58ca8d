"""The Engine.IO v4 compliance suite (socketio/engine.io-protocol, ``test-suite/``),
ported to pytest: the same requests and the same checks, against a real node, on both
stores.

The original suite is MIT-licensed mocha code written for the reference *echo* server
at ``/engine.io/``; it is not published on npm, so it is not run here. What was adapted:

- the path is ``/socket.io/`` (dino serves engine.io only under socket.io);
- dino's application is socket.io, not an echo: where the suite sends ``4hello`` and
  expects it back, these tests send a socket.io CONNECT for ``/chat`` and expect
  socket.io's answer; several packets in one POST are answered in order;
- binary packets: dino's protocol is JSON, so a binary packet closes the session
  (the suite expects an echo); the tests check the refusal instead;
- a websocket with the sid of a session already upgraded is accepted and closed at once
  (as Node's engine.io does, and as the suite waits for); an unknown sid gets HTTP 400
  before the upgrade.
Checks the suite does not make are at the end (fractional intervals, pending GET on
close, upgrade queue order, ...).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.eio_wire import (
    MAX_PAYLOAD,
    PAST_PING_TIMEOUT,
    PING_INTERVAL,
    PING_TIMEOUT,
    Wire,
    compliance_node,
    wire,
)
from tests.raw_client import health

pytest_plugins = ["tests.node_fixtures"]
__all__ = ["compliance_node", "wire"]

CONNECT = "40/chat,"  # engine.io MESSAGE carrying a socket.io CONNECT to /chat


def is_connect_reply(packet: str | bytes | None) -> bool:
    return isinstance(packet, str) and packet.startswith('40/chat,{"sid":"')


# -- handshake -------------------------------------------------------------------------


async def test_polling_handshake_opens_a_session(wire: Wire) -> None:
    value = await wire.handshake()
    assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(value["sid"], str)
    assert value["upgrades"] == ["websocket"]
    assert value["pingInterval"] == PING_INTERVAL  # not 0: no truncation to seconds
    assert value["pingTimeout"] == PING_TIMEOUT
    assert value["maxPayload"] == MAX_PAYLOAD


@pytest.mark.parametrize("query", ["transport=polling", "EIO=abc&transport=polling"])
async def test_polling_handshake_fails_with_an_invalid_eio(wire: Wire, query: str) -> None:
    assert (await wire.request("GET", query))[0] == 400


@pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=abc"])
async def test_polling_handshake_fails_with_an_invalid_transport(wire: Wire, query: str) -> None:
    assert (await wire.request("GET", query))[0] == 400


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_polling_handshake_fails_with_an_invalid_method(wire: Wire, method: str) -> None:
    assert (await wire.request(method, "EIO=4&transport=polling"))[0] == 400


async def test_websocket_handshake_opens_a_session(wire: Wire) -> None:
    socket = await wire.websocket()
    data = await socket.receive()
    assert isinstance(data, str) and data.startswith("0")
    value = json.loads(data[1:])
    assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert value["upgrades"] == []
    assert (value["pingInterval"], value["pingTimeout"]) == (PING_INTERVAL, PING_TIMEOUT)
    assert value["maxPayload"] == MAX_PAYLOAD
    await socket.close()


@pytest.mark.parametrize(
    "query", ["transport=websocket", "EIO=abc&transport=websocket", "EIO=4", "EIO=4&transport=abc"]
)
async def test_websocket_handshake_fails_with_an_invalid_query(wire: Wire, query: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await wire.websocket(query)
    assert refused.value.status == 400


# -- message ---------------------------------------------------------------------------


async def test_polling_sends_and_receives_one_packet(wire: Wire) -> None:
    sid = await wire.open_polling()
    assert await wire.post(sid, CONNECT) == (200, "ok")
    [connected, pushed] = await wire.poll_packets(sid, 2)
    assert is_connect_reply(connected)
    assert pushed.startswith('42/chat,["gn_connect"')


async def test_polling_sends_and_receives_several_packets(wire: Wire) -> None:
    sid = await wire.open_polling()
    body = "\x1e".join(
        [CONNECT, '42/chat,["login",{"actor":{"id":"ann"}}]', '42/chat,["list_rooms"]']
    )
    assert await wire.post(sid, body) == (200, "ok")
    packets = await wire.poll_packets(sid, 4)
    assert is_connect_reply(packets[0])
    assert [p[:22] for p in packets[1:]] == [
        '42/chat,["gn_connect",',
        '42/chat,["gn_login",{"',
        '42/chat,["gn_list_room',
    ]


async def test_polling_binary_packet_is_refused_and_closes_the_session(
    wire: Wire, compliance_node
) -> None:
    sid = await wire.open_polling()
    status, text = await wire.post(sid, CONNECT + "\x1ebAQIDBA==")
    assert (status, text) == (400, "binary packets are not accepted")
    assert (await wire.poll(sid))[0] == 400
    assert (await health(compliance_node))["edge"]["binary_refused"] == 1


async def test_polling_closes_the_session_upon_invalid_packet_format(
    wire: Wire, compliance_node
) -> None:
    sid = await wire.open_polling()
    status, text = await wire.post(sid, "abc")
    assert status == 400 and "malformed packet" in text
    assert (await wire.poll(sid))[0] == 400
    assert (await health(compliance_node))["edge"]["malformed_packets"] == 1


async def test_polling_closes_the_session_upon_duplicate_poll_requests(wire: Wire) -> None:
    sid = await wire.open_polling()
    first = asyncio.create_task(wire.poll(sid))
    await asyncio.sleep(0.05)  # the first GET is waiting (nothing to send yet)
    second = await wire.poll(sid)
    assert await first == (200, "1")  # CLOSE
    assert second[0] == 400
    assert (await wire.poll(sid))[0] == 400


async def test_websocket_sends_and_receives_a_text_packet(wire: Wire) -> None:
    socket = await wire.websocket()
    await socket.receive()  # handshake
    await socket.send(CONNECT)
    assert is_connect_reply(await socket.receive())
    await socket.close()


async def test_websocket_binary_packet_is_refused_and_closes_the_session(wire: Wire) -> None:
    socket = await wire.websocket()
    await socket.receive()  # handshake
    await socket.send(bytes([1, 2, 3, 4]))
    assert await socket.receive() == "1"  # CLOSE, then the websocket closes
    assert await socket.closed()


async def test_websocket_closes_the_session_upon_invalid_packet_format(wire: Wire) -> None:
    socket = await wire.websocket()
    await socket.receive()  # handshake
    await socket.send("abc")
    assert await socket.closed()


# -- heartbeat -------------------------------------------------------------------------


async def test_polling_sends_ping_and_takes_pong(wire: Wire) -> None:
    sid = await wire.open_polling()
    for _ in range(3):
        assert await wire.poll(sid) == (200, "2")
        assert await wire.post(sid, "3") == (200, "ok")


async def test_polling_closes_the_session_upon_ping_timeout(wire: Wire) -> None:
    sid = await wire.open_polling()
    await asyncio.sleep(PAST_PING_TIMEOUT)
    assert (await wire.poll(sid))[0] == 400


async def test_websocket_sends_ping_and_takes_pong(wire: Wire) -> None:
    socket = await wire.websocket()
    await socket.receive()  # handshake
    for _ in range(3):
        assert await socket.receive(pings=True) == "2"
        await socket.send("3")
    await socket.close()


async def test_websocket_closes_the_session_upon_ping_timeout(wire: Wire) -> None:
    socket = await wire.websocket()
    assert (await socket.receive() or "").startswith("0")
    assert await socket.receive(pings=True) == "2"  # never answered
    assert await socket.closed()


# -- close -----------------------------------------------------------------------------


async def test_polling_close_packet_ends_the_session_and_releases_the_pending_get(
    wire: Wire,
) -> None:
    sid = await wire.open_polling()
    pending = asyncio.create_task(wire.poll(sid))
    await asyncio.sleep(0.05)
    assert await wire.post(sid, "1") == (200, "ok")
    assert await pending == (200, "6")  # at once, not at the next ping
    assert (await wire.poll(sid))[0] == 400


async def test_websocket_close_packet_ends_the_session(wire: Wire) -> None:
    socket = await wire.websocket()
    await socket.receive()  # handshake
    await socket.send("1")
    assert await socket.closed()


# -- upgrade ---------------------------------------------------------------------------


async def probe(wire: Wire, sid: str) -> object:
    socket = await wire.websocket(f"EIO=4&transport=websocket&sid={sid}")
    await socket.send("2probe")
    assert await socket.receive() == "3probe"
    return socket


async def test_upgrade_from_polling_to_websocket(wire: Wire) -> None:
    sid = await wire.open_polling()
    socket = await wire.websocket(f"EIO=4&transport=websocket&sid={sid}")
    await socket.send("2probe")
    assert await socket.receive() == "3probe"
    assert await wire.poll(sid) == (200, "6")  # noop: ends the long-poll cleanly
    await socket.send("5")
    await socket.send(CONNECT)
    assert is_connect_reply(await socket.receive())  # no extra noop before it
    await socket.close()


async def test_http_requests_with_the_sid_are_refused_after_the_upgrade(wire: Wire) -> None:
    sid = await wire.open_polling()
    socket = await wire.websocket(f"EIO=4&transport=websocket&sid={sid}")
    await socket.send("2probe")
    await socket.send("5")
    assert await socket.receive() == "3probe"
    assert (await wire.poll(sid))[0] == 400
    await socket.send(CONNECT)
    assert is_connect_reply(await socket.receive())
    await socket.close()


async def test_a_second_websocket_with_the_sid_is_closed_after_the_upgrade(wire: Wire) -> None:
    sid = await wire.open_polling()
    socket = await wire.websocket(f"EIO=4&transport=websocket&sid={sid}")
    await socket.send("2probe")
    await socket.send("5")
    assert await socket.receive() == "3probe"
    second = await wire.websocket(f"EIO=4&transport=websocket&sid={sid}")
    assert await second.closed()
    await socket.send(CONNECT)
    assert is_connect_reply(await socket.receive())
    await socket.close()


# -- beyond the suite ------------------------------------------------------------------


async def test_a_websocket_with_an_unknown_sid_gets_400_before_the_upgrade(wire: Wire) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await wire.websocket("EIO=4&transport=websocket&sid=no-such-session")
    assert refused.value.status == 400


async def test_fractional_intervals_are_advertised_exactly(node_factory) -> None:
    node = await node_factory(ping_interval=0.5, ping_timeout=1.25)
    async with aiohttp.ClientSession() as http:
        value = await Wire(http, node.port).handshake()
    assert (value["pingInterval"], value["pingTimeout"]) == (500, 1250)


async def test_a_successful_post_answers_ok_and_jsonp_is_refused(wire: Wire) -> None:
    sid = await wire.open_polling()
    assert await wire.post(sid, "6") == (200, "ok")
    assert (await wire.request("GET", "EIO=4&transport=polling&j=0"))[0] == 400
    assert (await wire.request("POST", f"EIO=4&transport=polling&sid={sid}&j=0", "d=6"))[0] == 400


async def test_packets_queued_during_the_upgrade_go_first_on_the_websocket(wire: Wire) -> None:
    sid = await wire.open_polling()
    socket = await wire.websocket(f"EIO=4&transport=websocket&sid={sid}")
    await socket.send("2probe")
    assert await socket.receive() == "3probe"
    assert await wire.poll(sid) == (200, "6")
    # The client has stopped polling: the node's answers queue on the polling side ...
    assert await wire.post(sid, CONNECT) == (200, "ok")
    await socket.send("5")
    # ... and come first on the websocket, in order.
    assert is_connect_reply(await socket.receive())
    assert (await socket.receive() or "").startswith('42/chat,["gn_connect"')
    await socket.close()


@pytest.mark.parametrize("transport", ["websocket", "polling", "upgrade"])
async def test_compressed_websockets_carry_the_same_protocol(node_factory, transport: str) -> None:
    """With --compression the websocket sessions write through Tornado (which deflates)
    instead of the direct path; pings, replies and room deliveries still flow."""
    node = await node_factory(compression=True, ping_interval=0.3, ping_timeout=1.0)
    alice = await node.client("websocket", user="alice")
    bob = await node.client(transport, user="bob")
    room_id = await alice.create("deflated")
    for client in (alice, bob):
        assert (await client.join(room_id))["status_code"] == 200
    assert (await bob.say(room_id, "hello " * 100))["status_code"] == 200
    for client in (alice, bob):
        [message] = await client.wait_for("message", count=1)
        assert message["object"]["content"] == "hello " * 100
    await asyncio.sleep(1.0)  # a few ping rounds
    assert alice.sio.connected and bob.sio.connected
