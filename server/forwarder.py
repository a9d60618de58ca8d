"""Moves the event stream to a sink (RabbitMQ, a JSON-lines file): one forwarder per sink
in the whole cluster, at least once, in stream order, resuming after the last confirmed.

Every node runs a ``Forwarder`` per configured sink, but only the one holding the sink's
lease (``EventLog.hold``, renewed every third of ``lease_ttl``) forwards; the others wait
to take over when it dies. The holder reads a batch after its cursor, hands it to the sink,
and commits the cursor only once the sink has confirmed the whole batch (RabbitMQ:
publisher confirms; a file: written and flushed), in one step fenced by the lease. A crash
or a lost lease between the sink's confirm and the commit sends that batch again: events
are delivered at least once, and a duplicate carries the same event ``id``. A log's events
are all in one stream (on a Redis Cluster there is one per hash slot, each with its own
cursor), read in order, so each log's events leave in ``seq`` order.

While the sink is down, events wait in the stream (bounded by ``--events-maxlen``); a
backlog nearing that bound is logged loudly, and events trimmed before they were forwarded
are logged and counted (``/health``: ``events.<sink>.trimmed_before_forwarding``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from storage.base import StoreUnavailable
from storage.event_log import Batch, Cursor, EventLog, StreamEntry

from .cancel import raise_if_cancelled

log = logging.getLogger("dino.events")

BATCH = 500
IDLE_POLL = 0.05  # seconds between reads of an empty stream (holder only)
SINK_RETRY = (0.25, 5.0)  # backoff while a sink is down: first, cap
WARN_EVERY = 30.0  # seconds between two warnings of a growing backlog
STREAMS_EVERY = 1.0  # seconds between two listings of the streams (a cluster adds some)


class _Step(enum.Enum):
    """What forwarding one batch of a stream came to."""

    IDLE = "nothing to forward"
    MOVED = "forwarded, or skipped trimmed events, or paused for the sink"
    LOST = "the lease is lost: stop forwarding"


class SinkUnavailable(Exception):
    """The sink cannot take events now; the same batch is offered again later."""


class Sink(Protocol):
    name: str  # names the lease and the cursor: one forwarder per name in a cluster

    async def publish(self, entries: Sequence[StreamEntry]) -> None:
        """Deliver ``entries`` in order and return once the sink confirmed all of them;
        raise ``SinkUnavailable`` if it could not (some may have gone through)."""
        ...

    async def close(self) -> None: ...


@dataclass
class ForwarderStats:
    active: bool = False  # this node holds the lease and forwards
    sink_down: bool = False
    forwarded: int = 0  # events confirmed by the sink through this node
    trimmed_before_forwarding: int = 0
    backlog: int = 0  # events in the stream not yet confirmed (when active)


class Forwarder:
    def __init__(
        self,
        events: EventLog,
        sink: Sink,
        holder: str,
        *,
        lease_ttl: float,
        maxlen: int,
        batch: int = BATCH,
    ) -> None:
        self.events = events
        self.sink = sink
        self.holder = holder
        self.lease_ms = int(lease_ttl * 1000)
        self.maxlen = maxlen
        self.batch = batch
        self.stats = ForwarderStats()
        self._task: asyncio.Task[None] | None = None
        self._warned_at = 0.0
        self._retry = SINK_RETRY[0]  # the next pause while the sink is down
        self._store_down = False
        self._renew_at = 0.0  # when the lease must be renewed, while forwarding

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            if self.stats.active:
                await self.events.release(self.sink.name, self.holder)
        except StoreUnavailable:
            pass  # the lease runs out by itself
        await self.sink.close()

    def health(self) -> dict[str, object]:
        return asdict(self.stats)

    async def _run(self) -> None:
        while True:
            raise_if_cancelled()
            try:
                held = await self.events.hold(self.sink.name, self.holder, self.lease_ms)
                if self._store_down:
                    log.info("event forwarding to %s resumes", self.sink.name)
                    self._store_down = False
                if held:
                    await self._forward()
                else:
                    self.stats.active = False
                    await asyncio.sleep(self.lease_ms / 4000)
            except StoreUnavailable as exc:
                # Once per outage: the node's own outage log covers the rest.
                if not self._store_down:
                    log.warning("event forwarding to %s paused: %s", self.sink.name, exc)
                    self._store_down = True
                self.stats.active = False
                await asyncio.sleep(1.0)
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event forwarder for %s failed; restarting it", self.sink.name)
                self.stats.active = False
                await asyncio.sleep(1.0)

    async def _forward(self) -> None:
        """Forward while holding the lease; returns when it must be renewed or was lost."""
        name = self.sink.name
        if not self.stats.active:
            log.info("forwarding the event stream to %s from this node", name)
            self.stats.active = True
        self._renew_at = time.monotonic() + self.lease_ms / 3000
        streams = await self.events.streams()
        listed_at = time.monotonic()
        cursors: dict[str, Cursor | None] = {}
        backlogs: dict[str, int] = {}
        while time.monotonic() < self._renew_at:
            raise_if_cancelled()
            if time.monotonic() - listed_at > STREAMS_EVERY:
                streams = await self.events.streams()
                listed_at = time.monotonic()
            moved = False
            for stream in streams:
                if stream not in cursors:
                    cursors[stream] = await self.events.cursor(name, stream)
                step = await self._forward_batch(stream, cursors, backlogs)
                if step is _Step.LOST:
                    self.stats.active = False
                    return
                moved = moved or step is _Step.MOVED
            self.stats.backlog = sum(backlogs.values())
            self._warn_of_backlog(max(backlogs.values(), default=0))
            if not moved:
                await asyncio.sleep(IDLE_POLL)

    async def _forward_batch(
        self, stream: str, cursors: dict[str, Cursor | None], backlogs: dict[str, int]
    ) -> _Step:
        """One batch of ``stream`` to the sink, then its cursor committed."""
        name = self.sink.name
        cursor = cursors[stream]
        batch = await self.events.read(stream, cursor, self.batch)
        self._count_trimmed(batch)
        backlogs[stream] = max(0, batch.newest - (cursor.position if cursor is not None else 0))
        if batch.skipped and cursor is not None:
            # Past the trimmed events (counted once): a retry of this batch, or the next
            # read, measures any further trimming from here.
            cursor = cursors[stream] = Cursor(cursor.id, cursor.position + batch.skipped)
        if not batch.entries and not batch.skipped:
            return _Step.IDLE
        if batch.entries:
            try:
                await self.sink.publish(batch.entries)
            except SinkUnavailable as exc:
                if not self.stats.sink_down:
                    log.error("%s; events wait in the stream", exc)
                    self.stats.sink_down = True
                return _Step.MOVED if await self._pause() else _Step.LOST
            if self.stats.sink_down:
                log.warning("%s is back; forwarding the waiting events", name)
                self.stats.sink_down = False
            self._retry = SINK_RETRY[0]
        last = batch.entries[-1] if batch.entries else None
        after = Cursor(last.id, last.position) if last is not None else cursor
        assert after is not None
        if not await self.events.commit(name, self.holder, stream, after):
            log.warning("lost the lease of the %s forwarder; another node forwards", name)
            return _Step.LOST
        self.stats.forwarded += len(batch.entries)
        cursors[stream] = after
        return _Step.MOVED

    async def _pause(self) -> bool:
        """Wait before offering the sink a batch again, renewing the lease meanwhile (the
        pause may outlast a lease period); False if the lease was lost."""
        pause_until = time.monotonic() + self._retry
        self._retry = min(self._retry * 2, SINK_RETRY[1])
        while time.monotonic() < pause_until:
            await asyncio.sleep(max(0.0, min(pause_until, self._renew_at) - time.monotonic()))
            if time.monotonic() >= self._renew_at:
                if not await self.events.hold(self.sink.name, self.holder, self.lease_ms):
                    return False
                self._renew_at = time.monotonic() + self.lease_ms / 3000
        return True

    def _count_trimmed(self, batch: Batch) -> None:
        """Count and shout about events lost to trimming."""
        if batch.skipped:
            self.stats.trimmed_before_forwarding += batch.skipped
            log.error(
                "%d events were trimmed from the stream before they reached %s (the stream "
                "keeps --events-maxlen %d); they are lost to it",
                batch.skipped,
                self.sink.name,
                self.maxlen,
            )

    def _warn_of_backlog(self, deepest: int) -> None:
        """Warn before trimming loses events (each stream keeps ``maxlen``): ``deepest``
        is the largest backlog of one stream."""
        now = time.monotonic()
        if deepest > 0.8 * self.maxlen and now - self._warned_at > WARN_EVERY:
            self._warned_at = now
            log.error(
                "%d events wait for %s, near --events-maxlen %d: older ones will be trimmed "
                "before they are forwarded",
                self.stats.backlog,
                self.sink.name,
                self.maxlen,
            )


class FileSink:
    """Appends each event as one JSON line; confirmed once written and flushed."""

    name = "file"

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)

    async def publish(self, entries: Sequence[StreamEntry]) -> None:
        try:
            self._file.write("".join(entry.event + "\n" for entry in entries))
            self._file.flush()
        except OSError as exc:
            raise SinkUnavailable(f"cannot write events to {self.path}: {exc}") from exc

    async def close(self) -> None:
        self._file.close()
