"""socket.io on Tornado, with a direct write path for websocket clients.

python-engineio queues every outgoing packet and a writer task per connection drains the
queue; python-socketio adds a task per recipient for each room emit. For a room of 200
that is 400 task switches per message. Here, once a websocket connection's queue has
drained, its MESSAGE packets are written straight to the Tornado stream (``Link``), in
the order they are sent, and a room message is framed once for all recipients
(``Hub.deliver``). Polling clients, and every packet before the switch, keep engine.io's
queue, so they behave exactly as before.

Clients that open a websocket directly skip engine.io's socket altogether: see
``lean.py``. What is replaced of engine.io is small and keeps engine.io's contracts:
``send_packet`` (its one exit for packets), the websocket wrapper, the queue factory,
the message handler (to close clients whose packets cannot be parsed) and the Tornado
handler (no compression by default, TCP_NODELAY, origin check before the upgrade).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
import socketio
import tornado.web
import tornado.websocket
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import tornado as eio_tornado

from .hub import Link
from .lean import LeanSocket, open_lean_session, ping_forever
from .wire import Json, engineio_message_frame

log = logging.getLogger("dino.transport")


class PollBatchQueue(asyncio.Queue[Any]):
    """engine.io's per-socket send queue, handing out at most 16 packets per batch.

    engine.io drains the whole queue into one long-poll response, but python-engineio's
    client refuses a payload of more than 16 packets and drops the connection: a burst
    (a busy room, a reconnect's replies) would disconnect every python polling client.
    ``poll()`` takes one packet with ``get()``, then more with ``get_nowait()`` until
    ``QueueEmpty``; saying "empty" after 16 leaves the rest for the next poll.
    """

    MAX_BATCH = 16
    _taken = 0

    async def get(self) -> Any:
        self._taken = 0  # a new batch (asyncio's get() calls get_nowait() inside)
        return await super().get()

    def get_nowait(self) -> Any:
        if self._taken >= self.MAX_BATCH:
            raise asyncio.QueueEmpty
        item = super().get_nowait()
        self._taken += 1
        return item


class DirectEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """engine.io server that writes MESSAGE packets directly where a ``Link`` exists."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.links: dict[str, Link] = {}  # engine.io sid -> direct writer
        self.direct_writes = True
        self._pinger: asyncio.Task[None] | None = None
        self.send_buffer_bytes = 1 << 20
        self.slow_consumers_dropped = 0
        # Our websocket wrapper, in a copy of the driver table: the driver module's own
        # dict is shared by every server in the process.
        self._async: dict[str, Any] = dict(self._async, websocket=DirectWebSocket)

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        sock = self.sockets.get(sid)
        if isinstance(sock, LeanSocket):
            if not sock.closed:
                sock.write_packet(pkt)
            return
        link = self.links.get(sid)
        if link is not None and pkt.packet_type == eio_packet.MESSAGE and isinstance(pkt.data, str):
            link.write(engineio_message_frame(pkt.data))
            return
        await super().send_packet(sid, pkt)

    def create_queue(self, *args: Any, **kwargs: Any) -> PollBatchQueue:
        return PollBatchQueue(*args, **kwargs)

    def ensure_pinging(self) -> None:
        """Start the one ping loop of lean sessions (lazily: it needs a running loop)."""
        if self._pinger is None or self._pinger.done():
            self._pinger = asyncio.create_task(ping_forever(self))

    async def stop_pinging(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger

    def enqueue(self, sid: str, pkt: eio_packet.Packet) -> bool:
        """Queue ``pkt`` on engine.io's own path (polling, or before the switch)."""
        sock = self.sockets.get(sid)
        if sock is None or sock.closed or sock.closing:
            return False
        queue = getattr(sock, "queue", None)
        if queue is None:
            # A lean session whose link was just dropped (a slow consumer) is closing: it
            # has no engine.io queue, and raising here would cut the fan-out loop short
            # for the room's other members.
            return False
        queue.put_nowait(pkt)
        return True

    def drop_slow_consumer(self, sid: str, link: Link) -> None:
        self.slow_consumers_dropped += 1
        log.warning(
            "closing %s: more than %d bytes waiting to be sent (slow consumer)",
            sid,
            self.send_buffer_bytes,
        )
        self.links.pop(sid, None)
        link.stream.close()


class DirectWebSocket(eio_tornado.WebSocket):  # type: ignore[misc]
    """engine.io's Tornado websocket wrapper, which switches its socket to direct writes.

    engine.io's writer task calls ``send`` for queued packets. When the queue is empty
    after such a send, nothing older is waiting, so from then on a direct write cannot
    overtake a queued packet: that is the moment the ``Link`` is installed. The writer
    drains a whole batch without yielding, so packets of the same batch that follow go
    through the same stream buffer, in order.
    """

    def __init__(self, handler: Any, server: DirectEngineServer) -> None:
        super().__init__(handler, server)
        self.server = server
        self.socket = handler.__self__  # handler is the socket's bound _websocket_handler

    async def __call__(self, environ: dict[str, Any]) -> None:
        try:
            await super().__call__(environ)
        finally:
            self.server.links.pop(self.socket.sid, None)

    async def send(self, message: Any) -> None:
        await super().send(message)
        sock, server = self.socket, self.server
        if (
            server.direct_writes
            and sock.upgraded
            and sock.queue.empty()
            and sock.sid not in server.links
            and not sock.closing
        ):
            stream = self.tornado_handler.ws_connection.stream
            stream.max_write_buffer_size = server.send_buffer_bytes
            sid = sock.sid
            link: Link = Link(stream, lambda: server.drop_slow_consumer(sid, link))
            server.links[sid] = link


class DinoSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    def _engineio_server_class(self) -> type[DirectEngineServer]:
        return DirectEngineServer

    @property
    def engine(self) -> DirectEngineServer:
        eio: DirectEngineServer = self.eio
        return eio


def create_socket_server(
    *,
    compression: bool,
    send_buffer_bytes: int,
    max_packet_bytes: int,
    ping_interval: float,
    ping_timeout: float,
    cors_origins: tuple[str, ...],
) -> DinoSocketServer:
    # None: same origin only.
    origins: str | list[str] | None = "*" if "*" in cors_origins else list(cors_origins) or None
    # engine.io refuses a polling POST of more than 16 packets and drops the batch; the JS
    # client sends everything it buffered in one POST (a reconnect: login, every rejoin,
    # every history call). The byte limit, max_http_buffer_size, still bounds a POST.
    # This is the library's own knob, a class attribute, hence set here for the process.
    eio_payload.Payload.max_decode_packets = 4096
    sio = DinoSocketServer(
        async_mode="tornado",
        json=Json,
        # One event at a time per connection: a client's messages get sequence numbers
        # in the order it sent them.
        async_handlers=False,
        # Send socket.io's CONNECT before our connect handler runs, so that gn_connect
        # reaches a client that already knows it is connected. Nothing is refused at
        # connect time: identity is established by the login event.
        always_connect=True,
        cors_allowed_origins=origins,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=max_packet_bytes,
        http_compression=compression,
        logger=False,
        engineio_logger=False,
    )
    sio.engine.on("message", _closing_on_parse_errors(sio))
    # Compressed connections need Tornado's write_message, which compresses per frame.
    sio.engine.direct_writes = not compression
    sio.engine.send_buffer_bytes = send_buffer_bytes
    return sio


def _closing_on_parse_errors(
    sio: DinoSocketServer,
) -> Callable[[str, str | bytes], Awaitable[None]]:
    """python-socketio's packet handler, closing a client whose packet cannot be parsed.

    Event handlers catch their own errors (server/namespace.py), so what arrives here is
    a packet socket.io could not decode. socket.io for Node closes such a client; python-
    socketio logs a traceback and carries on, so a broken client could fill the log."""
    handle = sio._handle_eio_message

    async def handle_or_close(eio_sid: str, data: str | bytes) -> None:
        try:
            await handle(eio_sid, data)
        except Exception as exc:
            log.warning("closing %s: unparseable packet (%s: %s)", eio_sid, type(exc).__name__, exc)
            await sio.engine.disconnect(eio_sid)

    return handle_or_close


def socketio_handler_class(
    sio: DinoSocketServer, compression: bool
) -> type[tornado.web.RequestHandler]:
    """The Tornado handler for /socket.io/: engine.io's, plus the lean websocket path."""
    engine = sio.engine
    base: type[tornado.websocket.WebSocketHandler] = socketio.get_tornado_handler(sio)

    class SocketIOHandler(base):  # type: ignore[valid-type,misc]
        lean: LeanSocket | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Skip engine.io's __init__: it gives every request a receive queue, which
            # a lean session never uses; non-lean websockets get one in open().
            tornado.websocket.WebSocketHandler.__init__(self, *args, **kwargs)

        def check_origin(self, origin: str) -> bool:
            """Refuse a foreign page's websocket with 403, before the upgrade.

            engine.io's handler lets every origin through here in same-origin mode and
            refuses later, when a websocket can no longer be answered: it hangs."""
            allowed = engine.cors_allowed_origins
            if allowed == "*":
                return True
            if allowed:
                return origin in ([allowed] if isinstance(allowed, str) else allowed)
            # Same origin: Tornado compares the Origin's host:port with the Host header.
            return tornado.websocket.WebSocketHandler.check_origin(self, origin)

        @property
        def max_message_size(self) -> int:
            # Tornado closes the websocket on a larger frame, as socket.io does.
            size: int = engine.max_http_buffer_size
            return size

        def _wants_lean(self) -> bool:
            query = self.request.query_arguments
            return (
                engine.direct_writes
                and "sid" not in query
                and query.get("transport") == [b"websocket"]
                and query.get("EIO") == [b"4"]
            )

        async def open(self, *args: Any, **kwargs: Any) -> None:
            # Chat frames are small and latency matters: without this, Nagle's algorithm
            # and delayed ACKs hold a reply back ~40 ms.
            self.set_nodelay(True)
            if self._wants_lean():
                self.lean = await open_lean_session(engine, self)
                return
            self.receive_queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
            await super().open(*args, **kwargs)

        async def on_message(self, message: str | bytes) -> None:
            if self.lean is not None:
                await self.lean.receive(message)
            else:
                await super().on_message(message)

        def on_close(self) -> None:
            if self.lean is not None:
                lean, self.lean = self.lean, None
                task = asyncio.ensure_future(
                    lean.close(abort=True, reason=engine.reason.TRANSPORT_CLOSE)
                )
                task.add_done_callback(_log_failure)
            elif hasattr(self, "receive_queue"):
                super().on_close()

        def get_compression_options(self) -> dict[str, Any] | None:
            # engine.io's handler always enables it; it halves throughput and costs a
            # zlib context per connection.
            return {} if compression else None

    return SocketIOHandler


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("closing a session failed", exc_info=task.exception())
