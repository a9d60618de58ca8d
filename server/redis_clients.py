"""The Redis client a node talks to: one server (``--redis-url redis://...``) or a Redis
Cluster (``--redis-cluster-nodes host:port,...`` or ``--redis-url redis+cluster://...``).

Both are configured to fail fast when Redis is down (a client gets a 500 now, not in
ten seconds) and to queue a burst rather than fail it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError

CLUSTER_SCHEME = "redis+cluster"
# What RedisCluster.initialize raises when no startup node answers (yet).
CLUSTER_START_ERRORS = (RedisError, RedisClusterException, OSError)


def parse_cluster_nodes(text: str) -> list[tuple[str, int]]:
    """``"h1:p1,h2:p2"`` (or a ``redis+cluster://h1:p1,h2:p2`` URL) as (host, port) pairs.

    ``ValueError`` with a readable message for anything else."""
    if text.startswith(CLUSTER_SCHEME + "://"):
        netloc = urlsplit(text).netloc
        if "@" in netloc:
            raise ValueError("credentials in a redis+cluster URL are not supported")
        text = netloc
    nodes = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port for a cluster node, got {item.strip()!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def is_cluster_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(CLUSTER_SCHEME + "://")


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2)


def single_server_client(url: str) -> aioredis.Redis:
    # A burst (thousands of joins after a restart) waits for a free connection instead
    # of failing: redis-py's default pool raises past 100 connections.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=100,
        timeout=5.0,
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=10,
        retry=_retry(),
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


def cluster_client(nodes: list[tuple[str, int]]) -> RedisCluster:
    """A cluster client; any reachable node of ``nodes`` tells it the rest."""
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        # Per shard. The cluster client has no blocking pool: past this, requests fail
        # (a 500 the client retries), so it is set well above a node's usual need.
        max_connections=1000,
        retry=_retry(),
    )
