"""Prometheus metrics of one node: what it counts on the hot path, and what it reads at scrape.

Each node owns a ``CollectorRegistry`` (never prometheus-client's global one): a test
process runs several nodes, and each must report only its own numbers.

Cheapness is the rule, because the fan-out loop is what a node's throughput is made of:

- deliveries, publications, slow consumers, gap repairs and Redis failures are already
  plain integers kept by the hub, the engine, the broker and the outage log; they are read
  only when Prometheus scrapes (``NodeCollector``), so they cost nothing per delivery;
- gauges (connections, sessions, users, rooms, peers) are computed at scrape time from the
  collections the node keeps anyway, instead of being incremented and decremented in loops;
- what must be counted per event (events by type and status, rate-limited events) goes
  into a dict of ints; the two histograms are prometheus-client ``Histogram`` children
  looked up once, observed once per event or per published message (not per recipient).

Labels never carry room or user ids: an event label is one of the known event names or
``unknown``, so the number of series stays fixed whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .polling import PollingSocket

if TYPE_CHECKING:
    from .node import Node

# Event in -> reply out: a store round trip or two. Milliseconds matter, seconds are broken.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# One published message -> written to the last local recipient: microseconds per recipient.
FANOUT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)

UNKNOWN_EVENT = "unknown"


class NodeMetrics:
    """Per-node counters and histograms; ``registry`` is what /metrics exposes."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=False)
        # (event, status code) -> count; event is a known name or UNKNOWN_EVENT.
        self.events: dict[tuple[str, int], int] = {}
        self.rate_limited = 0
        self._requests = Histogram(
            "dino_request_duration_seconds",
            "Time from an event arriving to its reply being written, by event",
            ["event"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self._request_children: dict[str, Histogram] = {}
        self._fanout = Histogram(
            "dino_fanout_duration_seconds",
            "Time from a publication reaching this node to its write to the last local "
            "recipient (with the in-memory store: from the publish itself)",
            buckets=FANOUT_BUCKETS,
            registry=self.registry,
        )
        # Bound once: Hub.deliver calls it for every published message that has listeners.
        self.observe_fanout: Callable[[float], None] | None = (
            self._fanout.observe if enabled else None
        )

    def count_event(self, label: str, status: int, seconds: float | None) -> None:
        """Count one answered event. ``label`` must come from a fixed set (the known event
        names and UNKNOWN_EVENT), never from the client's text as such."""
        key = (label, status)
        self.events[key] = self.events.get(key, 0) + 1
        if seconds is not None:
            child = self._request_children.get(label)
            if child is None:
                child = self._request_children[label] = self._requests.labels(label)
            child.observe(seconds)

    def watch(self, node: Node) -> None:
        """Expose ``node``'s own counters and collections, read at every scrape."""
        self.registry.register(NodeCollector(node))


def transport_of(node: Node, eio_sid: str) -> str:
    sock = node.sio.engine.sockets.get(eio_sid)
    return "polling" if isinstance(sock, PollingSocket) else "websocket"


def snapshot(node: Node) -> dict[str, object]:
    """The node's headline numbers, published to the store at every heartbeat so that any
    node can show the whole cluster (the admin page). Counters are totals since start; a
    reader takes differences between two snapshots for rates."""
    engine, hub, metrics = node.sio.engine, node.hub, node.metrics
    connections = {"websocket": 0, "polling": 0}
    for eio_sid in list(engine.sockets):
        connections[transport_of(node, eio_sid)] += 1
    users = {s.member.id for s in list(hub.sessions.values()) if s.member is not None}
    return {
        "at_ms": int(time.time() * 1000),
        "connections": connections,
        "sessions": len(hub.sessions),
        "users": len(users),
        "rooms_local": sum(1 for channel in hub.channels() if channel.startswith("room:")),
        "events": sum(metrics.events.values()),
        "messages": metrics.events.get(("message", 200), 0),
        "deliveries": hub.stats.delivered,
        "draining": node.status.draining,
        "redis_up": not node.outage.down,
    }


class NodeCollector(Collector):
    """Reads a node's state when Prometheus scrapes; nothing here runs per message."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        hub, engine, metrics = node.hub, node.sio.engine, node.metrics

        def transport(eio_sid: str) -> str:
            return transport_of(node, eio_sid)

        connections = GaugeMetricFamily(
            "dino_connections", "Open engine.io connections, by transport", labels=["transport"]
        )
        by_transport = {"websocket": 0, "polling": 0}
        for eio_sid in list(engine.sockets):
            by_transport[transport(eio_sid)] += 1
        for name, count in by_transport.items():
            connections.add_metric([name], count)
        yield connections

        sessions = GaugeMetricFamily(
            "dino_sessions", "socket.io sessions on /chat, by transport", labels=["transport"]
        )
        users: set[str] = set()
        by_transport = {"websocket": 0, "polling": 0}
        for session in list(hub.sessions.values()):
            by_transport[transport(session.eio_sid)] += 1
            if session.member is not None:
                users.add(session.member.id)
        for name, count in by_transport.items():
            sessions.add_metric([name], count)
        yield sessions
        yield GaugeMetricFamily(
            "dino_users_logged_in", "Distinct users logged in on this node", value=len(users)
        )
        yield GaugeMetricFamily(
            "dino_rooms_local",
            "Rooms with at least one member on this node",
            value=sum(1 for channel in hub.channels() if channel.startswith("room:")),
        )

        events = CounterMetricFamily(
            "dino_events", "Events received, by event and reply status code",
            labels=["event", "status"],
        )
        for (event, status), count in sorted(metrics.events.items()):
            events.add_metric([event, str(status)], count)
        yield events
        yield CounterMetricFamily(
            "dino_rate_limited_events",
            "Events refused with 400 because the connection sent too many",
            value=metrics.rate_limited,
        )
        yield CounterMetricFamily(
            "dino_messages_published",
            "Messages accepted from this node's clients (stored and published)",
            value=metrics.events.get(("message", 200), 0),
        )
        yield CounterMetricFamily(
            "dino_publications_received",
            "Publications this node received for channels it listens to",
            value=hub.stats.published,
        )
        yield CounterMetricFamily(
            "dino_deliveries", "Messages written to local recipients", value=hub.stats.delivered
        )
        yield CounterMetricFamily(
            "dino_slow_consumers_dropped",
            "Connections closed because their send buffer was full",
            value=engine.slow_consumers_dropped,
        )
        guard = getattr(hub.broker, "guard", None)  # only the Redis broker repairs gaps
        yield CounterMetricFamily(
            "dino_gap_repairs",
            "Room messages read back from logs after a pub/sub gap",
            value=getattr(guard, "repaired", 0),
        )
        yield CounterMetricFamily(
            "dino_redis_errors",
            "Requests and loops that failed because Redis was unavailable",
            value=node.outage.failures,
        )
        yield CounterMetricFamily(
            "dino_redis_outages", "Times Redis became unavailable", value=node.outage.outages
        )
        yield GaugeMetricFamily(
            "dino_redis_up",
            "1 while the store is reachable (always 1 with the in-memory store)",
            value=0 if node.outage.down else 1,
        )
        yield GaugeMetricFamily(
            "dino_cluster_peers_alive",
            "Nodes with a running lease, this one included, at the last heartbeat",
            value=len(node.status.live_nodes),
        )
        yield GaugeMetricFamily(
            "dino_draining",
            "1 while the node drains before exiting",
            value=int(node.status.draining),
        )
