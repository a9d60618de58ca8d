"""Accepting connections without spinning when the process runs out of file descriptors.

Tornado's accept handler lets ``EMFILE`` ("too many open files") escape: asyncio logs a
traceback and calls the handler again at once, because the listening socket is still
readable. With the open-file limit reached that is a busy loop: 100% CPU, ``/health``
starved, tens of MB of log. Here accepting pauses for a moment instead (logged and
counted once per pause), and resumes when descriptors may have been freed. The
connection caps (``--max-connections``) should keep a node below the limit anyway.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from .edge import EdgeStats

PAUSE = 0.5  # seconds without accepting once descriptors ran out
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPTS_PER_WAKEUP = 128  # as Tornado: others get the loop between batches


def add_pausing_accept_handler(
    sock: socket.socket, callback: Callable[[socket.socket, Any], None], edge: EdgeStats
) -> Callable[[], None]:
    """Tornado's ``add_accept_handler``, pausing on descriptor exhaustion."""
    io_loop = IOLoop.current()
    state = {"removed": False, "listening": True}

    def accept_handler(fd: Any, events: int) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            if state["removed"]:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _EXHAUSTED:
                    raise
                edge.offence(
                    "accept_paused", "node", "cannot accept (%s): pausing accepts for %g s",
                    exc.strerror, PAUSE,
                )
                io_loop.remove_handler(sock)
                state["listening"] = False
                io_loop.call_later(PAUSE, resume)
                return
            callback(connection, address)

    def resume() -> None:
        if not state["removed"] and not state["listening"]:
            state["listening"] = True
            io_loop.add_handler(sock, accept_handler, IOLoop.READ)

    def remove_handler() -> None:
        if state["listening"]:
            io_loop.remove_handler(sock)
        state["removed"] = True

    io_loop.add_handler(sock, accept_handler, IOLoop.READ)
    return remove_handler


class PausingHTTPServer(HTTPServer):
    """Tornado's HTTP server with the pausing accept handler."""

    edge: EdgeStats

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = add_pausing_accept_handler(
                sock, self._handle_connection, self.edge
            )
