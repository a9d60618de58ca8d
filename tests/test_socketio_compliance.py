"""The Socket.IO v5 compliance suite (socketio/socket.io-protocol, ``test-suite/``),
ported to pytest against a real node, on both stores.

Its engine.io half repeats the Engine.IO suite at ``/socket.io/``
(tests/test_engineio_compliance.py runs those checks). Its socket.io half is written for
the reference application: a main namespace ``/`` and a ``/custom`` one that emit an
``auth`` event with the handshake's auth payload and echo ``message`` as
``message-back``, binary attachments included. dino has one namespace, ``/chat``, and
its own events. What was adapted (the original suite is MIT-licensed mocha code, not
published on npm, and not run here):

- "connect to the main namespace" connects ``/chat``; the push after CONNECT is
  ``gn_connect`` (not ``auth``); ``/`` and ``/custom`` are unknown namespaces for dino and
  get the v5 CONNECT_ERROR object;
- "send a plain-text packet" (with and without an ack) sends dino events and checks the
  ``gn_*`` reply and the ack;
- binary attachments are refused (dino's protocol is JSON): the connection is closed;
- "connect then disconnect from a custom namespace" becomes: disconnect ``/chat`` and
  connect it again on the same connection.
"""

from __future__ import annotations

import json

import pytest

from tests.eio_wire import Socket, Wire, compliance_node, wire
from tests.raw_client import health

pytest_plugins = ["tests.node_fixtures"]
__all__ = ["compliance_node", "wire"]


async def connected(wire: Wire) -> Socket:
    socket = await wire.websocket()
    await socket.receive()  # engine.io handshake
    await socket.send("40/chat,")
    assert (await socket.receive() or "").startswith('40/chat,{"sid":"')
    assert (await socket.receive() or "").startswith('42/chat,["gn_connect"')
    return socket


@pytest.mark.parametrize("auth", ["", '{"token":"123"}'])
async def test_connect_to_the_namespace(wire: Wire, auth: str) -> None:
    socket = await wire.websocket()
    await socket.receive()  # engine.io handshake
    await socket.send("40/chat," + auth)
    data = await socket.receive()
    assert isinstance(data, str) and data.startswith("40/chat,")
    handshake = json.loads(data[len("40/chat,") :])
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)
    assert await socket.receive() == '42/chat,["gn_connect",{"status_code":200}]'
    await socket.close()


@pytest.mark.parametrize(
    ("packet", "namespace"), [("40", "/"), ("40/custom,", "/custom"), ("40/random", "/random")]
)
async def test_an_unknown_namespace_is_refused_with_an_error_object(
    wire: Wire, packet: str, namespace: str
) -> None:
    socket = await wire.websocket()
    await socket.receive()  # engine.io handshake
    await socket.send(packet)
    prefix = "44" if namespace == "/" else f"44{namespace},"
    assert await socket.receive() == prefix + '{"message":"Invalid namespace"}'
    await socket.close()


async def test_an_invalid_handshake_closes_the_connection(wire: Wire) -> None:
    socket = await wire.websocket()
    await socket.receive()
    await socket.send("4abc")
    assert await socket.closed()


async def test_no_handshake_closes_the_connection_after_the_connect_timeout(
    wire: Wire, compliance_node
) -> None:
    socket = await wire.websocket()
    assert (await socket.receive() or "").startswith("0")
    assert await socket.closed()  # pings answered meanwhile: only the timeout closes it
    assert (await health(compliance_node))["edge"]["connect_timeouts"] == 1


async def test_disconnect_from_the_namespace(wire: Wire) -> None:
    socket = await connected(wire)
    await socket.send("41/chat,")
    assert await socket.receive(pings=True) == "2"  # nothing but the next ping
    await socket.close()


async def test_disconnect_then_connect_again_on_the_same_connection(wire: Wire) -> None:
    socket = await connected(wire)
    await socket.send("41/chat,")
    await socket.send("40/chat,")
    assert (await socket.receive() or "").startswith('40/chat,{"sid":"')
    assert (await socket.receive() or "").startswith('42/chat,["gn_connect"')
    await socket.close()


async def test_send_a_plain_text_packet(wire: Wire) -> None:
    socket = await connected(wire)
    await socket.send('42/chat,["login",{"actor":{"id":"ann"}}]')
    data = await socket.receive()
    assert isinstance(data, str) and data.startswith('42/chat,["gn_login",{"status_code":200')
    await socket.close()


async def test_send_a_plain_text_packet_with_an_ack(wire: Wire) -> None:
    socket = await connected(wire)
    await socket.send('42/chat,456["login",{"actor":{"id":"ann"}}]')
    reply = await socket.receive()
    ack = await socket.receive()
    assert isinstance(reply, str) and isinstance(ack, str)
    assert reply.startswith('42/chat,["gn_login",{"status_code":200')
    assert ack == "43/chat,456[" + reply[len('42/chat,["gn_login",') :]


@pytest.mark.parametrize(
    "packet",
    [
        '452-/chat,["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        '452-/chat,789["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        '4650-/chat,["x"]',
    ],
)
async def test_binary_attachments_are_refused(wire: Wire, compliance_node, packet: str) -> None:
    socket = await connected(wire)
    await socket.send(packet)
    await socket.send(bytes([1, 2, 3]))
    assert await socket.closed()
    assert (await health(compliance_node))["edge"]["binary_refused"] == 1


@pytest.mark.parametrize(
    "packet", ["4abc", "42{}", '42abc["message-with-ack",1,"2",{"3":[false]}]']
)
async def test_an_invalid_packet_closes_the_connection(wire: Wire, packet: str) -> None:
    socket = await connected(wire)
    await socket.send(packet)
    assert await socket.closed()
