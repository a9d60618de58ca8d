"""socket.io on Tornado: dino's own engine.io transport, under python-socketio.

python-socketio stays (namespaces, packets, acks); python-engineio's transport code is
replaced, for both transports, by two session classes with one surface:

- ``lean.LeanSocket``: a websocket session. Packets are written straight to the Tornado
  stream (``Link``), a room message is framed once for all recipients (``Hub.deliver``),
  and one ping loop per node serves every session: no queue or task per connection.
- ``polling.PollingSocket``: an HTTP long-polling session, which becomes a
  ``LeanSocket`` with the same sid when the client upgrades.

What is kept of python-engineio is its ``AsyncServer`` as the registry python-socketio
talks to (``sockets``, ``send_packet``, ``disconnect``, ``transport``, the event
handlers). Every HTTP request and websocket is dispatched here (``SocketIOHandler``):
protocol errors get 400 before any upgrade, a full node or address gets 503, a foreign
origin 403, JSONP is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import engineio
import socketio
import tornado.web
import tornado.websocket
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from .edge import ConnectionCaps, EdgeStats
from .eio_session import EngineSession
from .hub import Link
from .lean import LeanSocket, open_lean_session, ping_forever, small_environ
from .polling import PollingSocket, Probe
from .ratelimit import TokenBucket
from .wire import NAMESPACE, Json

log = logging.getLogger("dino.transport")


class DirectEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server as the session registry, with dino's sessions in it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sockets: dict[str, EngineSession]
        self.links: dict[str, Link] = {}  # engine.io sid -> direct writer (websockets)
        self.direct_writes = True
        self._pinger: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.send_buffer_bytes = 1 << 20
        self.slow_consumers_dropped = 0
        self.event_rate = 50.0
        self.event_burst = 200
        self.connect_timeout = 45.0
        self.edge = EdgeStats()
        self.caps = ConnectionCaps(max_per_node=1 << 30, max_per_address=1 << 30)
        # Whether an engine.io session has connected dino's namespace (set by socket.io).
        self.has_namespace: Callable[[str], bool] = lambda sid: False

    def handshake(self, sid: str, upgrades: list[str]) -> str:
        """The OPEN packet's JSON. Intervals in ms, exactly: python-engineio's
        ``int(seconds) * 1000`` turns 0.3 s into 0, and clients then time out."""
        return Json.dumps(
            {
                "sid": sid,
                "upgrades": upgrades,
                "pingInterval": round(self.ping_interval * 1000),
                "pingTimeout": round(self.ping_timeout * 1000),
                "maxPayload": self.max_http_buffer_size,
            }
        )

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        self.enqueue(sid, pkt)

    def enqueue(self, sid: str, pkt: eio_packet.Packet) -> bool:
        """Send ``pkt`` on the session's transport; False if there is no open session."""
        sock = self.sockets.get(sid)
        if sock is None or sock.closed:
            return False
        sock.write_packet(pkt)
        return True

    async def disconnect(self, sid: str | None = None) -> None:
        if sid is None:
            for sock in list(self.sockets.values()):
                await sock.close(reason=self.reason.SERVER_DISCONNECT)
            return
        target = self.sockets.get(sid)
        if target is not None:
            await target.close(reason=self.reason.SERVER_DISCONNECT)

    def bucket_of(self, sid: str) -> TokenBucket | None:
        sock = self.sockets.get(sid)
        return None if sock is None else sock.bucket

    def forget(self, sock: EngineSession) -> None:
        if self.sockets.get(sock.sid) is sock:
            del self.sockets[sock.sid]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, keeping a reference and logging a failure."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a session task failed", exc_info=task.exception())

    def ensure_pinging(self) -> None:
        """Start the one ping loop of websocket sessions (lazily: it needs a running loop)."""
        if self._pinger is None or self._pinger.done():
            self._pinger = asyncio.create_task(ping_forever(self))

    async def stop_pinging(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger

    def count_slow_consumer(self, sid: str) -> None:
        self.slow_consumers_dropped += 1
        log.warning(
            "closing %s: more than %d bytes waiting to be sent (slow consumer)",
            sid,
            self.send_buffer_bytes,
        )

    def drop_slow_consumer(self, sid: str, link: Link) -> None:
        self.count_slow_consumer(sid)
        self.links.pop(sid, None)
        link.stream.close()

    def open_polling_session(self, handler: tornado.web.RequestHandler, address: str) -> str:
        """Register a polling session; its handshake text (the OPEN packet)."""
        sid = self.generate_id()
        sock = PollingSocket(self, sid, address)
        self.caps.opened(address)
        self.sockets[sid] = sock
        sock.schedule_ping()
        sock.start_connect_timer()
        self.spawn(self._connected(sock, small_environ(handler)))
        return "0" + self.handshake(sid, upgrades=["websocket"])

    async def _connected(self, sock: PollingSocket, environ: dict[str, Any]) -> None:
        accepted = await self._trigger_event("connect", sock.sid, environ, run_async=False)
        if accepted is not None and accepted is not True:
            await sock.close(abort=False, reason=self.reason.SERVER_DISCONNECT)


class DinoSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    def _engineio_server_class(self) -> type[DirectEngineServer]:
        return DirectEngineServer

    @property
    def engine(self) -> DirectEngineServer:
        eio: DirectEngineServer = self.eio
        return eio

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        # socket.io v5 wants CONNECT_ERROR data to be an object with a message;
        # python-socketio sends a bare string, which the JS client shows as empty.
        if (namespace or "/") not in self.namespaces:
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    sio_packet.CONNECT_ERROR,
                    data={"message": "Invalid namespace"},
                    namespace=namespace or "/",
                ),
            )
            return
        await super()._handle_connect(eio_sid, namespace, data)


