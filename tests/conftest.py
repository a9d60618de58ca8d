"""Fixtures shared by every test module (see ``tests/redis_fixture.py``)."""

from tests.redis_cluster_fixture import (
    redis_cluster,
    redis_cluster_client,
    redis_cluster_processes,
)
from tests.redis_fixture import key_prefix, redis_client, redis_url

__all__ = [
    "key_prefix",
    "redis_client",
    "redis_cluster",
    "redis_cluster_client",
    "redis_cluster_processes",
    "redis_url",
]
