"""Raw engine.io v4 requests, as the official compliance suites make them: plain HTTP
long-polling requests and plain websockets (aiohttp), no socket.io client in between.

``compliance_node`` starts a node with the configuration both suites' READMEs ask of a
server: pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1,000,000 bytes (dino's
payload limit is 8 x --max-message-bytes), connectTimeout 1 s, any origin.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

PING_INTERVAL = 300  # ms, as the suites expect
PING_TIMEOUT = 200
MAX_PAYLOAD = 1_000_000
TIMEOUT = 10.0  # only reached when something is broken
# Longer than pingInterval + pingTimeout: the node must have closed the session by then.
PAST_PING_TIMEOUT = 1.0


@pytest_asyncio.fixture
async def compliance_node(node_factory: Any) -> Any:
    return await node_factory(
        ping_interval=PING_INTERVAL / 1000,
        ping_timeout=PING_TIMEOUT / 1000,
        max_message_bytes=MAX_PAYLOAD // 8,
        connect_timeout=1.0,
        cors_origins=("*",),
    )


class Wire:
    """HTTP and websocket requests to one node's ``/socket.io/``."""

    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http = http
        self.url = f"http://127.0.0.1:{port}/socket.io/"
        self.ws_url = f"ws://127.0.0.1:{port}/socket.io/"

    async def request(
        self, method: str, query: str, body: str | bytes | None = None
    ) -> tuple[int, str]:
        async with self.http.request(
            method, self.url + "?" + query, data=body, timeout=aiohttp.ClientTimeout(TIMEOUT)
        ) as reply:
            return reply.status, await reply.text()

    async def handshake(self) -> dict[str, Any]:
        status, text = await self.request("GET", "EIO=4&transport=polling")
        assert status == 200 and text.startswith("0"), (status, text)
        value: dict[str, Any] = json.loads(text[1:])
        return value

    async def open_polling(self) -> str:
        sid: str = (await self.handshake())["sid"]
        return sid

    async def poll(self, sid: str) -> tuple[int, str]:
        return await self.request("GET", f"EIO=4&transport=polling&sid={sid}")

    async def post(self, sid: str, body: str | bytes) -> tuple[int, str]:
        return await self.request("POST", f"EIO=4&transport=polling&sid={sid}", body)

    async def poll_packets(self, sid: str, count: int) -> list[str]:
        """GET until ``count`` packets other than pings have arrived; answer the pings."""
        packets: list[str] = []
        while len(packets) < count:
            status, text = await self.poll(sid)
            assert status == 200, (status, text)
            for packet in text.split("\x1e"):
                if packet == "2":
                    assert (await self.post(sid, "3"))[0] == 200
                else:
                    packets.append(packet)
        return packets

    async def websocket(self, query: str = "EIO=4&transport=websocket") -> Socket:
        ws = await self.http.ws_connect(
            self.ws_url + "?" + query, timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT)
        )
        return Socket(ws)


class Socket:
    """One raw websocket; ``receive`` skips engine.io pings unless asked for them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def receive(self, *, pings: bool = False) -> str | bytes | None:
        """The next frame's data; None once the websocket is closed."""
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT)
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                data: str | bytes = msg.data
                if data == "2" and not pings:
                    await self.ws.send_str("3")
                    continue
                return data
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.ERROR,
            ):
                return None

    async def closed(self) -> bool:
        """True once the node has closed this websocket (frames before it are skipped)."""
        while (await self.receive()) is not None:
            pass
        return True

    async def close(self) -> None:
        await self.ws.close()


@pytest_asyncio.fixture
async def wire(compliance_node: Any) -> AsyncIterator[Wire]:
    async with aiohttp.ClientSession() as http:
        yield Wire(http, compliance_node.port)
