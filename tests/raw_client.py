"""A socket.io client over a raw websocket, for behaviour no official client shows:
one that stops reading, or stops answering pings."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp

from loadtest.ws import FrameParser, encode_frame

MASK = b"dino"


class RawClient:
    """Reads only when asked to; answers nothing by itself (not even pings)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = FrameParser()
        self.pending: list[str] = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
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
