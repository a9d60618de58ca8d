"""The node: the one context object that owns a running node's parts.

Everything a handler needs is reached through ``Node``; there is no module-level state, so
a test can run several nodes in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from storage.base import Appended, Dedupe, Event, Fanout, Store
from storage.event_log import EventLog, MemoryEventLog
from storage.keys import KeySchema
from storage.memory import MemoryStore
from storage.redis_events import RedisEventLog
from storage.redis_store import RedisStore

from .auth import Authenticator, make_authenticator
from .broker import RedisBroker
from .forwarder import Forwarder
from .gaps import MAX_REPAIR
from .hub import Hub, Session
from .metrics import NodeMetrics
from .outage import OutageLog
from .quotas import UserLimits
from .redis_clients import (
    CLUSTER_START_ERRORS,
    cluster_client,
    parse_cluster_nodes,
    single_server_client,
)
from .settings import Settings
from .sharded_broker import ShardedRedisBroker
from .status import NodeStatus
from .transport import DinoSocketServer, create_socket_server
from .wire import Json, control_envelope, envelope, event_packet, event_packet_parts

log = logging.getLogger("dino.node")


@dataclass
class Node:
    settings: Settings
    node_id: str
    sio: DinoSocketServer
    hub: Hub
    store: Store
    auth: Authenticator
    outage: OutageLog
    # The event stream's read side (None: --events-maxlen 0), for server/forwarder.py.
    events: EventLog | None = None
    forwarders: list[Forwarder] = field(default_factory=list)  # server/events_out.py
    # Sessions whose removal from the store failed (Redis down); retried by the cluster.
    unfinished_drops: set[str] = field(default_factory=set)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    limits: UserLimits = field(default_factory=UserLimits)  # per-user rates and quotas
    metrics: NodeMetrics = field(default_factory=NodeMetrics)
    status: NodeStatus = field(default_factory=NodeStatus)

    async def send(self, session: Session, event: str, data: object) -> None:
        """Emit ``event`` to one session, on the same ordered path as room deliveries."""
        await self.send_json(session, event, Json.dumps(data))

    async def send_json(self, session: Session, event: str, data_json: str) -> None:
        """``send`` for data already encoded as JSON."""
        self.sio.engine.enqueue_text(session.eio_sid, event_packet(event, data_json))

    async def publish(self, channel: str, event: str, data: object, skip_sid: str = "") -> None:
        """Emit ``event`` to every listener of ``channel`` on every node."""
        await self.hub.broker.publish(
            channel, envelope(skip_sid, event_packet(event, Json.dumps(data)))
        )

    async def publish_control(self, channel: str, op: str, event: str, data: object) -> None:
        """Emit ``event`` to every listener of ``channel`` on every node, after which each
        node applies ``op`` to those listeners (``core.control``)."""
        await self.hub.broker.publish(
            channel, control_envelope(op, event_packet(event, Json.dumps(data)))
        )

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, keeping a reference until it is done (the
        loop keeps only weak ones) and logging a failure."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def append_entry(
        self,
        log_name: str,
        entry_tail: str,
        channels: list[str],
        event: str,
        skip_sid: str = "",
        dedupe: Dedupe | None = None,
        *,
        stream_event: Event | None = None,
    ) -> Appended:
        """Store an activity in a log and emit it as ``event`` on ``channels``, atomically;
        with ``dedupe``, only if it was not done already under ``dedupe.key``. Returns the
        seq with the log's epoch."""
        head, tail = event_packet_parts(event)
        fanouts = [Fanout(channel, envelope(skip_sid, head), tail) for channel in channels]
        if dedupe is not None:
            return await self.store.append_once(
                log_name, entry_tail, fanouts, dedupe, event=stream_event
            )
        return await self.store.append_entry(log_name, entry_tail, fanouts, event=stream_event)

    async def close(self) -> None:
        await self.sio.engine.stop_pinging()
        await self.hub.broker.close()
        await self.store.close()


async def create_node(settings: Settings, node_id: str) -> Node:
    """Build a node for ``settings``: in-memory without a Redis URL, Redis-backed with one."""
    sio = create_socket_server(
        compression=settings.compression,
        send_buffer_bytes=settings.send_buffer_bytes,
        max_packet_bytes=settings.max_packet_bytes,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        cors_origins=settings.cors_origins,
        event_rate=settings.max_events_per_second,
        event_burst=settings.max_event_burst,
        connect_timeout=settings.connect_timeout,
        max_connections=settings.max_connections,
        max_connections_per_address=settings.max_connections_per_address,
    )
    outage = OutageLog()
    metrics = NodeMetrics(enabled=settings.metrics)
    hub = Hub(sio.engine.enqueue, sio.engine.links)
    hub.observe_fanout = metrics.observe_fanout
    store: Store
    events: EventLog | None = None
    if settings.backend != "memory":
        keys = KeySchema(settings.redis_prefix)
        cluster_nodes = settings.redis_cluster_nodes or settings.redis_url or ""
        client: aioredis.Redis | RedisCluster = (
            cluster_client(parse_cluster_nodes(cluster_nodes))
            if settings.backend == "redis-cluster"
            else single_server_client(cluster_nodes)
        )
        if isinstance(client, RedisCluster):
            # Learn the slot map now: left to the first commands, concurrent ones race
            # to initialise and can close connections another is using (redis-py 8.1).
            # Unreachable: the node starts anyway and serves 500s until the cluster is up.
            with contextlib.suppress(*CLUSTER_START_ERRORS):
                await client.initialize()
        redis_store = store = RedisStore(
            client, keys, settings.history_size, events_maxlen=settings.events_maxlen
        )
        if settings.events_maxlen > 0:
            events = RedisEventLog(client, keys)

        async def read_missed(log_name: str, since: int) -> list[str]:
            return await redis_store.history(log_name, before=None, since=since, limit=MAX_REPAIR)

        if isinstance(client, RedisCluster):
            hub.broker = ShardedRedisBroker(client, keys, hub.deliver, read_missed, outage)
        else:
            hub.broker = RedisBroker(client, keys, hub.deliver, read_missed, outage)
    else:
        # In memory, only a forwarder can read the stream: without a sink, keep none.
        memory_events = None
        if settings.events_maxlen > 0 and (settings.events_amqp_url or settings.events_file):
            events = memory_events = MemoryEventLog(settings.events_maxlen)
        store = MemoryStore(settings.history_size, hub.deliver, memory_events)
    node = Node(
        settings=settings,
        node_id=node_id,
        sio=sio,
        hub=hub,
        store=store,
        auth=make_authenticator(settings.auth, settings.jwt_secret, settings.jwt_require_exp),
        outage=outage,
        events=events,
        limits=UserLimits.from_settings(settings),
        metrics=metrics,
    )
    metrics.watch(node)
    return node
