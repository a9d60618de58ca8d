"""The broker: pub/sub between nodes. In memory for one node, Redis pub/sub for many.

Channels are interest-routed: a node subscribes to ``room:<id>`` only while it has a
member of that room, and to ``user:<id>`` while that user has a session on it, so a
message reaches only the nodes that deliver it (python-socketio's and socket.io's Redis
adapters send everything to every node and let each one discard what it does not need).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.base import StoreUnavailable
from storage.keys import KeySchema

from .cancel import raise_if_cancelled
from .gaps import ReadMissed, SequenceGuard
from .outage import OutageLog

log = logging.getLogger("dino.broker")

Deliver = Callable[[str, str], None]


class Broker(Protocol):
    async def subscribe(self, channel: str) -> None:
        """Receive ``channel``; returns once the subscription is active."""
        ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, payload: str) -> None: ...

    async def close(self) -> None: ...


class MemoryBroker:
    """One node: publishing is delivering."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def subscribe(self, channel: str) -> None:
        pass  # the hub routes by its own listener table

    async def unsubscribe(self, channel: str) -> None:
        pass

    async def publish(self, channel: str, payload: str) -> None:
        self._deliver(channel, payload)

    async def close(self) -> None:
        pass


async def connect_once(pubsub: aioredis.client.PubSub, lock: asyncio.Lock) -> None:
    """Open ``pubsub``'s connection before the first (un)subscribe.

    redis-py's PubSub opens its connection lazily in each command, so concurrent first
    subscriptions (a burst of logins) could each open one, and every one but the last
    would be lost with its confirmation."""
    if pubsub.connection is None:
        async with lock:
            if pubsub.connection is None:
                await pubsub.connect()  # type: ignore[no-untyped-call]


class RedisBroker:
    """Redis pub/sub on one dedicated connection, read by one task.

    When Redis goes away the reader logs once, retries with backoff and, on reconnect,
    redis-py resubscribes every channel it had. Messages published while the node was
    cut off are not replayed live: they are in the logs, and clients see the gap in
    ``seq`` and fetch it with ``history``.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        keys: KeySchema,
        deliver: Deliver,
        read_missed: ReadMissed,
        outage: OutageLog,
    ) -> None:
        self._client = client
        self._keys = keys
        self.guard = SequenceGuard(deliver, read_missed)
        self._outage = outage
        self._pubsub = client.pubsub()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._subscribed = asyncio.Event()
        self._connecting = asyncio.Lock()
        self._reader = asyncio.create_task(self._read_forever())

    async def subscribe(self, channel: str) -> None:
        name = self._keys.channel(channel)
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(name, []).append(confirmed)
        try:
            await connect_once(self._pubsub, self._connecting)
            await self._pubsub.subscribe(name)
            self._subscribed.set()
            # The reader resolves this when Redis confirms; only then are publications
            # on the channel guaranteed to reach us.
            await asyncio.wait_for(confirmed, timeout=5.0)
        except (TimeoutError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
            waiting = self._confirmations.get(name, [])
            if confirmed in waiting:
                waiting.remove(confirmed)
            raise StoreUnavailable(f"cannot subscribe to {channel}: {exc}") from exc

    async def unsubscribe(self, channel: str) -> None:
        self.guard.forget(channel)
        try:
            await self._pubsub.unsubscribe(self._keys.channel(channel))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # Harmless: a stray subscription only brings messages no one local wants.
            self._outage.failed("unsubscribe", exc)

    async def publish(self, channel: str, payload: str) -> None:
        try:
            await self._client.publish(self._keys.channel(channel), payload)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(f"cannot publish: {exc}") from exc

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read_forever(self) -> None:
        backoff = 0.05
        while True:
            raise_if_cancelled()
            await self._subscribed.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.05
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self._outage.failed("pub/sub", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
                await self._reconnect()
                continue
            if message is not None:
                self._dispatch(message)

    async def _reconnect(self) -> None:
        try:
            # Reconnecting runs redis-py's on_connect hook, which resubscribes.
            await self._pubsub.connect()  # type: ignore[no-untyped-call]
            await self._pubsub.ping()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._outage.failed("pub/sub reconnect", exc)
        else:
            self._outage.recovered()

    def _dispatch(self, message: dict[str, object]) -> None:
        kind, name, data = message["type"], message["channel"], message["data"]
        if not isinstance(name, str):
            return
        if kind == "message" and isinstance(data, str):
            try:
                self.guard.deliver(self._keys.channel_name(name), data)
            except Exception:
                log.exception("delivering a message on %s failed", name)
        elif kind == "subscribe":
            waiters = self._confirmations.pop(name, [])
            if not waiters:
                # Nobody asked: redis-py resubscribed after a reconnect. Whatever was
                # published meanwhile is in the logs.
                self.guard.resubscribed(self._keys.channel_name(name))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
