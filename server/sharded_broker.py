"""Sharded pub/sub on a Redis Cluster: each channel travels through the shard owning it.

``SPUBLISH`` on a cluster reaches only the shard that owns the channel's slot (plain
``PUBLISH`` is broadcast to every shard of the cluster), so a room's messages cost only
its own shard. A node subscribes with ``SSUBSCRIBE`` on that shard: one subscription
connection per shard it needs, each read by its own task.

redis-py 8's ``ClusterPubSub`` has ``ssubscribe`` too, but reads its per-shard
connections in turn, waiting up to the read timeout on each: a quiet shard would delay a
busy one's messages. Here every shard has its own reader, so none waits for another.

When a shard's connection breaks (its master died, a failover is under way) or the shard
tells us a channel's slot moved away (resharding: Redis sends ``sunsubscribe``), the
channels are placed again on whichever master owns their slot once the client's slot
map is refreshed, and each room channel is then repaired like after a reconnect of plain
pub/sub: the sequence guard reads what was missed back from the log (``server/gaps.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from storage.base import StoreUnavailable
from storage.keys import KeySchema

from .broker import Deliver, connect_once
from .cancel import raise_if_cancelled
from .gaps import ReadMissed, SequenceGuard
from .outage import OutageLog

log = logging.getLogger("dino.broker")

# Failures of a shard connection, or of finding a channel's shard during a failover.
_SHARD_ERRORS = (RedisError, RedisClusterException, OSError)
_CONFIRM_SECONDS = 5.0
_MAX_BACKOFF = 0.5


class _Shard:
    """One SSUBSCRIBE connection to one master, and the task reading it."""

    def __init__(
        self,
        name: str,
        client: aioredis.Redis,
        on_message: Callable[[dict[str, object]], None],
        on_lost: Callable[[_Shard, BaseException], None],
    ) -> None:
        self.name = name
        self.channels: set[str] = set()  # channel keys subscribed (or being) here
        self._client = client
        self._pubsub: PubSub = client.pubsub()
        self._on_message = on_message
        self._on_lost = on_lost
        self._subscribed = asyncio.Event()
        self._connecting = asyncio.Lock()
        self._reader = asyncio.create_task(self._read_forever(), name=f"shard {name}")

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        await connect_once(self._pubsub, self._connecting)
        await self._pubsub.ssubscribe(channel)
        self._subscribed.set()

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        await self._pubsub.sunsubscribe(channel)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        with contextlib.suppress(*_SHARD_ERRORS):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(*_SHARD_ERRORS):
            await self._client.aclose()

    async def _read_forever(self) -> None:
        await self._subscribed.wait()
        while True:
            raise_if_cancelled()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except _SHARD_ERRORS as exc:
                # No reconnect here: after a failover the slots belong to another
                # master, so the broker places the channels again wherever they live.
                self._on_lost(self, exc)
                return
            if message is not None:
                self._on_message(message)


class ShardedRedisBroker:
    """The broker of a node on a Redis Cluster (``SSUBSCRIBE``/``SPUBLISH``)."""

    def __init__(
        self,
        cluster: RedisCluster,
        keys: KeySchema,
        deliver: Deliver,
        read_missed: ReadMissed,
        outage: OutageLog,
    ) -> None:
        self._cluster = cluster
        self._keys = keys
        self.guard = SequenceGuard(deliver, read_missed)
        self._outage = outage
        self._shards: dict[str, _Shard] = {}  # node name (host:port) -> its connection
        self._where: dict[str, _Shard] = {}  # channel key -> the shard it is subscribed on
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._homeless: set[str] = set()  # channel keys waiting to be placed again
        self._replacing: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # lost shards being closed

    # -- the Broker protocol -----------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        name = self._keys.channel(channel)
        try:
            await self._place(name)
        except (TimeoutError, *_SHARD_ERRORS) as exc:
            # Placed later by the repair loop if the shard is only changing hands.
            self._homeless.add(name)
            self._replace_soon()
            raise StoreUnavailable(f"cannot subscribe to {channel}: {exc}") from exc

    async def unsubscribe(self, channel: str) -> None:
        name = self._keys.channel(channel)
        self.guard.forget(channel)
        self._homeless.discard(name)
        shard = self._where.pop(name, None)
        if shard is None:
            return
        try:
            await shard.unsubscribe(name)
        except _SHARD_ERRORS as exc:
            # Harmless: a stray subscription only brings messages no one local wants.
            self._outage.failed("sunsubscribe", exc)

    async def publish(self, channel: str, payload: str) -> None:
        try:
            await self._cluster.spublish(self._keys.channel(channel), payload)
        except _SHARD_ERRORS as exc:
            raise StoreUnavailable(f"cannot publish: {exc}") from exc

    async def close(self) -> None:
        if self._replacing is not None:
            self._replacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replacing
        for shard in list(self._shards.values()):
            await shard.close()
        self._shards.clear()
        self._where.clear()

    # -- placing channels on shards ----------------------------------------------------

    async def _place(self, name: str) -> None:
        """SSUBSCRIBE ``name`` on the master owning its slot; returns once confirmed."""
        node = self._cluster.get_node_from_key(name)  # the slot's master, per the map
        if node is None:
            raise RedisClusterException(f"no master serves the slot of {name}")
        shard = self._shards.get(node.name)
        if shard is None:
            client = aioredis.Redis(
                host=node.host,
                port=int(node.port),
                decode_responses=True,
                socket_connect_timeout=2.0,
                # No reconnecting to the same address: after a failover the slots
                # belong to another master, so one path (_lost, _replace) handles both.
                retry=Retry(NoBackoff(), 0),
                # A silent shard (partition, not a crash) is noticed by a PING.
                health_check_interval=10,
            )
            shard = _Shard(node.name, client, self._dispatch, self._lost)
            self._shards[node.name] = shard
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(name, []).append(confirmed)
        try:
            await shard.subscribe(name)
            # Only once Redis confirms is a publication guaranteed to reach us.
            await asyncio.wait_for(confirmed, timeout=_CONFIRM_SECONDS)
        except BaseException:
            waiting = self._confirmations.get(name, [])
            if confirmed in waiting:
                waiting.remove(confirmed)
            shard.channels.discard(name)
            raise
        self._where[name] = shard

    def _lost(self, shard: _Shard, exc: BaseException) -> None:
        """A shard's connection broke: every channel on it must find its master again."""
        self._outage.failed(f"shard {shard.name}", exc)
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
        for name in shard.channels:
            if self._where.get(name) is shard:
                del self._where[name]
                self._homeless.add(name)
        closing = asyncio.get_running_loop().create_task(shard.close())
        self._closing.add(closing)  # the loop keeps only a weak reference
        closing.add_done_callback(self._closing.discard)
        self._replace_soon()

    def _moved(self, name: str) -> None:
        """The shard unsubscribed us from ``name`` by itself: its slot moved away."""
        shard = self._where.pop(name, None)
        if shard is None:
            return  # we asked for it (unsubscribe)
        shard.channels.discard(name)
        self._homeless.add(name)
        self._replace_soon()

    def _replace_soon(self) -> None:
        if self._replacing is None or self._replacing.done():
            self._replacing = asyncio.get_running_loop().create_task(self._replace())

    async def _replace(self) -> None:
        """Place the homeless channels again, refreshing the slot map until it works."""
        backoff = 0.05
        while self._homeless:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            try:
                # Ask the cluster who owns which slot now (a failover changes masters).
                await self._cluster.nodes_manager.initialize()
            except _SHARD_ERRORS as exc:
                self._outage.failed("cluster slot map", exc)
                continue
            for name in list(self._homeless):
                try:
                    await self._place(name)
                except (TimeoutError, *_SHARD_ERRORS) as exc:
                    self._outage.failed(f"resubscribe {name}", exc)
                    break
                self._homeless.discard(name)
                # Whatever was published while we were not subscribed is in the log.
                self.guard.resubscribed(self._keys.channel_name(name))
        self._outage.recovered()

    # -- messages ----------------------------------------------------------------------

    def _dispatch(self, message: dict[str, object]) -> None:
        kind, name, data = message["type"], message["channel"], message["data"]
        if not isinstance(name, str):
            return
        if kind == "smessage" and isinstance(data, str):
            try:
                self.guard.deliver(self._keys.channel_name(name), data)
            except Exception:
                log.exception("delivering a message on %s failed", name)
        elif kind == "ssubscribe":
            waiters = self._confirmations.pop(name, [])
            if not waiters and name in self._where:
                # Nobody asked: redis-py subscribed again by itself after a reconnect.
                self.guard.resubscribed(self._keys.channel_name(name))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        elif kind == "sunsubscribe":
            self._moved(name)
