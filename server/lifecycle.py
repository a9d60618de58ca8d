"""Running a node: bind, build, serve until asked to stop, then leave cleanly."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from .app import make_app
from .cluster import Cluster
from .events_out import start_forwarders, stop_forwarders
from .node import create_node
from .settings import Settings

log = logging.getLogger("dino")


async def serve(settings: Settings, static_dir: Path, stop: asyncio.Event) -> None:
    # Bind first: with --port 0 the real port is known only now, and it names the node.
    # A deep accept queue: thousands of clients reconnect at once after a node restart.
    sockets = bind_sockets(settings.port, settings.host, family=socket.AF_INET, backlog=4096)
    port = sockets[0].getsockname()[1]
    node_id = settings.node_id or f"{socket.gethostname()}:{port}"
    node = await create_node(settings, node_id)
    cluster = Cluster(node)
    await cluster.start()
    start_forwarders(node)
    server = HTTPServer(make_app(node, static_dir), xheaders=True)
    server.add_sockets(sockets)
    if settings.auth == "open":
        log.warning("--auth open: any client may log in as any user; use --auth jwt in production")
    if not settings.api_keys:
        log.info("HTTP API off: start with --api-keys KEY[,KEY...] to serve /api/v1/")
    where = settings.redis_url if settings.redis_url else "in-memory store, single node"
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
        server.stop()
        await stop_forwarders(node)
        await cluster.stop()
        await node.close()
