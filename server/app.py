"""The Tornado application of a node: socket.io, the demo page, health, readiness, metrics."""

from __future__ import annotations

import functools
from pathlib import Path

import tornado.web

from core import control
from handlers import api
from handlers.namespace import ChatNamespace

from .drain import refusing_while_draining
from .node import Node
from .probes import log_request, probe_routes
from .transport import socketio_handler_class


class HealthHandler(tornado.web.RequestHandler):
    """GET /health: liveness and a few counters, as JSON, for load balancers and people."""

    def initialize(self, node: Node) -> None:
        self.node = node

    def get(self) -> None:
        node, hub = self.node, self.node.hub
        self.write(
            {
                "node": node.node_id,
                "backend": node.settings.backend,
                "redis_down": node.outage.down,
                "sessions": len(hub.sessions),
                "channels": len(hub.channels()),
                "published": hub.stats.published,
                "delivered": hub.stats.delivered,
                "slow_consumers_dropped": node.sio.engine.slow_consumers_dropped,
                "connections": node.sio.engine.caps.total,
                # Refused and misbehaving clients, by kind (server/edge.py).
                "edge": node.sio.engine.edge.as_dict(),
                # Room messages read back from logs after a pub/sub gap (Redis only).
                "messages_repaired": getattr(getattr(hub.broker, "guard", None), "repaired", 0),
                # The event stream out, per sink (server/forwarder.py).
                "events": {f.sink.name: f.health() for f in node.forwarders},
            }
        )


def make_app(node: Node, static_dir: Path) -> tornado.web.Application:
    node.hub.on_control = functools.partial(control.apply, node)
    namespace = ChatNamespace(node)
    node.sio.register_namespace(namespace)
    node.sio.answerer = namespace
    return tornado.web.Application(
        [
            (
                r"/socket.io/",
                refusing_while_draining(
                    socketio_handler_class(node.sio, node.settings.compression), node
                ),
            ),
            (r"/health", HealthHandler, {"node": node}),
            *probe_routes(node),
            *api.routes(node),
            (
                r"/demo/(.*)",
                tornado.web.StaticFileHandler,
                {"path": str(static_dir), "default_filename": "index.html"},
            ),
            (r"/(?:demo)?", tornado.web.RedirectHandler, {"url": "/demo/"}),
            # The admin page: static like the demo; its data needs the API key.
            (
                r"/admin/(.*)",
                tornado.web.StaticFileHandler,
                {"path": str(static_dir.parent / "admin"), "default_filename": "index.html"},
            ),
            (r"/admin", tornado.web.RedirectHandler, {"url": "/admin/"}),
        ],
        log_function=log_request,
    )
