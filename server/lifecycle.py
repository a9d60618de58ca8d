"""Running a node: bind, build, serve until asked to stop, then leave cleanly."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from tornado.netutil import bind_sockets

from .accept import PausingHTTPServer
from .app import make_app
from .cluster import Cluster
from .drain import drain
from .events_out import start_forwarders, stop_forwarders
from .logs import name_node_in_logs
from .node import create_node
from .settings import Settings

log = logging.getLogger("dino")


async def serve(settings: Settings, static_dir: Path, stop: asyncio.Event) -> None:
    # Bind first: with --port 0 the real port is known only now, and it names the node.
    # A deep accept queue: thousands of clients reconnect at once after a node restart.
    sockets = bind_sockets(settings.port, settings.host, family=socket.AF_INET, backlog=4096)
    port = sockets[0].getsockname()[1]
    node_id = settings.node_id or f"{socket.gethostname()}:{port}"
    name_node_in_logs(node_id)
    node = await create_node(settings, node_id)
    cluster = Cluster(node)
    await cluster.start()
    start_forwarders(node)
    # Tornado's defaults (100 MB bodies, an hour for headers) let a few raw requests cost
    # hundreds of MB, or hold a connection with a byte every few seconds. Bodies up to
    # the largest a handler accepts are read (plus headroom, so that a body a little too
    # large is answered 413 by its handler, which closes that session); beyond, Tornado
    # answers 400 without reading it.
    api_body = settings.max_api_body_bytes if settings.api_keys else 0
    body_limit = max(settings.max_packet_bytes, api_body) + 65_536
    server = PausingHTTPServer(
        make_app(node, static_dir),
        xheaders=True,
        max_body_size=body_limit,
        max_buffer_size=body_limit + 65_536,
        idle_connection_timeout=settings.header_timeout,
        body_timeout=settings.header_timeout,
    )
    server.edge = node.sio.engine.edge
    server.add_sockets(sockets)
    if settings.auth == "open":
        log.warning("--auth open: any client may log in as any user; use --auth jwt in production")
    if not settings.api_keys:
        log.info("HTTP API off: start with --api-keys KEY[,KEY...] to serve /api/v1/")
    where = settings.redis_cluster_nodes or settings.redis_url or "in-memory store, single node"
    # 0.0.0.0 is where it listens, not an address to open: name one a browser can use.
    browse = "localhost" if settings.host in ("0.0.0.0", "::", "") else settings.host
    log.info(
        "dino node %s listening on http://%s:%d/ (%s backend: %s); demo: http://%s:%d/",
        node_id,
        settings.host,
        port,
        settings.backend,
        where,
        browse,
        port,
    )
    try:
        await stop.wait()
    finally:
        log.info("stopping node %s", node_id)
        # Still listening while draining: new clients get 503 and go elsewhere.
        await drain(node, cluster.stop, settings.drain_timeout)
        server.stop()
        # After the drain: the offline events it caused are forwarded before the lease goes.
        await stop_forwarders(node)
        await node.close()