def create_socket_server(
    *,
    compression: bool,
    send_buffer_bytes: int,
    max_packet_bytes: int,
    ping_interval: float,
    ping_timeout: float,
    cors_origins: tuple[str, ...],
    event_rate: float = 50.0,
    event_burst: int = 200,
    connect_timeout: float = 45.0,
    max_connections: int = 1 << 30,
    max_connections_per_address: int = 1 << 30,
) -> DinoSocketServer:
    # None: same origin only.
    origins: str | list[str] | None = "*" if "*" in cors_origins else list(cors_origins) or None
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
        # Only dino's namespace: "/" (python-socketio's default) would accept sessions
        # that can do nothing but hold memory.
        namespaces=[NAMESPACE],
        cors_allowed_origins=origins,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=max_packet_bytes,
        http_compression=False,
        logger=False,
        engineio_logger=False,
    )
    engine = sio.engine
    engine.on("message", _guarded_messages(sio))
    # Compressed connections need Tornado's write_message, which compresses per frame.
    engine.direct_writes = not compression
    engine.send_buffer_bytes = send_buffer_bytes
    engine.event_rate, engine.event_burst = event_rate, event_burst
    engine.connect_timeout = connect_timeout
    engine.caps = ConnectionCaps(max_connections, max_connections_per_address)
    engine.has_namespace = lambda eio_sid: (
        sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None
    )
    return sio


def _guarded_messages(
    sio: DinoSocketServer,
) -> Callable[[str, str | bytes], Awaitable[None]]:
    """python-socketio's packet handler behind three guards, each closing the client:

    - binary attachments (socket.io types 5 and 6): dino's protocol is JSON, and
      python-socketio would buffer every attachment a packet announces, without a bound;
    - namespace CONNECT/DISCONNECT beyond the connection's event budget: reconnecting
      the namespace in a loop costs the node a session each time;
    - packets socket.io cannot parse: Node closes such a client; python-socketio logs a
      traceback and carries on, so a broken client could fill the log.
    Event handlers catch their own errors (server/namespace.py)."""
    handle = sio._handle_eio_message
    engine = sio.engine

    async def handle_or_close(eio_sid: str, data: str | bytes) -> None:
        sock = engine.sockets.get(eio_sid)
        if sock is None:
            return
        kind = data[:1]
        if isinstance(data, bytes) or kind in ("5", "6"):
            engine.edge.offence(
                "binary_refused", sock.address, "closing %s: binary attachments are not accepted",
                eio_sid,
            )
            await sock.close(abort=False, reason=engine.reason.SERVER_DISCONNECT)
            return
        if kind in ("0", "1") and not sock.bucket.take():
            engine.edge.offence(
                "rate_limited", sock.address, "closing %s: namespace connects beyond the "
                "event rate", eio_sid,
            )
            await sock.close(abort=False, reason=engine.reason.SERVER_DISCONNECT)
            return
        try:
            await handle(eio_sid, data)
        except Exception as exc:
            engine.edge.offence(
                "malformed_packets", sock.address, "closing %s: unparseable packet (%s: %s)",
                eio_sid, type(exc).__name__, str(exc)[:100],
            )
            await sock.close(abort=False, reason=engine.reason.SERVER_DISCONNECT)

    return handle_or_close


