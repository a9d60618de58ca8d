"""``RedisStore``: the store shared by any number of nodes.

Every step that touches more than one key and must not be seen half-done is a Lua script:
Redis runs a script to completion before any other command, so no node can observe (or
interleave with) a create, a join or an append in progress. Single-key and read-only
steps use plain commands.

Key names come from ``KeySchema`` only. Scripts that discover ids while running (the rooms
of a session being dropped, the node of a session) receive key templates from
``split_template`` and concatenate; they never spell a key name themselves. Such scripts
touch keys they did not declare, so the store needs a single Redis primary (with replicas
or Sentinel if you like), not Redis Cluster.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import redis.asyncio
import redis.exceptions

from storage.base import (
    Appended,
    Dedupe,
    DropEvents,
    Event,
    Fanout,
    Member,
    Room,
    RoomNameTaken,
    RoomSummary,
    StoreUnavailable,
    UserPresence,
)
from storage.keys import KeySchema, split_template

# -- Lua ---------------------------------------------------------------------------------

# Helpers prepended to the scripts that need them (each script is its own Lua chunk).
_LUA_KEY = """
-- A key from a storage.keys.split_template pair: head .. id .. tail.
local function key(head, tail, id) return head .. id .. tail end
"""

_LUA_NOW_MS = """
-- Milliseconds on the Redis server clock: the one clock all nodes share.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

_LUA_LEAVE = """
-- Takes sid out of one room's presence. True if that was its user's last session there.
local function leave(sessions_key, counts_key, users_key, sid)
  local uid = redis.call('HGET', sessions_key, sid)
  if not uid then return false end
  redis.call('HDEL', sessions_key, sid)
  if redis.call('HINCRBY', counts_key, uid, -1) > 0 then return false end
  redis.call('HDEL', counts_key, uid)
  redis.call('HDEL', users_key, uid)
  return true
end
"""

_LUA_EVENT = """
-- Adds an encoded storage.base.Event ('' for none) to the stream, its holes filled from
-- ``values``: XADD in the same script as the change, so no change is seen without its
-- event. MAXLEN ~ trims whole stream nodes, which is cheap.
local function add_event(stream, encoded, values)
  if encoded == '' then return end
  local f, start = {}, 1
  while true do
    local stop = string.find(encoded, '\1', start, true)
    if not stop then f[#f + 1] = string.sub(encoded, start); break end
    f[#f + 1] = string.sub(encoded, start, stop - 1)
    start = stop + 1
  end
  -- f: maxlen, routing key, routing hole, part 0, then (hole, part) pairs
  local out = {f[4]}
  for i = 5, #f, 2 do
    local name = f[i]
    if string.sub(name, 1, 1) == '=' then
      out[#out + 1] = tostring(values[string.sub(name, 2)])
    elseif type(values[name]) == 'number' then
      out[#out + 1] = tostring(values[name])
    else
      out[#out + 1] = cjson.encode(values[name])
    end
    out[#out + 1] = f[i + 1]
  end
  local routing = f[2]
  if f[3] ~= '' then routing = routing .. values[f[3]] end
  redis.call('XADD', stream, 'MAXLEN', '~', f[1], '*', 'key', routing, 'event', table.concat(out))
end
"""

# KEYS: rooms, room_names, room_info, room_owners, room_acl, events.
# ARGV: room_id, name, number of owners n, n (owner id, owner name) pairs, then acl pairs,
# then the event
_CREATE_ROOM = _LUA_EVENT + """
local n = tonumber(ARGV[3])
local existing = redis.call('HGET', KEYS[2], ARGV[2])
if existing then
  -- The same create again (a retry after a lost reply) succeeds instead of failing.
  if existing == ARGV[1] and (n == 0 or redis.call('HEXISTS', KEYS[4], ARGV[4]) == 1) then
    return 'exists'
  end
  return 'taken'
end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'id_in_use' end
local t = redis.call('TIME')
local created = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], 'name', ARGV[2], 'created', created)
for i = 4, 3 + 2 * n, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end
for i = 4 + 2 * n, #ARGV - 1, 2 do redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1]) end
add_event(KEYS[6], ARGV[#ARGV], {})
return 'created'
"""

