"""engine.io keep-alive on the lean websocket sessions: pings answered keep a client,
pings unanswered (a vanished client, a half-open TCP connection) close it, and its user
leaves the room for the others."""

from __future__ import annotations

import asyncio

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
