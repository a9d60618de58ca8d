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
engine.io's own socket (``eio_session.EngineSession``), so everything above it is
unchanged. A polling session that upgrades (``polling.py``) becomes one of these.
Anything that is not engine.io v4 text (a binary frame: dino's protocol is JSON; an
unknown packet type) closes the session, with one log line per offender per minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import tornado.web
import tornado.websocket
from engineio import packet as eio_packet
from tornado.iostream import StreamBufferFullError

from .eio_session import EngineSession
from .hub import Link
from .wire import websocket_frame

if TYPE_CHECKING:
    from .transport import DirectEngineServer

log = logging.getLogger("dino.lean")


class LeanSocket(EngineSession):
    """One engine.io session on a websocket, without queues or tasks of its own.

    Opened directly (``open_lean_session``) or by a polling session's upgrade
    (``polling.PollingSocket``), which hands over its sid, user dict and event budget."""

    # Read by engine.io: transport() reports "websocket", and an HTTP (polling) request
    # carrying this sid is refused with 400.
    upgraded = True

    def __init__(
        self,
        server: DirectEngineServer,
        sid: str,
        handler: tornado.websocket.WebSocketHandler,
        link: Link,
        address: str,
    ) -> None:
        super().__init__(server, sid, address)
        self.handler = handler
        self.link = link
        self.ping_sent: float | None = None  # monotonic time of the unanswered ping

    def open_packet(self) -> bytes:
        return websocket_frame(("0" + self.server.handshake(self.sid, upgrades=[])).encode())

    def write_packet(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode()
        if not isinstance(encoded, str):  # dino never sends binary attachments
            return
        self.write_text(encoded)

    def write_text(self, encoded: str) -> None:
        if self.server.direct_writes:
            self.link.write(websocket_frame(encoded.encode()))
            return
        # permessage-deflate: Tornado compresses per frame in write_message.
        try:
            self.handler.write_message(encoded)
        except StreamBufferFullError:
            self.server.drop_slow_consumer(self.sid, self.link)
        except tornado.websocket.WebSocketClosedError:
            pass

    def ping(self, now: float) -> None:
        if self.ping_sent is None:
            self.ping_sent = now
        self.write_text("2")

    async def receive(self, message: str | bytes) -> None:
        server = self.server
        if self.closing or self.closed:
            return  # frames that were in flight when the session was closed
        if isinstance(message, bytes):
            # Binary frames carry socket.io attachments; dino's protocol is JSON, and
            # python-socketio would buffer every announced attachment without a bound.
            server.edge.offence(
                "binary_refused", self.address, "closing %s: binary frames are not accepted",
                self.sid,
            )
            await self.close(abort=False, reason=server.reason.SERVER_DISCONNECT)
            return
        kind, data = message[:1], message[1:]
        if kind == "4":
            await server._trigger_event("message", self.sid, data, run_async=False)
        elif kind == "3":
            self.ping_sent = None
        elif kind == "1":
            await self.close(abort=True, reason=server.reason.CLIENT_DISCONNECT)
        elif kind == "2":  # not sent by engine.io v4 clients, answered for robustness
            self.write_text("3" + data)
        elif kind != "6":  # noop is harmless; anything else is not engine.io v4
            server.edge.offence(
                "malformed_packets", self.address, "closing %s: invalid engine.io packet %r",
                self.sid, message[:16],
            )
            await self.close(abort=False, reason=server.reason.TRANSPORT_ERROR)

    async def check_ping_timeout(self) -> bool:
        """engine.io's service task calls this; our ping loop does the same check."""
        sent = self.ping_sent
        if sent is not None and time.monotonic() - sent > self.server.ping_timeout:
            # No CLOSE packet, as Node's server: the official python client takes one for a
            # deliberate disconnect and never reconnects, though it was only slow.
            await self.close(abort=True, reason=self.server.reason.PING_TIMEOUT)
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
                self.write_text("1")
            self.closed = True
            if server.sockets.get(self.sid) is self:
                del server.sockets[self.sid]
            server.links.pop(self.sid, None)
            self.released()
            self.handler.close()


def websocket_link(
    server: DirectEngineServer, handler: tornado.websocket.WebSocketHandler, sid: str
) -> Link:
    """The direct writer of an accepted websocket, bounded at the send buffer."""
    assert handler.ws_connection is not None  # open() runs on an accepted websocket
    stream = handler.ws_connection.stream
    assert stream is not None
    stream.max_write_buffer_size = server.send_buffer_bytes
    link: Link = Link(stream, lambda: server.drop_slow_consumer(sid, link))
    return link


def small_environ(handler: tornado.web.RequestHandler) -> dict[str, Any]:
    """The few WSGI fields python-socketio reads; the full environ would cost ~2 KB."""
    request = handler.request
    return {
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": request.query,
        "REMOTE_ADDR": request.remote_ip,
        "HTTP_ORIGIN": request.headers.get("Origin", ""),
        "wsgi.url_scheme": request.protocol,
    }


async def open_lean_session(
    server: DirectEngineServer, handler: tornado.websocket.WebSocketHandler, address: str
) -> LeanSocket | None:
    """Register a session for a freshly opened websocket and run engine.io's connect."""
    sid = server.generate_id()
    link = websocket_link(server, handler, sid)
    sock = LeanSocket(server, sid, handler, link, address)
    server.caps.opened(address)
    server.sockets[sid] = sock
    if server.direct_writes:
        server.links[sid] = link
    link.write(sock.open_packet())
    accepted = await server._trigger_event("connect", sid, small_environ(handler), run_async=False)
    if accepted is not None and accepted is not True:
        await sock.close(abort=False, reason=server.reason.SERVER_DISCONNECT)
        return None
    sock.start_connect_timer()
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