# KEYS: rooms, room_names, room_info, events.  ARGV: room_id, new name, event
# Returns {'missing'}, {'taken'} or {'renamed', old name}.
_RENAME_ROOM = _LUA_EVENT + """
local old = redis.call('HGET', KEYS[3], 'name')
if not old then return {'missing'} end
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and holder ~= ARGV[1] then return {'taken'} end
redis.call('HDEL', KEYS[2], old)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], 'name', ARGV[2])
if old ~= ARGV[2] then add_event(KEYS[4], ARGV[3], {old_name = old}) end
return {'renamed', old}
"""

# KEYS: rooms, room_names, room_info, room_owners, room_acl, room_users, room_sessions,
# room_counts, log, log_seq, events.  ARGV: room_id, session_rooms template, event.
# Returns 0 or 1.
_REMOVE_ROOM = (
    _LUA_KEY
    + _LUA_EVENT
    + """
local name = redis.call('HGET', KEYS[3], 'name')
if not name then return 0 end
for _, sid in ipairs(redis.call('HKEYS', KEYS[7])) do
  redis.call('SREM', key(ARGV[2], ARGV[3], sid), ARGV[1])
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], name)
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
add_event(KEYS[11], ARGV[4], {})
return 1
"""
)

# KEYS: room_info, room_acl, events.  ARGV: type1, rule1, type2, rule2, ..., event
_SET_ACL = _LUA_EVENT + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
if #ARGV > 1 then redis.call('HSET', KEYS[2], unpack(ARGV, 1, #ARGV - 1)) end
add_event(KEYS[3], ARGV[#ARGV], {})
return 1
"""

# KEYS: session_info, node_sessions(node), session_rooms, user_sessions, user_info, events.
# ARGV: sid, uid, name, node, node_sessions template, room_users template, event
_REGISTER_SESSION = (
    _LUA_KEY
    + _LUA_EVENT
    + """
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[5], 'name', ARGV[3])
local old = redis.call('HGET', KEYS[1], 'node')
if old and old ~= ARGV[4] then
  redis.call('SREM', key(ARGV[5], ARGV[6], old), ARGV[1])
end
redis.call('HSET', KEYS[1], 'uid', ARGV[2], 'name', ARGV[3], 'node', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
-- Logging in again under a new name renames the user where the session is present.
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('HSET', key(ARGV[7], ARGV[8], room), ARGV[2], ARGV[3])
end
add_event(KEYS[6], ARGV[9], {})
"""
)

# KEYS: session_info, session_rooms, room_sessions, room_counts, room_users, room_info,
# events.  ARGV: sid, room_id, event
_JOIN_ROOM = _LUA_EVENT + """
local member = redis.call('HMGET', KEYS[1], 'uid', 'name')
local uid, name = member[1], member[2]
-- A session dropped while its join was in flight must not leave presence behind.
if not uid or redis.call('EXISTS', KEYS[6]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[3], ARGV[1], uid) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('HINCRBY', KEYS[4], uid, 1) > 1 then return 0 end
redis.call('HSET', KEYS[5], uid, name)
add_event(KEYS[7], ARGV[3], {})
return 1
"""

# KEYS: session_rooms, room_sessions, room_counts, room_users, events.
# ARGV: sid, room_id, event
_LEAVE_ROOM = (
    _LUA_LEAVE
    + _LUA_EVENT
    + """
redis.call('SREM', KEYS[1], ARGV[2])
if leave(KEYS[2], KEYS[3], KEYS[4], ARGV[1]) then
  add_event(KEYS[5], ARGV[3], {})
  return 1
end
return 0
"""
)

# KEYS: session_info, session_rooms, events
# ARGV: sid, then templates of room_sessions, room_counts, room_users, node_sessions,
# user_sessions, user_info, then the leave event and the offline event
# Returns {} for an unknown sid, else {uid, name, id of each room the user left...}.
_DROP_SESSION = (
    _LUA_KEY
    + _LUA_LEAVE
    + _LUA_NOW_MS
    + _LUA_EVENT
    + """
local s = redis.call('HMGET', KEYS[1], 'uid', 'name', 'node')
if not s[1] then return {} end
local result = {s[1], s[2]}
local rooms = redis.call('SMEMBERS', KEYS[2])
table.sort(rooms)  -- leave events in room id order, as the memory store adds them
for _, rid in ipairs(rooms) do
  local sessions = key(ARGV[2], ARGV[3], rid)
  local counts = key(ARGV[4], ARGV[5], rid)
  local users = key(ARGV[6], ARGV[7], rid)
  if leave(sessions, counts, users, ARGV[1]) then
    table.insert(result, rid)
    add_event(KEYS[3], ARGV[14], {n = #result - 2, room_id = rid, user_id = s[1], user_name = s[2]})
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
if s[3] then redis.call('SREM', key(ARGV[8], ARGV[9], s[3]), ARGV[1]) end
local user_sessions = key(ARGV[10], ARGV[11], s[1])
redis.call('SREM', user_sessions, ARGV[1])
if redis.call('SCARD', user_sessions) == 0 then
  redis.call('HSET', key(ARGV[12], ARGV[13], s[1]), 'last_seen', now_ms())
  add_event(KEYS[3], ARGV[15], {user_id = s[1], user_name = s[2]})
end
return result
"""
)

# KEYS: nodes.  ARGV: node id, ttl ms
_RENEW_LEASE = (
    _LUA_NOW_MS
    + """
return redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
"""
)

# KEYS: nodes
_EXPIRED_NODES = (
    _LUA_NOW_MS
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms())
"""
)

# KEYS: log, log_seq, events.  ARGV: entry_tail, history_size, event, then (channel, head,
# tail) per fanout.
# Publishing inside the script is the point: Redis runs scripts one at a time, so the
# order of publishes on a channel is the order of seqs, whichever node appended, and the
# order of a log's events in the stream is the order of its seqs too.
_APPEND = _LUA_EVENT + """
local seq = redis.call('INCR', KEYS[2])
local entry = '{"seq":' .. seq .. ARGV[1]
redis.call('ZADD', KEYS[1], seq, entry)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
for i = 4, #ARGV, 3 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1] .. entry .. ARGV[i + 2]) end
add_event(KEYS[3], ARGV[3], {seq = seq})
return seq
"""

# KEYS: log, log_seq, log_dedupe, events.  ARGV: entry_tail, history_size, ttl ms, event,
# then (channel, head, tail) per fanout.  Returns {seq} for a new entry, {seq, first
# entry} for a retry (nothing stored, published or added to the stream).
_APPEND_ONCE = _LUA_EVENT + """
local first = redis.call('GET', KEYS[3])
if first then return {tonumber(string.match(first, '^{"seq":(%d+)')), first} end
local seq = redis.call('INCR', KEYS[2])
local entry = '{"seq":' .. seq .. ARGV[1]
redis.call('ZADD', KEYS[1], seq, entry)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
redis.call('SET', KEYS[3], entry, 'PX', ARGV[3])
for i = 5, #ARGV, 3 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1] .. entry .. ARGV[i + 2]) end
add_event(KEYS[4], ARGV[4], {seq = seq})
return {seq}
"""

# -- errors and decoding -----------------------------------------------------------------

# BusyLoadingError is a ConnectionError already; it is listed because "Redis is loading
# its dataset" is a case worth naming: it passes, so callers may retry. OSError covers a
# socket error that reaches us unwrapped (and, on 3.11+, asyncio.TimeoutError).
_UNAVAILABLE_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OSError,
)

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _unavailable_as_store_error(
    method: Callable[_P, Awaitable[_T]],
) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """Turn redis connection failures into ``StoreUnavailable``, which callers handle."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await method(*args, **kwargs)
        except _UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailable(
                f"Redis unavailable during {method.__name__}: {type(exc).__name__}: {exc}"
            ) from exc

    return wrapper


def _text(value: object) -> str:
    """A reply as str, whether or not the client decodes responses."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string reply from Redis, got {type(value).__name__}")


def _text_map(reply: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in reply.items()}


# -- the store ---------------------------------------------------------------------------


class RedisStore:
    """A ``Store`` on one Redis primary, shared by every node of a deployment.

    Create the client with ``decode_responses=True``: replies are then str already
    (bytes replies are decoded as UTF-8 too, at a small cost). ``close`` closes the
    client, so close whatever shares it (a pub/sub broker) first. Connection failures and
    timeouts surface as ``StoreUnavailable``; how long a call retries before that is the
    client's ``retry`` policy (redis-py's default retries 10 times with backoff).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        keys: KeySchema,
        history_size: int,
        *,
        events_maxlen: int = 0,
    ) -> None:
        if history_size < 1:
            raise ValueError(f"history_size must be at least 1, got {history_size}")
        self._redis = client
        self._keys = keys
        self._history_size = history_size
        # The event stream keeps about this many events; 0: no events are added.
        self._events_maxlen = events_maxlen
        # Lua scripts are registered once; the client runs them with EVALSHA and loads
        # them again by itself after a Redis restart (NOSCRIPT).
        self._create_room = client.register_script(_CREATE_ROOM)
        self._rename_room = client.register_script(_RENAME_ROOM)
        self._remove_room = client.register_script(_REMOVE_ROOM)
        self._append_once = client.register_script(_APPEND_ONCE)
        self._set_acl = client.register_script(_SET_ACL)
        self._register_session = client.register_script(_REGISTER_SESSION)
        self._join_room = client.register_script(_JOIN_ROOM)
        self._leave_room = client.register_script(_LEAVE_ROOM)
        self._drop_session = client.register_script(_DROP_SESSION)
        self._renew_lease = client.register_script(_RENEW_LEASE)
        self._expired_nodes = client.register_script(_EXPIRED_NODES)
        self._append = client.register_script(_APPEND)
        self._node_sessions_template = split_template(keys.node_sessions)
        self._room_users_template = split_template(keys.room_users)
        self._drop_templates = (
            *split_template(keys.room_sessions),
            *split_template(keys.room_counts),
            *split_template(keys.room_users),
            *self._node_sessions_template,
            *split_template(keys.user_sessions),
            *split_template(keys.user_info),
        )
        self._session_rooms_template = split_template(keys.session_rooms)

    def _event(self, event: Event | None) -> str:
        """The script argument for ``event``: '' adds none."""
        if event is None or self._events_maxlen <= 0:
            return ""
        return event.encode(self._events_maxlen)

    # -- rooms -------------------------------------------------------------------------

    @_unavailable_as_store_error
    async def create_room(
        self,
        room_id: str,
        name: str,
        owners: Sequence[Member],
        acl: Mapping[str, str] | None = None,
        *,
        event: Event | None = None,
    ) -> Room:
        k = self._keys
        owner_pairs = [part for o in owners for part in (o.id, o.name)]
        acl_pairs = [part for item in (acl or {}).items() for part in item]
        outcome = _text(
            await self._create_room(
                keys=[
                    k.rooms(),
                    k.room_names(),
                    k.room_info(room_id),
                    k.room_owners(room_id),
                    k.room_acl(room_id),
                    k.events(),
                ],
                args=[room_id, name, len(owners), *owner_pairs, *acl_pairs, self._event(event)],
            )
        )
        if outcome == "taken":
            raise RoomNameTaken(name)
        if outcome == "id_in_use":
            raise ValueError(f"room id {room_id!r} is in use under another name")
        if outcome == "exists":
            room = await self.get_room(room_id)
            if room is not None:
                return room
        return Room(
            id=room_id, name=name, owners={o.id: o.name for o in owners}, acl=dict(acl or {})
        )

    @_unavailable_as_store_error
    async def get_room(self, room_id: str) -> Room | None:
        k = self._keys
        pipe = self._redis.pipeline(transaction=True)  # one consistent snapshot
        pipe.hgetall(k.room_info(room_id))
        pipe.hgetall(k.room_owners(room_id))
        pipe.hgetall(k.room_acl(room_id))
        info, owners, acl = await pipe.execute()
        if not info:
            return None
        return Room(
            id=room_id,
            name=_text_map(info)["name"],
            owners=_text_map(owners),
            acl=_text_map(acl),
        )

    @_unavailable_as_store_error
    async def list_rooms(self) -> list[RoomSummary]:
        names = _text_map(await self._redis.hgetall(self._keys.rooms()))
        # Counts are read after the index, unsynchronised: a summary, not a snapshot.
        pipe = self._redis.pipeline(transaction=False)
        for room_id in names:
            pipe.hlen(self._keys.room_users(room_id))
        counts = await pipe.execute()
        summaries = [
            RoomSummary(id=room_id, name=name, members=int(count))
            for (room_id, name), count in zip(names.items(), counts, strict=True)
        ]
        return sorted(summaries, key=lambda s: (s.name, s.id))

    @_unavailable_as_store_error
    async def set_acl(
        self, room_id: str, acl: Mapping[str, str], *, event: Event | None = None
    ) -> None:
        pairs = [part for item in acl.items() for part in item]
        k = self._keys
        await self._set_acl(
            keys=[k.room_info(room_id), k.room_acl(room_id), k.events()],
            args=[*pairs, self._event(event)],
        )

    @_unavailable_as_store_error
    async def rename_room(
        self, room_id: str, name: str, *, event: Event | None = None
    ) -> str | None:
        k = self._keys
        reply = await self._rename_room(
            keys=[k.rooms(), k.room_names(), k.room_info(room_id), k.events()],
            args=[room_id, name, self._event(event)],
        )
        outcome = _text(reply[0])
        if outcome == "taken":
            raise RoomNameTaken(name)
        return _text(reply[1]) if outcome == "renamed" else None

    @_unavailable_as_store_error
    async def remove_room(
        self, room_id: str, log: str, *, event: Event | None = None
    ) -> Room | None:
        room = await self.get_room(room_id)
        if room is None:
            return None
        k = self._keys
        removed = await self._remove_room(
            keys=[
                k.rooms(),
                k.room_names(),
                k.room_info(room_id),
                k.room_owners(room_id),
                k.room_acl(room_id),
                k.room_users(room_id),
                k.room_sessions(room_id),
                k.room_counts(room_id),
                k.log(log),
                k.log_seq(log),
                k.events(),
            ],
            args=[room_id, *self._session_rooms_template, self._event(event)],
        )
        return room if removed else None

    # -- presence ----------------------------------------------------------------------

    @_unavailable_as_store_error
    async def register_session(
        self, sid: str, member: Member, node_id: str, *, event: Event | None = None
    ) -> None:
        await self._register_session(
            keys=[
                self._keys.session_info(sid),
                self._keys.node_sessions(node_id),
                self._keys.session_rooms(sid),
                self._keys.user_sessions(member.id),
                self._keys.user_info(member.id),
                self._keys.events(),
            ],
            args=[
                sid,
                member.id,
                member.name,
                node_id,
                *self._node_sessions_template,
                *self._room_users_template,
                self._event(event),
            ],
        )

    @_unavailable_as_store_error
    async def join_room(self, room_id: str, sid: str, *, event: Event | None = None) -> bool:
        k = self._keys
        joined = await self._join_room(
            keys=[
                k.session_info(sid),
                k.session_rooms(sid),
                k.room_sessions(room_id),
                k.room_counts(room_id),
                k.room_users(room_id),
                k.room_info(room_id),
                k.events(),
            ],
            args=[sid, room_id, self._event(event)],
        )
        return bool(joined)

    @_unavailable_as_store_error
    async def leave_room(self, room_id: str, sid: str, *, event: Event | None = None) -> bool:
        k = self._keys
        left = await self._leave_room(
            keys=[
                k.session_rooms(sid),
                k.room_sessions(room_id),
                k.room_counts(room_id),
                k.room_users(room_id),
                k.events(),
            ],
            args=[sid, room_id, self._event(event)],
        )
        return bool(left)

    @_unavailable_as_store_error
    async def drop_session(
        self, sid: str, *, events: DropEvents | None = None
    ) -> list[tuple[str, Member]]:
        k = self._keys
        leave, offline = (events.leave, events.offline) if events is not None else (None, None)
        reply = await self._drop_session(
            keys=[k.session_info(sid), k.session_rooms(sid), k.events()],
            args=[sid, *self._drop_templates, self._event(leave), self._event(offline)],
        )
        if not reply:
            return []
        uid, name, *room_ids = (_text(part) for part in reply)
        member = Member(id=uid, name=name)
        return [(room_id, member) for room_id in sorted(room_ids)]

    @_unavailable_as_store_error
    async def room_members(self, room_id: str) -> list[Member]:
        users = _text_map(await self._redis.hgetall(self._keys.room_users(room_id)))
        return [Member(id=uid, name=users[uid]) for uid in sorted(users)]

    @_unavailable_as_store_error
    async def node_sessions(self, node_id: str) -> list[str]:
        sids = await self._redis.smembers(self._keys.node_sessions(node_id))
        return sorted(_text(sid) for sid in sids)

    @_unavailable_as_store_error
    async def user_presence(self, user_id: str) -> UserPresence | None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(self._keys.user_info(user_id))
        pipe.smembers(self._keys.user_sessions(user_id))
        info, sids = await pipe.execute()
        if not info:
            return None
        user = _text_map(info)
        session_keys = [self._keys.session_rooms(_text(sid)) for sid in sids]
        rooms = await self._redis.sunion(session_keys) if session_keys else []
        last_seen = user.get("last_seen")
        return UserPresence(
            id=user_id,
            name=user["name"],
            sessions=len(sids),
            rooms=sorted(_text(room) for room in rooms),
            last_seen_ms=int(last_seen) if last_seen else None,
        )

    # -- node leases -------------------------------------------------------------------
    # Expiries use the Redis server clock (TIME inside the scripts), so nodes with
    # skewed clocks still agree on who has expired.

    @_unavailable_as_store_error
    async def renew_lease(self, node_id: str, ttl_ms: int) -> bool:
        added = await self._renew_lease(keys=[self._keys.nodes()], args=[node_id, ttl_ms])
        return int(added) == 0

    @_unavailable_as_store_error
    async def expired_nodes(self) -> list[str]:
        reply = await self._expired_nodes(keys=[self._keys.nodes()])
        return sorted(_text(node_id) for node_id in reply)

    @_unavailable_as_store_error
    async def claim_node_cleanup(self, node_id: str, ttl_ms: int) -> bool:
        # SET NX is atomic on its own; PX frees the claim if the claimer dies mid-purge.
        claimed = await self._redis.set(self._keys.node_cleanup(node_id), "1", nx=True, px=ttl_ms)
        return bool(claimed)

    @_unavailable_as_store_error
    async def forget_node(self, node_id: str) -> None:
        # The cleanup claim is left to expire: it keeps a slower peer that also saw the
        # node expire from purging it a second time.
        await self._redis.zrem(self._keys.nodes(), node_id)

    # -- message logs ------------------------------------------------------------------

    @_unavailable_as_store_error
    async def append(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout] = (),
        *,
        event: Event | None = None,
    ) -> int:
        if not entry_tail.startswith((",", "}")):
            raise ValueError(f"entry_tail must start with ',' or '}}': {entry_tail[:20]!r}")
        publish = [
            part for f in fanouts for part in (self._keys.channel(f.channel), f.head, f.tail)
        ]
        seq = await self._append(
            keys=[self._keys.log(log), self._keys.log_seq(log), self._keys.events()],
            args=[entry_tail, self._history_size, self._event(event), *publish],
        )
        return int(seq)

    @_unavailable_as_store_error
    async def append_once(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout],
        dedupe: Dedupe,
        *,
        event: Event | None = None,
    ) -> Appended:
        if not entry_tail.startswith((",", "}")):
            raise ValueError(f"entry_tail must start with ',' or '}}': {entry_tail[:20]!r}")
        k = self._keys
        digest = hashlib.sha256(dedupe.key.encode()).hexdigest()
        publish = [part for f in fanouts for part in (k.channel(f.channel), f.head, f.tail)]
        reply = await self._append_once(
            keys=[k.log(log), k.log_seq(log), k.log_dedupe(log, digest), k.events()],
            args=[entry_tail, self._history_size, dedupe.ttl_ms, self._event(event), *publish],
        )
        if len(reply) > 1:
            return Appended(int(reply[0]), original=_text(reply[1]))
        return Appended(int(reply[0]))

    @_unavailable_as_store_error
    async def history(
        self, log: str, *, before: int | None, since: int | None, limit: int
    ) -> list[str]:
        if limit <= 0:
            return []  # LIMIT 0 0 would be empty too, but a negative count means "all"
        key = self._keys.log(log)
        upper = "+inf" if before is None else f"({before}"
        if since is not None:
            oldest = await self._redis.zrangebyscore(key, f"({since}", upper, start=0, num=limit)
            return [_text(entry) for entry in oldest]
        newest = await self._redis.zrevrangebyscore(key, upper, "-inf", start=0, num=limit)
        return [_text(entry) for entry in reversed(newest)]

    @_unavailable_as_store_error
    async def add_event(self, event: Event) -> None:
        if self._events_maxlen <= 0:
            return
        await self._redis.xadd(
            self._keys.events(),
            {"key": event.key({}), "event": event.text({})},
            maxlen=self._events_maxlen,
            approximate=True,
        )

    async def close(self) -> None:
        await self._redis.aclose()
