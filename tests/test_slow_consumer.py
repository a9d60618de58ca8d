"""A client that stops reading is disconnected at --send-buffer-bytes; nobody else notices.

The slow client is a raw websocket (socket.io's clients always read), with a tiny receive
buffer so that the kernel's buffers fill early; once the node's own buffer for it passes
the bound, the node closes it instead of growing memory without limit.
"""

from __future__ import annotations

from tests.raw_client import RawClient, health
from tests.test_metrics import _text as metrics_text

pytest_plugins = ["tests.node_fixtures"]

CONTENT = "x" * 8000
# Enough to pass the kernel's send buffer (tcp_wmem max, 4 MiB here) plus the bound.
MESSAGES = 800


async def test_a_client_that_stops_reading_is_dropped_and_harms_nobody(node_factory) -> None:
    # Alice sends as fast as she can: lift the per-connection event rate for her.
    node = await node_factory(
        send_buffer_bytes=64 * 1024,
        max_events_per_second=100_000,
        max_user_events_per_second=100_000,
    )
    alice = await node.client("websocket", user="alice")
    room_id = await alice.create("firehose")
    await alice.join(room_id)
    sloth = await RawClient.connect(node.port)
    await sloth.join("sloth", room_id)
    # From here on the sloth reads nothing.
    for i in range(MESSAGES):
        reply = await alice.say(room_id, f"{CONTENT} {i}")
        assert reply["status_code"] == 200, reply
    got = await alice.wait_for("message", count=MESSAGES)
    assert [m["seq"] for m in got] == list(range(1, MESSAGES + 1))
    stats = await health(node)
    assert stats["slow_consumers_dropped"] == 1
    assert "\ndino_slow_consumers_dropped_total 1.0\n" in await metrics_text(node)
    assert stats["sessions"] == 1  # the sloth's session is gone, alice's is there
    sloth.writer.close()
