"""engine.io keep-alive on the lean websocket sessions: pings answered keep a client,
pings unanswered (a vanished client, a half-open TCP connection) close it, and its user
leaves the room for the others."""

from __future__ import annotations

import asyncio

import engineio
import socketio

from tests.raw_client import RawClient, health

pytest_plugins = ["tests.node_fixtures"]

INTERVAL = 1.0  # seconds, for --ping-interval and --ping-timeout


async def test_a_client_that_stops_answering_pings_is_closed(node_factory) -> None:
    node = await node_factory(ping_interval=INTERVAL, ping_timeout=INTERVAL)
    alice = await node.client("websocket", user="alice")  # answers pings
    room_id = await alice.create("lobby")
    await alice.join(room_id)
    mute = await RawClient.connect(node.port)
    await mute.join("mute", room_id)
    # From here on the raw client answers no ping.
    left = await alice.wait_for("gn_user_left", count=1)
    assert left[0]["actor"]["id"] == "mute"
    # Alice lived through the same ping rounds: she is still connected and served.
    await asyncio.sleep(4 * INTERVAL)
    assert alice.sio.connected
    users = await alice.call("users_in_room", {"target": {"id": room_id}})
    assert [u["id"] for u in users["data"]["object"]["attachments"]] == ["alice"]
    assert (await health(node))["sessions"] == 1
    mute.writer.close()


async def test_a_client_too_slow_to_answer_pings_reconnects_by_itself(node_factory) -> None:
    """The ping timeout closes the websocket without engine.io's CLOSE packet, as Node's
    server does: the official python client takes that packet for a deliberate
    disconnect and would never reconnect, although it was only slow."""
    node = await node_factory(ping_interval=0.5, ping_timeout=1.0)
    client = socketio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
    connects: list[float] = []
    client.on("connect", lambda: connects.append(asyncio.get_running_loop().time()), "/chat")
    await client.connect(
        f"http://127.0.0.1:{node.port}", transports=["websocket"], namespaces=["/chat"]
    )
    try:
        # Its pongs are lost for a while (a stalled network, a frozen tab).
        send_packet = client.eio._send_packet
        stalled = True

        async def send_unless_pong(pkt: engineio.packet.Packet) -> None:
            if not (stalled and pkt.packet_type == engineio.packet.PONG):
                await send_packet(pkt)

        client.eio._send_packet = send_unless_pong
        deadline = asyncio.get_running_loop().time() + 10
        while client.connected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert not client.connected, "the node kept a client that answered no ping"
        stalled = False
        while len(connects) < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert len(connects) >= 2, "the client did not reconnect after the ping timeout"
        # Served again. (On a busy machine this process, which also runs the node, may
        # miss another pong: the client then reconnects once more, which is the point.)
        reply: dict[str, object] = {}
        while not reply and asyncio.get_running_loop().time() < deadline:
            try:
                reply = await client.call(
                    "login", {"actor": {"id": "slow"}}, namespace="/chat", timeout=2
                )
            except socketio.exceptions.SocketIOError:
                await asyncio.sleep(0.1)
        assert reply.get("status_code") == 200, reply
    finally:
        await client.disconnect()
