"""HTTP endpoints for operators: /ready for load balancers and orchestrators, /metrics for
Prometheus. (/health, in app.py, only says the process answers.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado.log import access_log

from storage.base import StoreError

from .node import Node

# /ready must answer before the prober gives up (nginx, Kubernetes: 1 s by default).
STORE_CHECK_SECONDS = 0.8


class ReadyHandler(tornado.web.RequestHandler):
    """GET /ready: 200 while the node should get new clients, 503 (with reasons) otherwise.

    Ready means: not draining, the store answers now, and the node's lease is held (the
    cluster counts it alive). Each reason is named, so an operator sees why at once."""

    def initialize(self, node: Node) -> None:
        self.node = node

    async def get(self) -> None:
        node = self.node
        reasons: list[str] = []
        if node.status.draining:
            reasons.append("draining")
        try:
            # A real round trip: the outage flag only changes when something fails.
            await asyncio.wait_for(node.store.live_nodes(), STORE_CHECK_SECONDS)
        except (StoreError, TimeoutError):
            reasons.append("storage unreachable")
        else:
            if node.outage.down:
                node.outage.recovered()
        if not node.status.lease_held(node.settings.lease_ttl):
            reasons.append("lease not held")
        body: dict[str, Any] = {"node": node.node_id, "ready": not reasons, "reasons": reasons}
        self.set_header("Cache-Control", "no-store")
        if reasons:
            self.set_status(503)
        self.write(body)


class MetricsHandler(tornado.web.RequestHandler):
    """GET /metrics: this node's registry in the Prometheus text format."""

    def initialize(self, node: Node) -> None:
        self.node = node

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.write(generate_latest(self.node.metrics.registry))


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log, except that a 503 from /ready is news, not an error: it is
    what a draining node or one without Redis must say, to every probe."""
    status = handler.get_status()
    if status < 400 or (status == 503 and isinstance(handler, ReadyHandler)):
        level = logging.INFO
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    request = handler.request
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        request.path,  # not the query string: it may carry a client's token
        request.remote_ip,
        1000.0 * request.request_time(),
    )


def probe_routes(node: Node) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    routes: list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]] = [
        (r"/ready", ReadyHandler, {"node": node}),
    ]
    if node.metrics.enabled:
        routes.append((r"/metrics", MetricsHandler, {"node": node}))
    return routes
