"""Sessions end when their login token expires, unless the client logs in again.

With ``--auth jwt`` a login's token may carry ``exp`` (required by default:
``--jwt-require-exp``). The session is closed when it passes: the client receives
``gn_session_closed`` with the reason, then socket.io's DISCONNECT for ``/chat``. To
stay connected, a client sends ``login`` again on the same connection with a fresh
token for the same user before then; that re-arms the timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from server.hub import Session
from server.wire import NAMESPACE

from . import pushes

if TYPE_CHECKING:
    from server.node import Node

log = logging.getLogger("dino.expiry")

REASON = "the login token expired: log in again with a fresh token before it expires"


def arm(node: Node, session: Session, expires_at: float | None) -> None:
    """Close ``session`` at ``expires_at`` (epoch seconds); None: never."""
    disarm(session)
    if expires_at is None:
        return
    delay = max(0.0, expires_at - time.time())
    session.expiry = asyncio.get_running_loop().call_later(
        delay, lambda: node.sio.engine.spawn(_expire(node, session))
    )


def disarm(session: Session) -> None:
    if session.expiry is not None:
        session.expiry.cancel()
        session.expiry = None


async def _expire(node: Node, session: Session) -> None:
    session.expiry = None
    if node.hub.sessions.get(session.sid) is not session:
        return  # already gone
    user = session.member.id if session.member is not None else "?"
    log.info("closing session %s of %s: its token expired", session.sid, user)
    await node.send(session, pushes.SESSION_CLOSED_EVENT, pushes.session_closed(REASON))
    await node.sio.disconnect(session.sid, namespace=NAMESPACE)
