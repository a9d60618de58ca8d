"""One socket.io client on one namespace, over loadtest.ws.

Cheap by design: no task per client; frames are dispatched synchronously from the
Protocol callback. ``message`` events (the hot path) go straight to a raw-frame
handler without any JSON decode; other events are decoded only if a handler
wants them; acks resolve futures of ``request``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from loadtest import sio
from loadtest.ws import WebSocketProtocol

# Receives a raw ``message`` event frame and its receive time (ns since epoch).
RawMessageHandler = Callable[[bytes, int], None]
# Receives any other event with its decoded first argument.
EventHandler = Callable[[str, Any], None]


class ClientError(Exception):
    """A step of the client's life failed (connect, namespace, request)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a client connects: a dino node, or nginx in front of a cluster."""

    host: str
    port: int
    path: str = "/socket.io/"
    local_ip: str | None = None  # source address, to spread past one IP's ports

    @classmethod
    def from_url(cls, url: str, path: str = "/socket.io/") -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "ws"):
            raise ValueError(f"only plain http:// or ws:// URLs are supported: {url}")
        if not parts.hostname:
            raise ValueError(f"no host in URL: {url}")
        return cls(parts.hostname, parts.port or 80, path)

    @property
    def resource(self) -> str:
        return f"{self.path}?{sio.EIO_QUERY}"

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"


class SioClient:
    """A websocket-only socket.io client bound to one namespace."""

    def __init__(
        self,
        namespace: str = "/chat",
        on_message: RawMessageHandler | None = None,
        on_event: EventHandler | None = None,
        on_close: Callable[[SioClient, str], None] | None = None,
        read_buffer: memoryview | None = None,
    ) -> None:
        self.namespace = namespace
        self._read_buffer = read_buffer
        self.on_message = on_message
        self.on_event = on_event
        self.on_close = on_close
        self.sid: str | None = None
        self.closed_reason: str | None = None
        self.pings = 0
        self.closing = False  # set when the tool itself closes: not a drop
        self._prefix = sio.namespace_prefix(namespace)
        self._message_prefix = b"42" + self._prefix + b'["message",'
        self._ws: WebSocketProtocol | None = None
        self._ack_ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ns_ready: asyncio.Future[str] | None = None
        self._gone: asyncio.Event | None = None

    @property
    def connected(self) -> bool:
        return self.sid is not None and self.closed_reason is None

    async def connect(self, target: Target, timeout: float) -> None:
        """TCP + websocket upgrade + engine.io OPEN + namespace CONNECT."""
        loop = asyncio.get_running_loop()
        self._ns_ready = loop.create_future()
        self._gone = asyncio.Event()
        local = (target.local_ip, 0) if target.local_ip else None

        def factory() -> WebSocketProtocol:
            return WebSocketProtocol(
                target.host_header,
                target.resource,
                self._on_frame,
                self._on_ws_close,
                self._read_buffer,
            )

        try:
            async with asyncio.timeout(timeout):
                _, ws = await loop.create_connection(
                    factory, target.host, target.port, local_addr=local
                )
                self._ws = ws
                await ws.opened
                self.sid = await self._ns_ready
        except TimeoutError:
            self._give_up()
            raise ClientError("connect timed out") from None
        except (OSError, ConnectionError) as exc:
            self._give_up()
            raise ClientError(f"connect failed: {exc}") from exc
        except ClientError:
            self._give_up()
            raise

    def emit(self, event: str, data: Any) -> None:
        """Fire and forget: the server answers with event ``gn_<event>``."""
        if self._ws is not None:
            self._ws.send_text(sio.event_packet(self.namespace, event, data))

    async def request(self, event: str, data: Any, timeout: float) -> Any:
        """Emit with an ack id and return the ack's first argument."""
        ws = self._ws
        if ws is None or not self.connected:
            raise ClientError(f"{event}: not connected")
        ack_id = next(self._ack_ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ack_id] = fut
        ws.send_text(sio.event_packet(self.namespace, event, data, ack_id))
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise ClientError(f"{event}: no answer in {timeout:g}s") from None
        finally:
            self._pending.pop(ack_id, None)

    async def close(self, timeout: float = 2.0) -> None:
        """Websocket closing handshake, then drop the socket if the server is slow."""
        self.closing = True
        ws = self._ws
        if ws is None or self._gone is None:
            return
        ws.close()
        try:
            async with asyncio.timeout(timeout):
                await self._gone.wait()
        except TimeoutError:
            ws.abort()

    def abort(self) -> None:
        self.closing = True
        if self._ws is not None:
            self._ws.abort()

    def _give_up(self) -> None:
        # Nobody will await the namespace future any more: cancel it so a later
        # close does not leave an exception that asyncio reports as never retrieved.
        if self._ns_ready is not None and not self._ns_ready.done():
            self._ns_ready.cancel()
        self.abort()

    # -- frame dispatch ---------------------------------------------------
    def _on_frame(self, frame: bytes, recv_ns: int) -> None:
        if not frame:
            return
        kind = frame[0]
        if kind == sio.EIO_MESSAGE:
            if frame.startswith(self._message_prefix):
                handler = self.on_message
                if handler is not None:
                    handler(frame, recv_ns)
                return
            self._on_sio(frame)
        elif kind == sio.EIO_PING:
            # engine.io v4: the server pings, the client answers
            self.pings += 1
            if self._ws is not None:
                self._ws.send_text(sio.PONG)
        elif kind == sio.EIO_OPEN:
            if self._ws is not None:
                self._ws.send_text(sio.connect_packet(self.namespace))
        elif kind == sio.EIO_CLOSE and self._ws is not None:
            self._ws.abort()

    def _on_sio(self, frame: bytes) -> None:
        if frame[1] == sio.SIO_EVENT and self.on_event is None:
            return  # nobody listens: skip the JSON decode
        try:
            pkt = sio.decode_message(frame, self._prefix)
        except ValueError:
            return
        if pkt is None:
            return
        if pkt.kind == sio.SIO_EVENT:
            data = pkt.data
            if self.on_event is not None and isinstance(data, list) and data:
                self.on_event(str(data[0]), data[1] if len(data) > 1 else None)
        elif pkt.kind == sio.SIO_ACK:
            fut = self._pending.get(pkt.ack_id) if pkt.ack_id is not None else None
            if fut is not None and not fut.done():
                args = pkt.data if isinstance(pkt.data, list) else [pkt.data]
                fut.set_result(args[0] if args else None)
        elif pkt.kind == sio.SIO_CONNECT:
            sid = pkt.data.get("sid") if isinstance(pkt.data, dict) else None
            if self._ns_ready is not None and not self._ns_ready.done():
                self._ns_ready.set_result(str(sid))
        elif pkt.kind == sio.SIO_CONNECT_ERROR:
            if self._ns_ready is not None and not self._ns_ready.done():
                self._ns_ready.set_exception(ClientError(f"namespace refused: {pkt.data}"))
        elif pkt.kind == sio.SIO_DISCONNECT and self._ws is not None:
            self._ws.close()

    def _on_ws_close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        if self._ns_ready is not None and not self._ns_ready.done():
            self._ns_ready.set_exception(ClientError(f"closed before namespace connect: {reason}"))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ClientError(f"connection closed: {reason}"))
        if self._gone is not None:
            self._gone.set()
        if self.on_close is not None:
            self.on_close(self, reason)
