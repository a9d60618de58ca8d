"""The load tool's HTTP/1.1 client: response framing on synthetic bytes, and the
keep-alive pool against a small asyncio HTTP server that counts its connections
(the api scenario's smoke runs against real nodes are in test_loadtest_dino.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from loadtest.client import ClientError, Target
from loadtest.httpclient import (
    HttpPool,
    HttpProtocolError,
    HttpResponse,
    ResponseParser,
    request_head,
)
from loadtest.ws import new_read_buffer


def response(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def feed_in_pieces(data: bytes, size: int) -> list[HttpResponse]:
    parser = ResponseParser()
    out: list[HttpResponse] = []
    for i in range(0, len(data), size):
        out.extend(parser.feed(data[i : i + size]))
    return out


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_sized_responses_in_any_read_sizes(size: int) -> None:
    stream = (
        response(201, b'{"seq":1}', "Content-Type: application/json")
        + response(401, b'{"error":"no key"}')
        + response(204, b"")
    )
    got = feed_in_pieces(stream, size)
    assert [(r.status, r.body) for r in got] == [
        (201, b'{"seq":1}'),
        (401, b'{"error":"no key"}'),
        (204, b""),
    ]
    assert got[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_chunked_response_with_and_without_trailers(size: int) -> None:
    plain = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n"
    )
    trailed = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    got = feed_in_pieces(plain + trailed + response(201, b"ok"), size)
    assert [(r.status, r.body) for r in got] == [(200, b"abcdefg"), (200, b"hi"), (201, b"ok")]


def test_interim_response_is_skipped() -> None:
    got = feed_in_pieces(b"HTTP/1.1 100 Continue\r\n\r\n" + response(201, b"x"), 3)
    assert [(r.status, r.body) for r in got] == [(201, b"x")]


@pytest.mark.parametrize(
    "data",
    [
        b"SMTP 220 hello\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nbody until close",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_unframeable_response_is_an_error(data: bytes) -> None:
    with pytest.raises(HttpProtocolError):
        ResponseParser().feed(data)


def test_connection_close_header() -> None:
    (r,) = ResponseParser().feed(response(200, b"", "Connection: close"))
    assert not r.keep_alive


# -- the pool against a counting server ---------------------------------------


@dataclass
class CountingServer:
    """Answers each request with its sequence number; ``close_every`` n-th answer
    says Connection: close; ``drop`` request numbers get no answer, just a closed
    socket."""

    close_every: int = 0
    drop: set[int] = field(default_factory=set)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                n = len(self.requests)
                if n in self.drop:
                    break
                closing = bool(self.close_every) and n % self.close_every == 0
                extra = ("Connection: close",) if closing else ()
                writer.write(response(200, str(n).encode(), *extra))
                await writer.drain()
                if closing:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve(server: CountingServer) -> AsyncIterator[CountingServer]:
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        srv.close()
        await srv.wait_closed()


@pytest.fixture
async def keepalive_server() -> AsyncIterator[CountingServer]:
    async for s in serve(CountingServer()):
        yield s


@pytest.fixture
async def closing_server() -> AsyncIterator[CountingServer]:
    async for s in serve(CountingServer(close_every=5, drop={12})):
        yield s


Outcome = tuple[int | None, str | None]


async def call_many(pool: HttpPool, count: int) -> list[Outcome]:
    """Submit ``count`` requests at once; wait for every callback."""
    done: list[Outcome] = []
    finished = asyncio.Event()
    head = request_head("POST", "/api/v1/messages", {"Authorization": "Bearer k"})

    def on_done(r: HttpResponse | None, error: str | None) -> None:
        done.append((r.status if r else None, error))
        if len(done) == count:
            finished.set()

    for i in range(count):
        pool.submit(head, b'{"n":%d}' % i, on_done)
    async with asyncio.timeout(20):
        await finished.wait()
    return done


async def open_pool(port: int, size: int) -> HttpPool:
    pool = HttpPool(size, lambda i: Target("127.0.0.1", port), 5.0, new_read_buffer(4096))
    for i in range(size):
        await pool.connect(i)
    return pool


async def test_pool_reuses_its_connections(keepalive_server: CountingServer) -> None:
    pool = await open_pool(keepalive_server.port, 2)
    done = await call_many(pool, 40)
    await pool.close()
    assert done == [(200, None)] * 40
    assert keepalive_server.connections == 2  # 40 requests, no new connection
    assert pool.peak_waiting == 38
    first = keepalive_server.requests[0]
    assert first.startswith(b"POST /api/v1/messages HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in first and b"\r\nContent-Length: 7\r\n\r\n" in first
    assert first.endswith(b'{"n":0}') or first.endswith(b'{"n":1}')


async def test_pool_replaces_closed_connections_and_fails_the_dropped_request(
    closing_server: CountingServer,
) -> None:
    pool = await open_pool(closing_server.port, 2)
    done = await call_many(pool, 30)
    await pool.close()
    ok = [d for d in done if d == (200, None)]
    failed = [d for d in done if d[0] is None]
    # request 12 was read and never answered: it fails (a POST is never retried)
    assert len(ok) == 29 and len(failed) == 1
    assert "connection" in str(failed[0][1])
    assert len(closing_server.requests) == 30
    assert pool.lost_connections == 7  # 6 Connection: close answers + the drop
    # each loss was replaced, except perhaps the last one (the pool closed meanwhile)
    assert closing_server.connections in (8, 9)


async def test_pool_connect_refused() -> None:
    async for s in serve(CountingServer()):
        port = s.port
    pool = HttpPool(1, lambda i: Target("127.0.0.1", port), 2.0, new_read_buffer(4096))
    with pytest.raises(ClientError, match="http connect failed"):
        await pool.connect(0)
    await pool.close()
