"""The /chat namespace: turns socket.io events into handler calls and replies.

Every event ``E`` is answered with ``gn_E`` on the connection and, when the client asked
for an ack, with the same object as the ack. The core's typed errors become status codes
here and only here: 400 for the client's mistakes, 403 for a refused permission, 500 for
the rest, with the traceback in the log and nothing internal in the reply.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

import socketio

from core import expiry, pushes, sessions
from core.errors import BadRequest, Forbidden, Unavailable
from server.hub import Session
from server.metrics import UNKNOWN_EVENT
from server.node import Node
from server.wire import NAMESPACE

from .events import EVENTS
from .validation import encodable, request_object

log = logging.getLogger("dino.namespace")

Reply = dict[str, Any]


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, node: Node) -> None:
        super().__init__(NAMESPACE)
        self.node = node

    async def trigger_event(self, event: str, *args: Any) -> Any:
        # python-socketio documents overriding this to route every event in one place.
        if event == "connect":
            return await self.on_connect(args[0], args[2] if len(args) > 2 else None)
        if event == "disconnect":
            return await self.on_disconnect(args[0])
        sid = args[0]
        payload = args[1] if len(args) > 1 else None
        return await self.on_event(event, sid, payload)

    async def on_connect(self, sid: str, auth: Any) -> None:
        eio_sid = self.node.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        token = auth.get("token") if isinstance(auth, dict) else None
        session = await sessions.connect(
            self.node, sid, eio_sid, token if isinstance(token, str) else None
        )
        # The engine.io connection's budget: reconnecting the namespace does not refill it.
        session.bucket = self.node.sio.engine.bucket_of(eio_sid)
        await self.node.send(session, pushes.CONNECT_EVENT, pushes.connected())

    async def on_disconnect(self, sid: str) -> None:
        session = self.node.hub.sessions.get(sid)
        if session is None:
            return
        expiry.disarm(session)
        if session.member is not None:
            self.node.limits.events.release(session.member.id)
        try:
            await sessions.disconnect(self.node, session)
        except Unavailable as exc:
            self.node.outage.failed("disconnect", exc)
        except Exception:
            log.exception("cleaning up session %s failed", sid)

    async def on_event(self, event: str, sid: str, payload: Any) -> Reply:
        session = self.node.hub.sessions.get(sid)
        if session is None:  # raced with its own disconnect
            return {"status_code": 400, "data": "not connected"}
        metrics, busy = self.node.metrics, self.node.status.busy
        started = perf_counter() if metrics.enabled else 0.0
        busy.add(sid)  # a draining node closes this connection only after the reply
        try:
            reply = await self._reply(event, session, payload)
            # The event name is the client's text; a lone surrogate in it could not be sent.
            await self.node.send(session, "gn_" + encodable(event), reply)
        finally:
            busy.discard(sid)
        metrics.count_event(
            event if event in EVENTS else UNKNOWN_EVENT,
            reply["status_code"],
            perf_counter() - started if metrics.enabled else None,
        )
        return reply

    async def _reply(self, event: str, session: Session, payload: Any) -> Reply:
        handler = EVENTS.get(event)
        member = session.member
        try:
            if session.bucket is not None and not session.bucket.take():
                self.node.metrics.rate_limited += 1
                rate = self.node.settings.max_events_per_second
                raise BadRequest(f"too many requests: at most {rate:g} events per second")
            if member is not None and not self.node.limits.events.take(member.id):
                self.node.metrics.rate_limited += 1
                rate = self.node.settings.max_user_events_per_second
                raise BadRequest(
                    f"too many requests: at most {rate:g} events per second per user"
                )
            if handler is None:
                raise BadRequest(f"unknown event '{event}'")
            if session.member is None and event != "login":
                raise BadRequest("log in first: send the login event")
            request = request_object(payload)
            self._check_actor(session, request)
            data = await handler(self.node, session, request)
        except BadRequest as exc:
            return {"status_code": 400, "data": encodable(str(exc))}
        except Forbidden as exc:
            return {"status_code": 403, "data": encodable(str(exc))}
        except Unavailable as exc:
            self.node.outage.failed(event, exc)
            return {"status_code": 500, "data": "storage is unavailable; try again shortly"}
        except Exception:
            log.exception("event %r from %s failed", event, session.sid)
            return {"status_code": 500, "data": f"internal error while handling '{event}'"}
        if member is None and session.member is not None:  # logged in just now
            self.node.limits.events.acquire(session.member.id)
        if self.node.outage.down:
            self.node.outage.recovered()
        return {"status_code": 200} if data is None else {"status_code": 200, "data": data}

    @staticmethod
    def _check_actor(session: Session, request: dict[str, Any]) -> None:
        """The session's user is authoritative: a request may not speak for someone else."""
        if session.member is None:
            return
        actor = request.get("actor")
        claimed = actor.get("id") if isinstance(actor, dict) else None
        if claimed is not None and str(claimed) != session.member.id:
            raise BadRequest(f"actor.id '{claimed}' is not the logged-in user")
