"""A lean engine.io session for clients that open a websocket directly.

python-engineio gives every connection two asyncio queues (Tornado's receive queue and
its own send queue), a writer task, a task per received message and a sleeping ping task:
about 40 KB per idle connection. A client that connects with ``transport=websocket``
(what load tools, mobile apps and ``io(url, {transports: ['websocket']})`` do) needs
none of that: Tornado already runs one read loop per websocket, so here

- received frames are dispatched from ``on_message`` (Tornado awaits it before reading
  the next frame, so a client's packets are still handled one at a time, in order);
- every outgoing packet is written straight to the stream through a ``Link``;
- one loop per node sends the engine.io pings and closes sessions whose pong is late.

The session speaks to python-engineio and python-socketio through the same surface as
engine.io's own socket (``sockets[sid]``, ``closed``, ``closing``, ``upgraded``,
``session``, ``check_ping_timeout``, ``close``), so everything above it is unchanged.
Polling clients, and polling clients that upgrade, keep engine.io's own path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from engineio import packet as eio_packet

from .hub import Link
from .wire import Json, websocket_frame

if TYPE_CHECKING:
    import tornado.websocket

    from .transport import DirectEngineServer

log = logging.getLogger("dino.lean")

PING_FRAME = websocket_frame(b"2")
CLOSE_FRAME = websocket_frame(b"1")


class LeanSocket:
    """One engine.io session on a websocket, without queues or tasks of its own."""

    # Read by engine.io: transport() reports "websocket", and an HTTP (polling) request
    # carrying this sid is refused with 400.
    upgraded = True
    connected = True

    def __init__(
        self,
        server: DirectEngineServer,
        sid: str,
        handler: tornado.websocket.WebSocketHandler,
        link: Link,
    ) -> None:
        self.server = server
        self.sid = sid
        self.handler = handler
        self.link = link
        self.closing = False
        self.closed = False
        self.session: dict[str, Any] = {}  # engine.io's per-session user dict
        self.ping_sent: float | None = None  # monotonic time of the unanswered ping

    def open_packet(self) -> bytes:
        server = self.server
        handshake = {
            "sid": self.sid,
            "upgrades": [],
            "pingTimeout": int(server.ping_timeout * 1000),
            # In ms, exactly (engine.io's int(seconds) * 1000 turns 0.5 s into 0).
            "pingInterval": int((server.ping_interval + server.ping_interval_grace_period) * 1000),
            "maxPayload": server.max_http_buffer_size,
        }
        return websocket_frame(("0" + Json.dumps(handshake)).encode())

    def write_packet(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode()
        if isinstance(encoded, str):
            self.link.write(websocket_frame(encoded.encode()))
        else:  # binary attachment: a binary frame
            self.handler.write_message(encoded, binary=True)

    def ping(self, now: float) -> None:
        if self.ping_sent is None:
            self.ping_sent = now
        self.link.write(PING_FRAME)

    async def receive(self, message: str | bytes) -> None:
        server = self.server
        if isinstance(message, bytes):  # binary attachment of a socket.io packet
            await server._trigger_event("message", self.sid, message, run_async=False)
            return
        kind, data = message[:1], message[1:]
        if kind == "4":
            await server._trigger_event("message", self.sid, data, run_async=False)
        elif kind == "3":
            self.ping_sent = None
        elif kind == "1":
            await self.close(abort=True, reason=server.reason.CLIENT_DISCONNECT)
        elif kind == "2":  # not sent by engine.io v4 clients, answered for robustness
            self.link.write(websocket_frame(("3" + data).encode()))

    async def check_ping_timeout(self) -> bool:
        """engine.io's service task calls this; our ping loop does the same check."""
        sent = self.ping_sent
        if sent is not None and time.monotonic() - sent > self.server.ping_timeout:
            await self.close(abort=False, reason=self.server.reason.PING_TIMEOUT)
            return False
        return not self.closed

    async def close(
        self, wait: bool = True, abort: bool = False, reason: str | None = None
    ) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        server = self.server
        try:
            await server._trigger_event(
                "disconnect",
                self.sid,
                reason or server.reason.SERVER_DISCONNECT,
                run_async=False,
            )
        finally:
            if not abort:
                self.link.write(CLOSE_FRAME)
            self.closed = True
            server.sockets.pop(self.sid, None)
            server.links.pop(self.sid, None)
            self.handler.close()


async def open_lean_session(
    server: DirectEngineServer, handler: tornado.websocket.WebSocketHandler
) -> LeanSocket | None:
    """Register a session for a freshly opened websocket and run engine.io's connect."""
    assert handler.ws_connection is not None  # open() runs on an accepted websocket
    stream = handler.ws_connection.stream
    assert stream is not None
    stream.max_write_buffer_size = server.send_buffer_bytes
    sid = server.generate_id()
    link: Link = Link(stream, lambda: server.drop_slow_consumer(sid, link))
    sock = LeanSocket(server, sid, handler, link)
    server.sockets[sid] = sock
    server.links[sid] = link
    link.write(sock.open_packet())
    # The few fields python-socketio reads; the full WSGI environ would cost ~2 KB.
    environ = {
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": handler.request.query,
        "REMOTE_ADDR": handler.request.remote_ip,
        "HTTP_ORIGIN": handler.request.headers.get("Origin", ""),
        "wsgi.url_scheme": handler.request.protocol,
    }
    accepted = await server._trigger_event("connect", sid, environ, run_async=False)
    if accepted is not None and accepted is not True:
        await sock.close(abort=False, reason=server.reason.SERVER_DISCONNECT)
        return None
    server.ensure_pinging()
    return sock


async def ping_forever(server: DirectEngineServer) -> None:
    """Ping every lean session once per interval; close those that did not answer."""
    while True:
        await asyncio.sleep(server.ping_interval)
        now = time.monotonic()
        for sock in list(server.sockets.values()):
            if not isinstance(sock, LeanSocket) or sock.closing:
                continue
            try:
                if await sock.check_ping_timeout():
                    sock.ping(now)
            except Exception:
                log.exception("closing session %s after a missed pong failed", sock.sid)
