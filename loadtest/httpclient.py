"""A minimal HTTP/1.1 client for load: a pool of persistent connections.

Why not tornado's client: SimpleAsyncHTTPClient opens a connection per request
(tornadoweb/tornado#324), so a benchmark would measure TCP and HTTP setup rather
than the node. Why not aiohttp: a task and several coroutines per request cost the
tool more CPU than the request costs the server.

Here a connection is one asyncio Protocol carrying one request at a time (no
pipelining); the pool hands each request to an idle connection or queues it, and
calls the request's callback with the response: no task per request. Responses
are framed by Content-Length or chunked encoding; a connection the server closes
(or answers with ``Connection: close``) is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from loadtest.client import ClientError, Target

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
RECONNECT_PAUSE_S = 0.5


class HttpProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response we can frame."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


# Called once per request: (response, None) or (None, why it failed).
ResponseHandler = Callable[[HttpResponse | None, str | None], None]


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    """Request line and fixed headers, built once per run since only the body
    changes between calls; the connection adds Host and Content-Length."""
    lines = [f"{method} {path} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


class ResponseParser:
    """Incremental parser of responses on one connection, in order."""

    __slots__ = ("_body_left", "_buf", "_chunked", "_chunks", "_head")

    def __init__(self) -> None:
        self._buf = b""
        self._head: tuple[int, dict[str, str]] | None = None
        self._body_left = 0
        self._chunked = False
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> list[HttpResponse]:
        self._buf = self._buf + data if self._buf else data
        out: list[HttpResponse] = []
        while True:
            if self._head is None and not self._read_head():
                return out
            done = self._read_chunked() if self._chunked else self._read_sized()
            if done is None:
                return out
            assert self._head is not None
            status, headers = self._head
            self._head = None
            if status >= 200:  # 1xx interim responses are skipped
                out.append(HttpResponse(status, headers, done))

    def _read_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise HttpProtocolError("response head larger than 64 KiB")
            return False
        lines = self._buf[:end].decode("latin-1").split("\r\n")
        self._buf = self._buf[end + 4 :]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpProtocolError(f"bad status line: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._head = (status, headers)
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._chunks = []
        if self._chunked:
            return True
        length = headers.get("content-length")
        if length is None:
            if status < 200 or status in (204, 304):
                self._body_left = 0
                return True
            # Framed by closing the connection: nothing a keep-alive API should do.
            raise HttpProtocolError(f"{status} response without Content-Length or chunking")
        if not length.isdigit() or int(length) > MAX_BODY:
            raise HttpProtocolError(f"bad Content-Length: {length[:40]!r}")
        self._body_left = int(length)
        return True

    def _read_sized(self) -> bytes | None:
        n = self._body_left
        if len(self._buf) < n:
            return None
        body, self._buf = self._buf[:n], self._buf[n:]
        return body

    def _read_chunked(self) -> bytes | None:
        while True:
            eol = self._buf.find(b"\r\n")
            if eol < 0:
                return None
            try:
                size = int(self._buf[:eol].split(b";", 1)[0], 16)
            except ValueError:
                raise HttpProtocolError("bad chunk size line") from None
            if size == 0:
                # the last chunk, then optional trailers, then a blank line
                end = self._buf.find(b"\r\n\r\n", eol)
                if self._buf.startswith(b"\r\n", eol + 2):
                    end = eol
                if end < 0:
                    return None
                self._buf = self._buf[end + 4 :]
                return b"".join(self._chunks)
            if len(self._buf) < eol + 2 + size + 2:
                return None
            self._chunks.append(self._buf[eol + 2 : eol + 2 + size])
            self._buf = self._buf[eol + 2 + size + 2 :]
            if sum(map(len, self._chunks)) > MAX_BODY:
                raise HttpProtocolError("chunked body larger than 16 MiB")


class HttpConnection(asyncio.BufferedProtocol):
    """One keep-alive connection, one request at a time."""

    def __init__(
        self, pool: HttpPool, index: int, host_header: str, read_buffer: memoryview
    ) -> None:
        self.index = index
        self._host_line = f"Host: {host_header}\r\n".encode("latin-1")
        self._pool = pool
        self._read_buffer = read_buffer
        self._parser = ResponseParser()
        self._transport: asyncio.Transport | None = None
        self._on_done: ResponseHandler | None = None
        self._lost = False

    @property
    def busy(self) -> bool:
        return self._on_done is not None

    def send(self, head: bytes, body: bytes, on_done: ResponseHandler) -> None:
        assert self._transport is not None and self._on_done is None
        self._on_done = on_done
        self._transport.write(
            b"%s%sContent-Length: %d\r\n\r\n%s" % (head, self._host_line, len(body), body)
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.BufferedProtocol ------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        # Shared with the loop's other connections: see loadtest.ws.WebSocketProtocol.
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        try:
            responses = self._parser.feed(bytes(self._read_buffer[:nbytes]))
        except HttpProtocolError as exc:
            self._fail(str(exc))
            return
        for response in responses:
            on_done = self._on_done
            self._on_done = None
            if on_done is None:
                self._fail("response without a request")
                return
            on_done(response, None)
            if not response.keep_alive:
                self._fail("server closed the connection (Connection: close)")
                return
            self._pool.idle(self)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc}" if exc else "connection closed by the server")

    def _fail(self, reason: str) -> None:
        if self._lost:
            return
        self._lost = True
        on_done, self._on_done = self._on_done, None
        if self._transport is not None:
            self._transport.close()
        if on_done is not None:
            on_done(None, reason)
        self._pool.lost(self, reason)


class HttpPool:
    """``size`` keep-alive connections; requests beyond them wait in order.

    ``target_of(i)`` says where connection i goes (the harness spreads them over
    --url and --source-ip). A connection lost while the pool is open is replaced;
    the request it carried fails (it is never retried: a POST may have been stored).
    """

    def __init__(
        self,
        size: int,
        target_of: Callable[[int], Target],
        timeout: float,
        read_buffer: memoryview,
    ) -> None:
        self.size = size
        self._target_of = target_of
        self._timeout = timeout
        self._read_buffer = read_buffer
        # Oldest idle first: every connection is used in turn and stays warm, so a
        # server's idle keep-alive timeout (dino: --header-timeout) never closes one
        # just as a request is written on it.
        self._idle: deque[HttpConnection] = deque()
        self._open: set[HttpConnection] = set()
        self._waiting: deque[tuple[bytes, bytes, ResponseHandler]] = deque()
        self._reconnects: set[asyncio.Task[None]] = set()
        self._closed = False
        self.lost_connections = 0
        self.reconnect_failures: list[str] = []
        self.peak_waiting = 0

    @property
    def connections(self) -> int:
        return len(self._open)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def connect(self, index: int) -> None:
        """Open connection ``index``; raises ClientError if it cannot."""
        target = self._target_of(index)
        loop = asyncio.get_running_loop()
        local = (target.local_ip, 0) if target.local_ip else None
        try:
            async with asyncio.timeout(self._timeout):
                _, conn = await loop.create_connection(
                    lambda: HttpConnection(self, index, target.host_header, self._read_buffer),
                    target.host,
                    target.port,
                    local_addr=local,
                )
        except TimeoutError:
            raise ClientError("http connect timed out") from None
        except OSError as exc:
            raise ClientError(f"http connect failed: {exc}") from exc
        if self._closed:
            conn.close()
            return
        self._open.add(conn)
        self.idle(conn)

    def submit(self, head: bytes, body: bytes, on_done: ResponseHandler) -> None:
        """Send now on an idle connection, or queue behind the busy ones.
        ``head`` is from ``request_head``."""
        if self._idle:
            self._idle.popleft().send(head, body, on_done)
            return
        self._waiting.append((head, body, on_done))
        self.peak_waiting = max(self.peak_waiting, len(self._waiting))

    def idle(self, conn: HttpConnection) -> None:
        if self._waiting:
            head, body, on_done = self._waiting.popleft()
            conn.send(head, body, on_done)
        else:
            self._idle.append(conn)

    def lost(self, conn: HttpConnection, reason: str) -> None:
        self._open.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        if self._closed:
            return
        self.lost_connections += 1
        task = asyncio.get_running_loop().create_task(self._replace(conn.index))
        self._reconnects.add(task)
        task.add_done_callback(self._reconnects.discard)

    async def _replace(self, index: int) -> None:
        # Until the pool closes (bounded by the run): waiting requests need a connection.
        while not self._closed:
            try:
                await self.connect(index)
                return
            except ClientError as exc:
                self.reconnect_failures.append(str(exc))
                await asyncio.sleep(RECONNECT_PAUSE_S)

    async def close(self) -> None:
        """Close every connection; requests still waiting fail."""
        self._closed = True
        for task in list(self._reconnects):
            task.cancel()
        await asyncio.gather(*self._reconnects, return_exceptions=True)
        while self._waiting:
            *_, on_done = self._waiting.popleft()
            on_done(None, "pool closed before the request was sent")
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run connection_lost
