"""engine.io v4 over HTTP long-polling, and the upgrade of such a session to a websocket.

This replaces python-engineio's polling path (its ``AsyncSocket`` and the polling half of
``handle_request``), which advertised ``pingInterval`` truncated to whole seconds, kept
sessions after malformed packets (logging a traceback each time), answered two concurrent
GETs, held a GET open after the client closed, queued replies without a bound and noticed
a missed pong late. What the protocol asks (engine.io-protocol README), here:

- a GET waits for packets and takes at most ``MAX_BATCH`` of them; a second GET while one
  waits closes the session (the waiting one gets CLOSE, the second 400);
- a POST carries packets separated by ``\\x1e`` and is answered ``ok``; a malformed one
  closes the session (400, one log line per offender per minute, counted in ``/health``);
- pings are timed per session: a ping ``pingInterval`` after the last pong, a close
  ``pingTimeout`` after an unanswered ping, to the millisecond;
- queued bytes are bounded by ``--send-buffer-bytes`` like a websocket's: a client that
  stops polling is dropped as a slow consumer instead of growing the node's memory;
- the upgrade: a websocket with the session's sid answers ``2probe`` with ``3probe``,
  ends the pending GET with a noop, and on ``5`` the session continues as a lean websocket
  session (``lean.LeanSocket``) with the same sid, after its queued packets.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Protocol

import tornado.websocket
from engineio import packet as eio_packet

from .eio_session import EngineSession
from .hub import Link
from .lean import LeanSocket, websocket_link
from .wire import websocket_frame

if TYPE_CHECKING:
    from .transport import DirectEngineServer

# python-engineio's client refuses a payload of more than 16 packets and drops the
# connection; socket.io's JS clients take any number. The rest waits for the next GET.
MAX_BATCH = 16
SEPARATOR = "\x1e"
NOOP = "6"
CLOSE = "1"


class BadPacket(Exception):
    """A packet the session does not accept: the session that sent it is closed.

    ``offence`` is the ``/health`` counter it is counted under."""

    def __init__(self, message: str, offence: str = "malformed_packets") -> None:
        super().__init__(message)
        self.offence = offence


class PollingSocket(EngineSession):
    """One engine.io session on long-polling."""

    upgraded = False

    def __init__(self, server: DirectEngineServer, sid: str, address: str) -> None:
        super().__init__(server, sid, address)
        self.outbox: deque[str] = deque()  # encoded packets waiting for a GET
        self.outbox_bytes = 0
        self._waiter: asyncio.Future[None] | None = None  # set while a GET waits
        self._posting = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self.probe: Probe | None = None  # a websocket taking over the session
        self.dropped = False  # over the send buffer: closing, nothing more is queued

    # -- sending -----------------------------------------------------------------------

    def write_packet(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode(b64=True)
        if isinstance(encoded, str):
            self.write_text(encoded)

    def write_text(self, encoded: str) -> None:
        if self.closed or self.dropped:
            return
        self.outbox.append(encoded)
        self.outbox_bytes += len(encoded)
        if self.outbox_bytes > self.server.send_buffer_bytes and not self.closing:
            # Nobody polls (or too slowly): same bound as a websocket's send buffer.
            self.dropped = True
            self.server.count_slow_consumer(self.sid)
            self.outbox.clear()
            self.outbox_bytes = 0
            self.server.spawn(self.close(abort=True, reason=self.server.reason.TRANSPORT_ERROR))
            return
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def take_batch(self) -> str:
        batch: list[str] = []
        while self.outbox and len(batch) < MAX_BATCH:
            text = self.outbox.popleft()
            self.outbox_bytes -= len(text)
            batch.append(text)
        return SEPARATOR.join(batch)

    # -- keep-alive --------------------------------------------------------------------

    def schedule_ping(self) -> None:
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(self.server.ping_interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.closing or self.closed:
            return
        self.write_text("2")
        self._pong_timer = asyncio.get_running_loop().call_later(
            self.server.ping_timeout, self._pong_missed
        )

    def _pong_missed(self) -> None:
        self._pong_timer = None
        # The client is gone: nothing is sent any more, a later GET gets 400.
        self.server.spawn(self.close(abort=True, reason=self.server.reason.PING_TIMEOUT))

    def pong(self) -> None:
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None
            self.schedule_ping()

    def _stop_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = None

    async def check_ping_timeout(self) -> bool:
        """engine.io's surface; the timers above do the work."""
        return not self.closed

    # -- requests ----------------------------------------------------------------------

    async def get(self, handler: PollingRequest) -> tuple[int, str]:
        if self._waiter is not None:
            # Two GETs at once: the client is broken (or hostile). Node closes too.
            self.server.edge.offence(
                "overlapping_polls", self.address, "closing %s: two GET requests at once",
                self.sid,
            )
            await self.close(abort=False, reason=self.server.reason.TRANSPORT_ERROR)
            return 400, "overlapping GET requests"
        if not self.outbox and self.probe is not None and self.probe.probed:
            return 200, NOOP  # upgrading: the client stops polling after this
        if not self.outbox and not self.closed:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            handler.waiting = waiter
            try:
                await waiter
            except asyncio.CancelledError:
                return 200, NOOP  # the client went away; nothing was taken
            finally:
                self._waiter = handler.waiting = None
        if not self.outbox:
            return 200, NOOP  # released by a close or an upgrade
        text = self.take_batch()
        if self.closed and not self.outbox:
            self.server.forget(self)  # a lingering closed session has said everything
        return 200, text

    async def post(self, body: bytes) -> tuple[int, str]:
        if self._posting:
            self.server.edge.offence(
                "overlapping_posts", self.address, "closing %s: two POST requests at once",
                self.sid,
            )
            await self.close(abort=False, reason=self.server.reason.TRANSPORT_ERROR)
            return 400, "overlapping POST requests"
        self._posting = True
        try:
            for text in decode_payload(body):
                await self.receive(text)
                if self.closing or self.closed or self.dropped:
                    break
        except BadPacket as exc:
            self.server.edge.offence(exc.offence, self.address, "closing %s: %s", self.sid, exc)
            # Like Node: the session ends at once, a later GET gets 400.
            await self.close(abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            return 400, str(exc)
        finally:
            self._posting = False
        return 200, "ok"

    async def receive(self, text: str) -> None:
        server = self.server
        kind, data = text[:1], text[1:]
        if kind == "4":
            await server._trigger_event("message", self.sid, data, run_async=False)
        elif kind == "3":
            self.pong()
        elif kind == "1":
            await self.close(abort=True, reason=server.reason.CLIENT_DISCONNECT)
        elif kind == "2":
            self.write_text("3" + data)
        elif kind == "b":
            # Binary carries socket.io attachments; dino's protocol is JSON.
            raise BadPacket("binary packets are not accepted", "binary_refused")
        elif kind != "6":
            raise BadPacket(f"malformed packet: invalid engine.io packet {text[:16]!r}")

    # -- closing -----------------------------------------------------------------------

    async def close(
        self, wait: bool = True, abort: bool = False, reason: str | None = None
    ) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        server = self.server
        try:
            await server._trigger_event(
                "disconnect", self.sid, reason or server.reason.SERVER_DISCONNECT, run_async=False
            )
        finally:
            self._stop_timers()
            if self.probe is not None:
                self.probe.handler.close()
            if not abort:
                self.write_text(CLOSE)
            self.closed = True
            self.released()
            if abort:
                self.outbox.clear()
                self.outbox_bytes = 0
                server.forget(self)
            elif self._waiter is None:
                # The client learns of the close (and reads the DISCONNECT before it) at
                # its next GET; it has until the ping timeout would have passed.
                asyncio.get_running_loop().call_later(
                    server.ping_interval + server.ping_timeout, server.forget, self
                )
            self._wake()


class PollingRequest(Protocol):
    """What a polling GET needs from its Tornado handler: a place for the future it
    waits on, which the handler cancels if the client disconnects meanwhile."""

    waiting: asyncio.Future[None] | None


def decode_payload(body: bytes) -> list[str]:
    """The packets of a POST body; an empty body or an empty packet is malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPacket("malformed packet: the body is not UTF-8 text") from None
    packets = text.split(SEPARATOR)
    if any(not packet for packet in packets):
        raise BadPacket("malformed packet: empty packet")
    return packets


class Probe:
    """A websocket opened with a polling session's sid: the upgrade in progress.

    ``2probe`` is answered ``3probe`` and the pending GET is ended with a noop; ``5``
    completes the upgrade. Anything else, or the websocket closing first, leaves the
    session on polling (the client falls back, as its transport allows)."""

    def __init__(self, sock: PollingSocket, handler: tornado.websocket.WebSocketHandler) -> None:
        self.sock = sock
        self.handler = handler
        self.probed = False
        self.link: Link = websocket_link(sock.server, handler, sock.sid)

    def receive(self, message: str | bytes) -> LeanSocket | None:
        """Handle a frame; the lean session that takes over once the upgrade completes."""
        sock = self.sock
        if message == "2probe" and not self.probed:
            self.probed = True
            self.link.write(websocket_frame(b"3probe"))
            sock._wake()  # the pending GET ends with a noop: the client pauses polling
            return None
        if message == "5" and self.probed and not sock.closing and not sock.closed:
            return self._complete()
        self.abandon()
        self.handler.close()
        return None

    def abandon(self) -> None:
        if self.sock.probe is self:
            self.sock.probe = None

    def _complete(self) -> LeanSocket:
        sock, server = self.sock, self.sock.server
        lean = LeanSocket(server, sock.sid, self.handler, self.link, sock.address)
        lean.session = sock.session
        lean.bucket = sock.bucket
        sock._stop_timers()
        # The session now lives on the websocket: what polling had queued goes first.
        while sock.outbox:
            lean.write_text(sock.outbox.popleft())
        sock.outbox_bytes = 0
        sock.upgraded = True  # a GET still in flight, or later, is refused
        sock.probe = None
        server.sockets[sock.sid] = lean
        if server.direct_writes:
            server.links[sock.sid] = self.link
        sock._wake()
        server.ensure_pinging()
        return lean
