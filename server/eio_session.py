"""What the two kinds of engine.io session (websocket: ``lean.py``, long-polling:
``polling.py``) have in common: the surface python-engineio and python-socketio read,
the connection's event budget, and the connect timeout.

That surface is engine.io's own socket's: ``sockets[sid]``, ``closed``, ``closing``,
``upgraded``, ``session``, ``check_ping_timeout``, ``close``.
"""

from __future__ import annotations

import abc
import asyncio
from typing import TYPE_CHECKING, Any

from engineio import packet as eio_packet

from .ratelimit import TokenBucket

if TYPE_CHECKING:
    from .transport import DirectEngineServer


class EngineSession(abc.ABC):
    connected = True  # read by engine.io and python-socketio: the session is open

    def __init__(self, server: DirectEngineServer, sid: str, address: str) -> None:
        self.server = server
        self.sid = sid
        self.address = address  # the client's address, for the per-address cap and logs
        self.closing = False
        self.closed = False
        self.session: dict[str, Any] = {}  # engine.io's per-session user dict
        # The connection's event budget. It lives here, not in the socket.io session,
        # so that disconnecting and reconnecting the namespace does not refill it.
        self.bucket = TokenBucket(server.event_rate, server.event_burst)
        self._connect_timer: asyncio.TimerHandle | None = None

    def start_connect_timer(self) -> None:
        """Close the session unless it connects a namespace within the connect timeout
        (socket.io's connectTimeout): an idle engine.io session costs memory for nothing."""
        self._connect_timer = asyncio.get_running_loop().call_later(
            self.server.connect_timeout, self._connect_timeout
        )

    def _connect_timeout(self) -> None:
        self._connect_timer = None
        # An upgraded polling session lives on as a websocket session under the same sid.
        current = self.server.sockets.get(self.sid)
        if current is None or current.closing or self.server.has_namespace(self.sid):
            return
        self.server.edge.offence(
            "connect_timeouts", self.address, "closing %s: no namespace connected in %g s",
            self.sid, self.server.connect_timeout,
        )
        self.server.spawn(current.close(abort=False, reason=self.server.reason.SERVER_DISCONNECT))

    def released(self) -> None:
        """Bookkeeping once the session is gone: caps and the connect timer."""
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self.server.caps.closed(self.address)

    @abc.abstractmethod
    def write_packet(self, pkt: eio_packet.Packet) -> None:
        """Send an engine.io packet on the session's transport."""

    @abc.abstractmethod
    async def close(
        self, wait: bool = True, abort: bool = False, reason: str | None = None
    ) -> None:
        """End the session: engine.io's disconnect event, then the transport."""
