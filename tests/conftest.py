"""Fixtures shared by every test module (see ``tests/redis_fixture.py`` and
``tests/redis_cluster_fixture.py``)."""

import pytest

# Test modules import helpers from node_fixtures as well as loading it as a plugin; its
# asserts are rewritten whichever comes first.
pytest.register_assert_rewrite("tests.node_fixtures")

from tests.redis_cluster_fixture import (  # noqa: E402
    redis_cluster,
    redis_cluster_client,
    redis_cluster_processes,
)
from tests.redis_fixture import key_prefix, redis_client, redis_url  # noqa: E402

__all__ = [
    "key_prefix",
    "redis_client",
    "redis_cluster",
    "redis_cluster_client",
    "redis_cluster_processes",
    "redis_url",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Node tests run on the Redis Cluster over websocket only.

    The transports are the same code on every store, and the store is the same code
    whatever the transport: the cluster adds what only it can break (slots, sharded
    pub/sub) and the websocket cases cover that, at a third of the time."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_cluster = params.get("backend") == "cluster"
        if on_cluster and params.get("transport", "websocket") != "websocket":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
