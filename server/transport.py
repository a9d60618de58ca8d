"""socket.io on Tornado, with a direct write path for websocket clients.

python-engineio queues every outgoing packet and a writer task per connection drains the
queue; python-socketio adds a task per recipient for each room emit. For a room of 200
that is 400 task switches per message. Here, once a websocket connection's queue has
drained, its MESSAGE packets are written straight to the Tornado stream (``Link``), in
the order they are sent, and a room message is framed once for all recipients
(``Hub.deliver``). Polling clients, and every packet before the switch, keep engine.io's
queue, so they behave exactly as before.

Only ``send_packet`` (engine.io's one exit for packets) and the websocket wrapper class
are replaced; both are small and their contracts are engine.io's own.
"""

from __future__ import annotations

import logging
from typing import Any

import engineio
import socketio
import tornado.web
from engineio import packet as eio_packet
from engineio.async_drivers import tornado as eio_tornado

from .hub import Link
from .wire import Json, engineio_message_frame

log = logging.getLogger("dino.transport")


class DirectEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """engine.io server that writes MESSAGE packets directly where a ``Link`` exists."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.links: dict[str, Link] = {}  # engine.io sid -> direct writer
        self.direct_writes = True
        self.send_buffer_bytes = 1 << 20
        self.slow_consumers_dropped = 0
        # Our websocket wrapper, in a copy of the driver table: the driver module's own
        # dict is shared by every server in the process.
        self._async: dict[str, Any] = dict(self._async, websocket=DirectWebSocket)

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        link = self.links.get(sid)
        if link is not None and pkt.packet_type == eio_packet.MESSAGE and isinstance(pkt.data, str):
            link.write(engineio_message_frame(pkt.data))
            return
        await super().send_packet(sid, pkt)

    def enqueue(self, sid: str, pkt: eio_packet.Packet) -> bool:
        """Queue ``pkt`` on engine.io's own path (polling, or before the switch)."""
        sock = self.sockets.get(sid)
        if sock is None or sock.closed or sock.closing:
            return False
        sock.queue.put_nowait(pkt)
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
    sio = DinoSocketServer(
        async_mode="tornado",
        json=Json,
        # One event at a time per connection: a client's messages get sequence numbers
        # in the order it sent them.
        async_handlers=False,
        cors_allowed_origins=origins,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=max_packet_bytes,
        http_compression=compression,
        logger=False,
        engineio_logger=False,
    )
    # Compressed connections need Tornado's write_message, which compresses per frame.
    sio.engine.direct_writes = not compression
    sio.engine.send_buffer_bytes = send_buffer_bytes
    return sio


def socketio_handler_class(
    sio: DinoSocketServer, compression: bool
) -> type[tornado.web.RequestHandler]:
    """The Tornado handler for /socket.io/, with permessage-deflate only if asked for."""
    base: type[tornado.web.RequestHandler] = socketio.get_tornado_handler(sio)

    class SocketIOHandler(base):  # type: ignore[valid-type,misc]
        async def open(self, *args: Any, **kwargs: Any) -> None:
            # Chat frames are small and latency matters: without this, Nagle's algorithm
            # and delayed ACKs hold a reply back ~40 ms.
            self.set_nodelay(True)
            await super().open(*args, **kwargs)

        def get_compression_options(self) -> dict[str, Any] | None:
            # engine.io's handler always enables it; it halves throughput and costs a
            # zlib context per connection.
            return {} if compression else None

    return SocketIOHandler
