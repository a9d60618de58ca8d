"""``RedisEventLog``: the read side of the Redis stream ``<prefix>events`` for forwarders.

The stream is written by ``RedisStore``'s scripts (XADD in the same script as each
change). A forwarder per sink reads it with XRANGE after its own cursor instead of through
a consumer group: the cursor is committed only after the sink confirmed, fenced by the
sink's lease in one script, so a forwarder that lost its lease (paused, cut off) can never
move the cursor of the one that replaced it. Consumers of your own read the same stream
with consumer groups (README, "Event stream").

Positions come from the stream's ``entries-added`` counter (Redis 7): the first kept entry
is number ``entries-added - length + 1``. That is how a forwarder tells how many events
after its cursor were trimmed (``MAXLEN``) before it could forward them.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio

from storage.event_log import Batch, Cursor, StreamEntry
from storage.keys import KeySchema
from storage.redis_store import _text, _unavailable_as_store_error

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

# KEYS: lease, cursor.  ARGV: holder, id, position.  1 if written.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'id', ARGV[2], 'position', ARGV[3])
return 1
"""


def _fields(raw: Any) -> dict[str, str]:
    items = [_text(part) for part in raw]
    return dict(zip(items[::2], items[1::2], strict=True))


class RedisEventLog:
    """An ``EventLog`` on the stream that ``RedisStore`` writes (same client and keys)."""

    def __init__(self, client: redis.asyncio.Redis, keys: KeySchema) -> None:
        self._redis = client
        self._keys = keys
        self._read = client.register_script(_READ)
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)
        self._commit = client.register_script(_COMMIT)

    @_unavailable_as_store_error
    async def read(self, after: Cursor | None, count: int) -> Batch:
        reply = await self._read(
            keys=[self._keys.events()], args=["" if after is None else after.id, count]
        )
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
    async def cursor(self, name: str) -> Cursor | None:
        stored = await self._redis.hgetall(self._keys.events_cursor(name))
        if not stored:
            return None
        fields = {_text(k): _text(v) for k, v in stored.items()}
        return Cursor(fields["id"], int(fields["position"]))

    @_unavailable_as_store_error
    async def commit(self, name: str, holder: str, cursor: Cursor) -> bool:
        written = await self._commit(
            keys=[self._keys.events_lease(name), self._keys.events_cursor(name)],
            args=[holder, cursor.id, cursor.position],
        )
        return bool(written)
