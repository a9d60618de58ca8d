"""``RedisEventLog``: the read side of the Redis event streams for forwarders.

The streams are written by ``RedisStore``'s scripts (XADD in the same script as each
change): one stream ``<prefix>{events}:stream`` on a single Redis; on a Redis Cluster one
per hash slot that has seen a change (``KeySchema.events_shard``), found with SCAN on
every master. A forwarder per sink reads each with XRANGE after its own cursor instead
of through a consumer group: the cursor is committed only after the sink confirmed, fenced by the
sink's lease in one script, so a forwarder that lost its lease (paused, cut off) can never
move the cursor of the one that replaced it. Consumers of your own read the same stream
with consumer groups (README, "Event stream").

Positions come from the stream's ``entries-added`` counter (Redis 7): the first kept entry
is number ``entries-added - length + 1``. That is how a forwarder tells how many events
after its cursor were trimmed (``MAXLEN``) before it could forward them.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from storage.event_log import Batch, Cursor, StreamEntry
from storage.keys import KeySchema
from storage.redis_store import AnyRedis, _text, _unavailable_as_store_error

# KEYS: events.  ARGV: after id ('' = from the oldest), count
# Returns {entries-added, length, id of the first kept entry or '', entries}: one snapshot.
_READ = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, '', {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local added, length, first = 0, 0, ''
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then added = info[i + 1]
  elseif info[i] == 'length' then length = info[i + 1]
  elseif info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1] end
end
local start = '-'
if ARGV[1] ~= '' then start = '(' .. ARGV[1] end
return {added, length, first, redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[2])}
"""

# KEYS: lease.  ARGV: holder, ttl ms.  1 if the holder has the lease now.
_HOLD = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lease.  ARGV: holder
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lease, cursor.  ARGV: holder, stream, id, position.  1 if written.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'id:' .. ARGV[2], ARGV[3], 'position:' .. ARGV[2], ARGV[4])
return 1
"""


def _fields(raw: Any) -> dict[str, str]:
    items = [_text(part) for part in raw]
    return dict(zip(items[::2], items[1::2], strict=True))


class RedisEventLog:
    """An ``EventLog`` on the stream that ``RedisStore`` writes (same client and keys)."""

    def __init__(self, client: AnyRedis, keys: KeySchema) -> None:
        self._redis = client
        self._keys = keys
        self._cluster = isinstance(client, RedisCluster)
        self._read = client.register_script(_READ)
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)
        self._commit = client.register_script(_COMMIT)

    @_unavailable_as_store_error
    async def streams(self) -> list[str]:
        if not self._cluster:
            return [self._keys.events()]
        pattern = self._keys.events_shard("*")
        found = {_text(key) async for key in self._redis.scan_iter(match=pattern, _type="stream")}
        return sorted(found)

    @_unavailable_as_store_error
    async def read(self, stream: str, after: Cursor | None, count: int) -> Batch:
        reply = await self._read(keys=[stream], args=["" if after is None else after.id, count])
        added, length, first = int(reply[0]), int(reply[1]), _text(reply[2])
        raw_entries = reply[3]
        first_position = added - length + 1
        skipped = 0
        if raw_entries and (after is None or _text(raw_entries[0][0]) == first):
            # The read starts at the oldest kept entry: whatever lay between the cursor
            # and it was trimmed.
            position = first_position
            if after is not None:
                skipped = max(0, first_position - after.position - 1)
        elif raw_entries:
            assert after is not None
            position = after.position + 1
        else:
            position = 0
            if after is not None:
                skipped = max(0, added - after.position)
        entries = []
        for offset, (entry_id, raw_fields) in enumerate(raw_entries):
            fields = _fields(raw_fields)
            entries.append(
                StreamEntry(_text(entry_id), position + offset, fields["key"], fields["event"])
            )
        return Batch(entries, skipped, added)

    @_unavailable_as_store_error
    async def hold(self, name: str, holder: str, ttl_ms: int) -> bool:
        held = await self._hold(keys=[self._keys.events_lease(name)], args=[holder, ttl_ms])
        return bool(held)

    @_unavailable_as_store_error
    async def release(self, name: str, holder: str) -> None:
        await self._release(keys=[self._keys.events_lease(name)], args=[holder])

    @_unavailable_as_store_error
    async def cursor(self, name: str, stream: str) -> Cursor | None:
        found = await self._redis.hmget(
            self._keys.events_cursor(name), ["id:" + stream, "position:" + stream]
        )
        if found[0] is None or found[1] is None:
            return None
        return Cursor(_text(found[0]), int(found[1]))

    @_unavailable_as_store_error
    async def commit(self, name: str, holder: str, stream: str, cursor: Cursor) -> bool:
        written = await self._commit(
            keys=[self._keys.events_lease(name), self._keys.events_cursor(name)],
            args=[holder, stream, cursor.id, cursor.position],
        )
        return bool(written)
