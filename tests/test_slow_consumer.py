"""A client that stops reading is disconnected at --send-buffer-bytes; nobody else notices.

The slow client is a raw websocket (socket.io's clients always read), with a tiny receive
buffer so that the kernel's buffers fill early; once the node's own buffer for it passes
the bound, the node closes it instead of growing memory without limit.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp

from loadtest.ws import FrameParser, encode_frame

pytest_plugins = ["tests.node_fixtures"]

MASK = b"dino"
CONTENT = "x" * 8000
# Enough to pass the kernel's send buffer (tcp_wmem max, 4 MiB here) plus the bound.
MESSAGES = 800


class Sloth:
    """A socket.io client over a raw websocket that reads only until it has joined."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = FrameParser()
        self.pending: list[str] = []

    @classmethod
    async def connect(cls, port: int) -> Sloth:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await reader.readuntil(b"\r\n\r\n")
        return cls(reader, writer)

    def send(self, text: str) -> None:
        self.writer.write(encode_frame(0x1, text.encode(), MASK))

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self.send("42/chat," + json.dumps([event, data]))

    async def expect(self, prefix: str) -> str:
        while True:
            while self.pending:
                text = self.pending.pop(0)
                if text.startswith(prefix):
                    return text
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            assert data, "closed while still reading"
            self.pending += [payload.decode() for _, payload in self.parser.feed(data)]

    async def join(self, user: str, room_id: str) -> None:
        await self.expect("0{")  # engine.io OPEN
        self.send("40/chat,")
        await self.expect('42/chat,["gn_connect"')
        self.emit("login", {"actor": {"id": user}})
        assert '"status_code":200' in await self.expect('42/chat,["gn_login"')
        self.emit("join", {"target": {"id": room_id}})
        assert '"status_code":200' in await self.expect('42/chat,["gn_join"')


async def health(node: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(node.url + "/health") as reply:
        data: dict[str, Any] = await reply.json()
        return data


async def test_a_client_that_stops_reading_is_dropped_and_harms_nobody(node_factory) -> None:
    node = await node_factory(send_buffer_bytes=64 * 1024)
    alice = await node.client("websocket", user="alice")
    room_id = await alice.create("firehose")
    await alice.join(room_id)
    sloth = await Sloth.connect(node.port)
    await sloth.join("sloth", room_id)
    # From here on the sloth reads nothing.
    for i in range(MESSAGES):
        reply = await alice.say(room_id, f"{CONTENT} {i}")
        assert reply["status_code"] == 200, reply
    got = await alice.wait_for("message", count=MESSAGES)
    assert [m["seq"] for m in got] == list(range(1, MESSAGES + 1))
    stats = await health(node)
    assert stats["slow_consumers_dropped"] == 1
    assert stats["sessions"] == 1  # the sloth's session is gone, alice's is there
    sloth.writer.close()
