"""The event stream's read side: what a forwarder needs to move events out, in order.

The stores write events (``storage.base.Event``) atomically with the changes they describe;
an ``EventLog`` lets exactly one forwarder per sink (``server/forwarder.py``) read them in
stream order, remember how far a sink has confirmed them, and notice events that were
trimmed (the stream keeps the newest ``events_maxlen``) before they were forwarded.

``MemoryEventLog`` is the in-memory store's stream; ``RedisEventLog`` (in
``storage/redis_events.py``) reads the Redis stream ``<prefix>{events}:stream``, or on a
Redis Cluster the stream of each hash slot. A log's events are all in one stream, in
``seq`` order; a forwarder keeps a cursor per stream.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Cursor:
    """How far a sink has confirmed: the stream id of the last event it confirmed and
    that event's position (1 for the first event ever added to the stream)."""

    id: str
    position: int


@dataclass(frozen=True)
class StreamEntry:
    id: str  # the stream's id of the entry (Redis: "<ms>-<n>")
    position: int
    routing_key: str
    event: str  # the event's JSON text


@dataclass(frozen=True)
class Batch:
    entries: list[StreamEntry]
    # Events after the cursor that were trimmed from the stream before this read: lost
    # to the sink. The caller logs and counts them.
    skipped: int
    # Position of the newest event in the stream at the time of the read.
    newest: int


class EventLog(Protocol):
    """The streams as one forwarder per sink reads them. ``name`` names the sink,
    ``stream`` one of ``streams()``."""

    async def streams(self) -> list[str]:
        """The streams events are in now (a cluster adds one per slot that has events)."""
        ...

    async def read(self, stream: str, after: Cursor | None, count: int) -> Batch:
        """Up to ``count`` events of ``stream`` after ``after`` (None: from the oldest
        kept), oldest first."""
        ...

    async def hold(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew the lease of sink ``name`` for ``holder``; True if it holds it
        now. At most one holder at a time: that one forwards."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` has it."""
        ...

    async def cursor(self, name: str, stream: str) -> Cursor | None:
        """The last cursor committed for sink ``name`` in ``stream``; None if none was."""
        ...

    async def commit(self, name: str, holder: str, stream: str, cursor: Cursor) -> bool:
        """Store the cursor of sink ``name`` in ``stream`` if ``holder`` still holds its
        lease (atomic check and write, so a forwarder that lost its lease cannot move the
        cursor of the one that took over); False if it does not."""
        ...


STREAM = "memory"  # the one stream of a MemoryEventLog


class MemoryEventLog:
    """The in-memory store's stream: one node, no restarts to survive (a restarted node
    starts an empty stream, as its rooms and logs are empty too)."""

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._entries: deque[StreamEntry] = deque(maxlen=max(maxlen, 1))
        self._added = 0
        self._leases: dict[str, tuple[str, float]] = {}
        self._cursors: dict[str, Cursor] = {}

    def add(self, routing_key: str, event: str) -> None:
        """Append one event (the store calls this within the step that makes the change)."""
        self._added += 1
        position = self._added
        self._entries.append(StreamEntry(str(position), position, routing_key, event))

    @property
    def entries(self) -> list[StreamEntry]:
        return list(self._entries)

    async def streams(self) -> list[str]:
        return [STREAM]

    async def read(self, stream: str, after: Cursor | None, count: int) -> Batch:
        start = 0 if after is None else after.position
        first = self._entries[0].position if self._entries else self._added + 1
        skipped = max(0, first - start - 1) if after is not None else 0
        begin = max(start + 1, first)
        offset = begin - first
        picked = [self._entries[i] for i in range(offset, min(offset + count, len(self._entries)))]
        return Batch(picked, skipped, self._added)

    async def hold(self, name: str, holder: str, ttl_ms: int) -> bool:
        now = time.monotonic()
        current = self._leases.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._leases[name] = (holder, now + ttl_ms / 1000)
        return True

    async def release(self, name: str, holder: str) -> None:
        current = self._leases.get(name)
        if current is not None and current[0] == holder:
            del self._leases[name]

    async def cursor(self, name: str, stream: str) -> Cursor | None:
        return self._cursors.get(name)

    async def commit(self, name: str, holder: str, stream: str, cursor: Cursor) -> bool:
        current = self._leases.get(name)
        if current is None or current[0] != holder:
            return False
        self._cursors[name] = cursor
        return True