def socketio_handler_class(
    sio: DinoSocketServer, compression: bool
) -> type[tornado.web.RequestHandler]:
    """The Tornado handler for /socket.io/: every engine.io request, both transports."""
    engine = sio.engine

    class SocketIOHandler(tornado.websocket.WebSocketHandler):
        session: LeanSocket | None = None  # this websocket's session, once it has one
        probe: Probe | None = None  # this websocket upgrading a polling session
        waiting: asyncio.Future[None] | None = None  # a polling GET waiting for packets

        def _arg(self, name: str) -> str | None:
            values = self.request.query_arguments.get(name)
            return values[0].decode("latin-1") if values else None

        def _address(self) -> str:
            return self.request.remote_ip or "?"

        def _reply(self, status: int, text: str) -> None:
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None and stream.closed():
                return  # the client is gone; nothing to answer
            self.set_status(status)
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self._cors_headers()
            self.finish(text)

        # -- origins --------------------------------------------------------------------

        def _origin_allowed(self, origin: str) -> bool:
            allowed = engine.cors_allowed_origins
            if allowed == "*":
                return True
            if allowed:
                return origin in ([allowed] if isinstance(allowed, str) else allowed)
            # Same origin: the Origin's host:port is the Host the request was sent to
            # (behind nginx, the Host it passes on: $http_host, with the port).
            host = self.request.headers.get("Host", "").lower()
            return bool(host) and urllib.parse.urlparse(origin).netloc.lower() == host

        def check_origin(self, origin: str) -> bool:
            """Refuse a foreign page's websocket with 403, before the upgrade."""
            return self._origin_allowed(origin)

        def _cors_headers(self) -> None:
            origin = self.request.headers.get("Origin")
            if origin and self._origin_allowed(origin):
                self.set_header("Access-Control-Allow-Origin", origin)
                self.set_header("Access-Control-Allow-Credentials", "true")
            if self.request.method == "OPTIONS":
                self.set_header("Access-Control-Allow-Methods", "OPTIONS, GET, POST")
                asked = self.request.headers.get("Access-Control-Request-Headers")
                if asked:
                    self.set_header("Access-Control-Allow-Headers", asked)

        # -- HTTP methods ---------------------------------------------------------------

        async def get(self, *args: Any, **kwargs: Any) -> None:
            if self.request.headers.get("Upgrade", "").lower() != "websocket":
                await self._polling()
                return
            refusal = self._websocket_refusal()
            if refusal is not None:
                self._reply(*refusal)
                return
            await super().get(*args, **kwargs)

        async def post(self, *args: Any, **kwargs: Any) -> None:
            await self._polling()

        async def options(self, *args: Any, **kwargs: Any) -> None:
            await self._polling()

        async def put(self, *args: Any, **kwargs: Any) -> None:
            self._reply(400, "method not allowed: engine.io uses GET and POST")

        delete = patch = head = put

        def _websocket_refusal(self) -> tuple[int, str] | None:
            """Why a websocket is refused before the upgrade (None: let it open)."""
            if self._arg("transport") != "websocket":
                return 400, "transport unknown"
            sid = self._arg("sid")
            if sid is None:
                if self._arg("EIO") != "4":
                    return 400, "unsupported protocol version: engine.io v4 (EIO=4) only"
                return self._cap_refusal()
            sock = engine.sockets.get(sid)
            # An unknown sid (a node restart, a sticky-session miss, an expired session):
            # Node answers 400, and the client's upgrade fails over at once instead of
            # hanging. A session already on a websocket, or being probed, is accepted and
            # closed at once in open(), as Node does (the compliance suite expects that).
            if sock is None or sock.closing or sock.closed:
                return 400, "session ID unknown"
            return None

        def _cap_refusal(self) -> tuple[int, str] | None:
            address = self._address()
            reason = engine.caps.refusal(address)
            if reason is None:
                return None
            engine.edge.offence("connections_refused", address, "refused: %s", reason)
            return 503, reason

        async def _polling(self) -> None:
            origin = self.request.headers.get("Origin")
            if origin and not self._origin_allowed(origin):
                self._reply(403, "origin not allowed")
                return
            method = self.request.method
            if method == "OPTIONS":
                self._reply(200, "")
                return
            if self._arg("j") is not None:
                self._reply(400, "JSONP is not supported")
                return
            if self._arg("transport") != "polling":
                self._reply(400, "transport unknown")
                return
            sid = self._arg("sid")
            if sid is None:
                if method != "GET":
                    self._reply(400, "a session starts with a GET")
                elif self._arg("EIO") != "4":
                    self._reply(400, "unsupported protocol version: engine.io v4 (EIO=4) only")
                elif (refusal := self._cap_refusal()) is not None:
                    self._reply(*refusal)
                else:
                    self._reply(200, engine.open_polling_session(self, self._address()))
                return
            sock = engine.sockets.get(sid)
            if not isinstance(sock, PollingSocket) or sock.upgraded:
                self._reply(400, "session ID unknown")
            elif sock.closed and (method != "GET" or not sock.outbox):
                engine.forget(sock)
                self._reply(400, "session ID unknown")
            elif method == "GET":
                self._reply(*await sock.get(self))
            elif len(self.request.body) > engine.max_http_buffer_size:
                engine.edge.offence(
                    "oversized_requests", sock.address, "closing %s: a POST of %d bytes",
                    sid, len(self.request.body),
                )
                await sock.close(abort=True, reason=engine.reason.TRANSPORT_ERROR)
                self._reply(413, "payload too large")
            else:
                self._reply(*await sock.post(self.request.body))

        # -- websockets -----------------------------------------------------------------

        @property
        def max_message_size(self) -> int:
            # Tornado closes the websocket on a larger frame, as socket.io does.
            size: int = engine.max_http_buffer_size
            return size

        async def open(self, *args: Any, **kwargs: Any) -> None:
            # Chat frames are small and latency matters: without this, Nagle's algorithm
            # and delayed ACKs hold a reply back ~40 ms.
            self.set_nodelay(True)
            sid = self._arg("sid")
            if sid is None:
                self.session = await open_lean_session(engine, self, self._address())
                return
            sock = engine.sockets.get(sid)
            if not isinstance(sock, PollingSocket) or sock.closing or sock.probe is not None:
                # Already upgraded or being probed (or closed since get()): no second
                # transport for one session.
                self.close()
                return
            self.probe = sock.probe = Probe(sock, self)

        async def on_message(self, message: str | bytes) -> None:
            if self.session is not None:
                await self.session.receive(message)
            elif self.probe is not None:
                self.session = self.probe.receive(message)
                if self.session is not None:
                    self.probe = None

        def on_close(self) -> None:
            if self.waiting is not None:
                self.waiting.cancel()  # a polling GET whose client went away
            if self.probe is not None:
                self.probe.abandon()
                self.probe = None
            if self.session is not None:
                session, self.session = self.session, None
                engine.spawn(session.close(abort=True, reason=engine.reason.TRANSPORT_CLOSE))

        def get_compression_options(self) -> dict[str, Any] | None:
            # Off unless asked for: it halves throughput and costs a zlib context per
            # connection.
            return {} if compression else None

    return SocketIOHandler
