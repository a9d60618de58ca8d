"""Graceful drain: how a node leaves on SIGTERM without losing an acknowledged message.

1. ``status.draining`` is set: /ready answers 503 and a new engine.io handshake gets 503,
   which nginx (``proxy_next_upstream http_503``) passes on to another node.
2. Every connection's transport is closed *without* an engine.io CLOSE packet, so the
   official clients see a dropped transport and reconnect (a CLOSE packet, or a socket.io
   DISCONNECT, would tell them the server wants them gone, and they would stay away).
   A connection that is handling an event (``status.busy``) is closed in the next round,
   after its reply and ack are written: nothing is cut in the middle.
3. Closing a connection runs the usual disconnect: the session leaves its rooms and the
   store at once, so peers see the users leave now (and see them join again elsewhere).
   HTTP API requests in progress (``status.api_requests``) are waited for as well.
4. Then the cluster says goodbye (drops what is left, gives up the lease) and the node
   stops. Everything is bounded by ``--drain-timeout``; past it the node stops anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.web

from .node import Node
from .polling import PollingSocket
from .transport import DirectEngineServer

log = logging.getLogger("dino.drain")

POLL_SECONDS = 0.05
POLLING_FLUSH_SECONDS = 1.0  # how long a polling client gets to fetch its last replies
CLOSE_BATCH = 100  # connections closed concurrently (each close updates the store)


async def close_transport(engine: DirectEngineServer, eio_sid: str) -> None:
    """Close one engine.io session the way a network failure would: the client
    reconnects. Its disconnect handlers run as for any dropped connection.

    Whatever was sent before (an ack just written) still reaches the client: a
    websocket's writes are already in its stream, and a polling client is given the
    time to fetch what waits for it before its session goes."""
    sock = engine.sockets.get(eio_sid)
    if sock is None or sock.closing or sock.closed:
        return
    if isinstance(sock, PollingSocket):
        for _ in range(int(POLLING_FLUSH_SECONDS / POLL_SECONDS)):
            if not sock.outbox:
                break
            await asyncio.sleep(POLL_SECONDS)
        if sock.closing or sock.closed:
            return
    # abort: no engine.io CLOSE packet (the clients would take it as "go away for good").
    # A websocket is closed; a polling session is forgotten, its waiting GET answered,
    # and the client's next request gets 400.
    await sock.close(abort=True, reason=engine.reason.SERVER_DISCONNECT)


def _open_connections(node: Node) -> int:
    return sum(1 for sock in list(node.sio.engine.sockets.values()) if not sock.closed)


async def drain(node: Node, say_goodbye: Callable[[], Awaitable[None]], timeout: float) -> None:
    """Move every client off this node, then leave the cluster; at most ``timeout`` s."""
    started = time.monotonic()
    deadline = started + timeout
    status, hub, engine = node.status, node.hub, node.sio.engine
    status.draining = True
    total = _open_connections(node)
    log.info("draining: closing %d connections (at most %.0f s)", total, timeout)
    asked: set[str] = set()
    try:
        async with asyncio.timeout(timeout):
            while _open_connections(node) or hub.sessions or status.busy or status.api_requests:
                # A connection handling an event is left until its reply (and ack) is
                # written; the next round closes it.
                busy = {hub.sessions[s].eio_sid for s in list(status.busy) if s in hub.sessions}
                todo = [sid for sid in list(engine.sockets) if sid not in busy | asked]
                asked.update(todo)
                for first in range(0, len(todo), CLOSE_BATCH):
                    batch = todo[first : first + CLOSE_BATCH]
                    await asyncio.gather(*(close_transport(engine, sid) for sid in batch))
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        log.warning(
            "drain timeout: %d connections and %d requests still open; stopping anyway",
            _open_connections(node),
            len(status.busy) + status.api_requests,
        )
    try:
        # The goodbye releases the lease and what presence is left; give it the rest of
        # the time, but at least a second, so a timed-out drain still says goodbye.
        await asyncio.wait_for(say_goodbye(), max(1.0, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("goodbye did not finish in time; peers will purge this node")
    log.info("drained %d connections in %.1f s", total, time.monotonic() - started)


def refusing_while_draining(
    handler_class: type[tornado.web.RequestHandler], node: Node
) -> type[tornado.web.RequestHandler]:
    """The socket.io handler, answering new handshakes with 503 while the node drains.

    Requests of existing sessions (they carry ``sid``) go through: polling clients must
    be able to finish what is in flight."""

    class RefusingWhileDraining(handler_class):  # type: ignore[valid-type,misc]
        def prepare(self) -> Any:
            if node.status.draining and "sid" not in self.request.query_arguments:
                self.set_status(503)
                self.set_header("Retry-After", "1")
                self.finish("this node is draining; connect again")
                return None
            return super().prepare()

    return RefusingWhileDraining
