"""``RedisStore``: the store shared by any number of nodes.

Every step that touches more than one key and must not be seen half-done is a Lua script:
Redis runs a script to completion before any other command, so no node can observe (or
interleave with) a create, a join or an append in progress. Single-key and read-only
steps use plain commands.

Key names come from ``KeySchema`` only, and every script declares all the keys it
touches, all in one hash slot: the store runs on one Redis primary (with replicas or
Sentinel if you like) or on a Redis Cluster, with the same scripts and keys.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from storage.base import (
    ROLES,
    SANCTIONS,
    Appended,
    Dedupe,
    DropEvents,
    Event,
    Fanout,
    LogHead,
    Member,
    Position,
    Room,
    RoomNameTaken,
    RoomSummary,
    Sanction,
    SendCheck,
    StoreUnavailable,
    UserPresence,
    UserStatus,
)
from storage.keys import KeySchema, hash_tag

# -- Lua ---------------------------------------------------------------------------------
# Every script declares all its keys in KEYS, and all of them carry one hash tag, so each
# runs on one Redis Cluster slot (storage/keys.py). An operation that spans owners (a
# join touches the session and the room) is a sequence of such scripts, ordered so that a
# crash between two steps leaves nothing a retry cannot repair; each method says how.

_LUA_NOW_MS = """
-- Milliseconds on the Redis server clock: the one clock all nodes share.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

_LUA_EVENT = """
-- Adds an encoded storage.base.Event ('' for none) to the stream, its holes filled from
-- ``values``: XADD in the same script as the change, so no change is seen without its
-- event. The stream key is passed last in KEYS only when events are on (single Redis).
-- MAXLEN ~ trims whole stream nodes, which is cheap.
local function add_event(stream, encoded, values)
  if encoded == '' then return end
  local f, start = {}, 1
  while true do
    local stop = string.find(encoded, '\\1', start, true)
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

# KEYS: room_info, room_owners, room_acl.
# ARGV: name, number of owners n, n (owner id, owner name) pairs, then acl pairs
# The ACL is written with the room: nobody can join it before its ACL is in place.
_CREATE_ROOM_INFO = """
local n = tonumber(ARGV[2])
local name = redis.call('HGET', KEYS[1], 'name')
if name then
  -- The same create again (a retry after a lost reply) goes on to claim the name.
  if name ~= ARGV[1] then return 'id_in_use' end
  if n == 0 or redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return 'exists' end
  return 'taken'  -- this very room, created by someone else
end
local t = redis.call('TIME')
local created = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'created', created)
for i = 3, 2 + 2 * n, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for i = 3 + 2 * n, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
return 'created'
"""

# KEYS: rooms, room_names, room_renames.  ARGV: room_id, new name
# Returns {'taken'} or {'renamed', old name or '', rename number}.
_RENAME_IN_INDEX = """
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and holder ~= ARGV[1] then return {'taken'} end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and old ~= ARGV[2] and redis.call('HGET', KEYS[2], old) == ARGV[1] then
  redis.call('HDEL', KEYS[2], old)
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {'renamed', old or '', redis.call('HINCRBY', KEYS[3], ARGV[1], 1)}
"""

# KEYS: room_info[, events].  ARGV: new name, rename number, event (hole old_name)
# Of concurrent renames the last one through the index wins here too.
_RENAME_ROOM_INFO = (
    _LUA_EVENT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (tonumber(redis.call('HGET', KEYS[1], 'renamed')) or 0) >= tonumber(ARGV[2]) then
  return 0
end
local old = redis.call('HGET', KEYS[1], 'name')
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'renamed', ARGV[2])
if old ~= ARGV[1] then add_event(KEYS[#KEYS], ARGV[3], {old_name = old}) end
return 1
"""
)

# KEYS: room_info, room_owners, room_acl, room_users, room_sessions, room_counts, log,
# log_seq, log_epoch (the room's log shares its slot)[, events].  ARGV: room key count,
# event.  Returns the ids of the sessions that were in the room, or false for an unknown
# room.
_REMOVE_ROOM = (
    _LUA_EVENT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local sids = redis.call('HKEYS', KEYS[5])
redis.call('DEL', unpack(KEYS, 1, tonumber(ARGV[1])))
add_event(KEYS[#KEYS], ARGV[2], {})
return sids
"""
)

# KEYS: rooms, room_names, room_renames.  ARGV: room_id
_UNLIST_ROOM = """
local name = redis.call('HGET', KEYS[1], ARGV[1])
if name and redis.call('HGET', KEYS[2], name) == ARGV[1] then redis.call('HDEL', KEYS[2], name) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
"""

# KEYS: rooms, room_names[, events].  ARGV: room_id, name, event
# The room exists once its name is claimed (it is listed): its event is added then, once.
_CLAIM_ROOM_NAME = (
    _LUA_EVENT
    + """
local existing = redis.call('HGET', KEYS[2], ARGV[2])
if existing and existing ~= ARGV[1] then return 'taken' end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if not existing then add_event(KEYS[#KEYS], ARGV[3], {}) end
return 'claimed'
"""
)

# KEYS: room_info, room_owners, room_acl, room_moderators, room_rules.  Returns five
# flat field/value lists.
_GET_ROOM = """
local found = {}
for i = 1, #KEYS do found[i] = redis.call('HGETALL', KEYS[i]) end
return found
"""

# KEYS: room_info, room_owners, room_moderators.  ARGV: uid, name, role ('' for none)
_SET_ROLE = (
    _LUA_EVENT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if ARGV[3] == 'owner' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
if ARGV[3] == 'moderator' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[2]) end
add_event(KEYS[#KEYS], ARGV[4], {})
return 1
"""
)

# KEYS: room_info, a sanctions hash of the room[, events].  ARGV: uid, sanction JSON, event
_IMPOSE = (
    _LUA_EVENT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
add_event(KEYS[#KEYS], ARGV[3], {})
return 1
"""
)

# KEYS: a hash[, events].  ARGV: field, value, event.  HSET with its event.
_HSET_WITH_EVENT = (
    _LUA_EVENT
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
add_event(KEYS[#KEYS], ARGV[3], {})
"""
)

# KEYS: a hash[, events].  ARGV: field, event.  HDEL, with its event if it removed one.
_HDEL_WITH_EVENT = (
    _LUA_EVENT
    + """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
if removed == 1 then add_event(KEYS[#KEYS], ARGV[2], {}) end
return removed
"""
)

# KEYS: room_rules, room_mutes.  ARGV: uid.  Returns {send rule or false, mute or false}.
_SEND_CHECK = """
return {redis.call('HGET', KEYS[1], 'send'), redis.call('HGET', KEYS[2], ARGV[1])}
"""

# KEYS: room_sessions, room_counts, room_users[, events].  ARGV: uid, event
# Takes every session of the user out of the room's presence; returns their sids.
_REMOVE_USER_FROM_ROOM = (
    _LUA_EVENT
    + """
local removed = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(removed, all[i])
  end
end
if #removed > 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  add_event(KEYS[#KEYS], ARGV[2], {})
end
return removed
"""
)

# KEYS: room_info, room_acl[, events].  ARGV: type1, rule1, type2, rule2, ..., event
_SET_ACL = (
    _LUA_EVENT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
if #ARGV > 1 then redis.call('HSET', KEYS[2], unpack(ARGV, 1, #ARGV - 1)) end
add_event(KEYS[#KEYS], ARGV[#ARGV], {})
return 1
"""
)

# KEYS: session_info, session_rooms[, events].  ARGV: uid, name, node, event
# Returns {previous node or '', room ids of the session...}.
_REGISTER_SESSION = (
    _LUA_EVENT
    + """
local result = {redis.call('HGET', KEYS[1], 'node') or ''}
redis.call('HSET', KEYS[1], 'uid', ARGV[1], 'name', ARGV[2], 'node', ARGV[3])
add_event(KEYS[#KEYS], ARGV[4], {})
for _, room in ipairs(redis.call('SMEMBERS', KEYS[2])) do table.insert(result, room) end
return result
"""
)

# KEYS: room_sessions, room_users.  ARGV: sid, uid, name
# Logging in again under a new name renames the user where the session is present.
_RENAME_IN_ROOM = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
"""

# KEYS: session_info, session_rooms.  ARGV: room_id
# Returns {uid, name} of a registered session that is not being dropped, else nil.
_JOIN_SESSION = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'name', 'dropping')
if not s[1] or s[3] then return nil end
redis.call('SADD', KEYS[2], ARGV[1])
return {s[1], s[2]}
"""

# KEYS: session_info, session_rooms.  ARGV: room_id
# 1 if the session is registered, not being dropped, and still has the room in its set.
_STILL_JOINING = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'dropping')
if not s[1] or s[2] then return 0 end
return redis.call('SISMEMBER', KEYS[2], ARGV[1])
"""

# KEYS: room_info, room_sessions, room_counts, room_users[, events].
# ARGV: sid, uid, name, event
# Returns -1 for an unknown room, 1 if the user entered the room, 0 otherwise.
_JOIN_ROOM = (
    _LUA_EVENT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[3], ARGV[2], 1) > 1 then return 0 end
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
add_event(KEYS[#KEYS], ARGV[4], {})
return 1
"""
)

# KEYS: room_sessions, room_counts, room_users[, events].  ARGV: sid, event ('' or none)
# Takes sid out of one room's presence: 1 if that was its user's last session there.
_LEAVE_ROOM = (
    _LUA_EVENT
    + """
local uid = redis.call('HGET', KEYS[1], ARGV[1])
if not uid then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[2], uid, -1) > 0 then return 0 end
redis.call('HDEL', KEYS[2], uid)
redis.call('HDEL', KEYS[3], uid)
if ARGV[2] then add_event(KEYS[#KEYS], ARGV[2], {}) end
return 1
"""
)

# KEYS: session_info, session_rooms
# Marks the session as being dropped (joins in flight then back out) and returns
# {uid, name, node or '', room ids...}, or {} for an unknown sid.
_DROP_SESSION_BEGIN = """
local s = redis.call('HMGET', KEYS[1], 'uid', 'name', 'node')
if not s[1] then return {} end
redis.call('HSET', KEYS[1], 'dropping', '1')
local result = {s[1], s[2], s[3] or ''}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[2])) do table.insert(result, room) end
return result
"""

# KEYS: user_sessions, user_info.  ARGV: sid, name
_USER_SESSION_ADDED = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'name', ARGV[2])
"""

# KEYS: user_sessions, user_info[, events].  ARGV: sid, event ('' or none)
# The end of a user's last session is when they were last seen (and went offline).
_USER_SESSION_ENDED = (
    _LUA_NOW_MS
    + _LUA_EVENT
    + """
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[2], 'last_seen', now_ms())
  if ARGV[2] then add_event(KEYS[#KEYS], ARGV[2], {}) end
end
"""
)

# KEYS: user_info, user_sessions.  Returns {flat HGETALL of the info, session ids}.
_USER_PRESENCE = """
return {redis.call('HGETALL', KEYS[1]), redis.call('SMEMBERS', KEYS[2])}
"""

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

# KEYS: nodes
_LIVE_NODES = (
    _LUA_NOW_MS
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now_ms(), '+inf')
"""
)

_LUA_EPOCH = """
-- The log's epoch: a new one (the Redis clock in microseconds) when the log starts at seq
-- 1, or when it has none (written before epochs existed). Never reused by one log: a log
-- can only start again after its keys are gone, and the clock has moved on by then.
local function epoch_of(epoch_key, seq)
  local epoch = redis.call('GET', epoch_key)
  if seq == 1 or not epoch then
    local t = redis.call('TIME')
    epoch = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', epoch_key, epoch)
  end
  return epoch
end
"""

# KEYS: log, log_seq, log_epoch[, events].  ARGV: entry_tail, history_size, publish
# command (PUBLISH or SPUBLISH), then (channel, head, tail) per fanout, then the event
# (holes seq, epoch).  Returns {seq, epoch}.
# Publishing inside the script is the point: Redis runs scripts one at a time, so the
# order of publishes on a channel is the order of seqs, whichever node appended. With
# SPUBLISH the channel must be in the log's slot: a room's channel is (same hash tag).
_APPEND = (
    _LUA_EVENT
    + _LUA_EPOCH
    + """
local seq = redis.call('INCR', KEYS[2])
local epoch = epoch_of(KEYS[3], seq)
local entry = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '"' .. ARGV[1]
redis.call('ZADD', KEYS[1], seq, entry)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
for i = 4, #ARGV - 1, 3 do redis.call(ARGV[3], ARGV[i], ARGV[i + 1] .. entry .. ARGV[i + 2]) end
add_event(KEYS[#KEYS], ARGV[#ARGV], {seq = seq, epoch = epoch})
return {seq, epoch}
"""
)

# KEYS: log, log_seq, log_dedupe, log_epoch[, events].  ARGV: entry_tail, history_size,
# ttl ms, publish command, then (channel, head, tail) per fanout, then the event (holes
# seq, epoch).  Returns {seq, epoch} for a new entry, {seq, epoch, first entry} for a
# retry (nothing stored, published or added to the stream).
_APPEND_ONCE = (
    _LUA_EVENT
    + _LUA_EPOCH
    + """
local first = redis.call('GET', KEYS[3])
if first then
  local seq, epoch = string.match(first, '^{"seq":(%d+),"epoch":"([^"]*)"')
  return {tonumber(seq), epoch or '', first}
end
local seq = redis.call('INCR', KEYS[2])
local epoch = epoch_of(KEYS[4], seq)
local entry = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '"' .. ARGV[1]
redis.call('ZADD', KEYS[1], seq, entry)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
redis.call('SET', KEYS[3], entry, 'PX', ARGV[3])
for i = 5, #ARGV - 1, 3 do redis.call(ARGV[4], ARGV[i], ARGV[i + 1] .. entry .. ARGV[i + 2]) end
add_event(KEYS[#KEYS], ARGV[#ARGV], {seq = seq, epoch = epoch})
return {seq, epoch}
"""
)

# KEYS: a user's read or received hash.  ARGV: log, seq, epoch.
# Returns 1 if the position moved forward (or into a new epoch), 0 otherwise.
_MOVE_POSITION = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local seq, epoch = string.match(old, '^(%d+):(.*)$')
  if epoch == ARGV[3] and tonumber(seq) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
return 1
"""

# KEYS: log, log_seq, log_epoch[, events].  ARGV: seq, old entry, new entry, entry_tail,
# history_size, publish command, then (channel, head, tail) per fanout, then the event
# (holes seq, epoch).  Returns {the appended seq, its epoch}, or {0} if the entry at seq
# is not the old entry any more.
_REVISE = (
    _LUA_EVENT
    + _LUA_EPOCH
    + """
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if #found ~= 1 or found[1] ~= ARGV[2] then return {0} end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
local seq = redis.call('INCR', KEYS[2])
local epoch = epoch_of(KEYS[3], seq)
local entry = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '"' .. ARGV[4]
redis.call('ZADD', KEYS[1], seq, entry)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[5]) + 1))
for i = 7, #ARGV - 1, 3 do redis.call(ARGV[6], ARGV[i], ARGV[i + 1] .. entry .. ARGV[i + 2]) end
add_event(KEYS[#KEYS], ARGV[#ARGV], {seq = seq, epoch = epoch})
return {seq, epoch}
"""
)

# -- errors and decoding -----------------------------------------------------------------

# BusyLoadingError is a ConnectionError already; it is listed because "Redis is loading
# its dataset" is a case worth naming: it passes, so callers may retry. OSError covers a
# socket error that reaches us unwrapped (and, on 3.11+, asyncio.TimeoutError). The
# cluster errors are a failover or resharding in progress (no master for a slot yet, a
# slot not in the client's map, the client's own retries exhausted): they pass too.
_UNAVAILABLE_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterException,
    OSError,
)

_P = ParamSpec("_P")
_T = TypeVar("_T")

AnyRedis = redis.asyncio.Redis | RedisCluster


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


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A Lua HGETALL reply (field, value, field, value, ...) as a dict."""
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _sanction_json(sanction: Sanction) -> str:
    return json.dumps(
        {
            "name": sanction.user.name,
            "reason": sanction.reason,
            "by": sanction.by,
            "expires": sanction.expires_ms,
        }
    )


def _sanction_from_json(user_id: str, text: str) -> Sanction:
    fields = json.loads(text)
    expires = fields.get("expires")
    return Sanction(
        user=Member(user_id, str(fields.get("name", user_id))),
        reason=str(fields.get("reason", "")),
        by=str(fields.get("by", "")),
        expires_ms=int(expires) if expires is not None else None,
    )


# -- the store ---------------------------------------------------------------------------


class RedisStore:
    """A ``Store`` on one Redis primary or on a Redis Cluster, shared by every node.

    Create the client with ``decode_responses=True``: replies are then str already
    (bytes replies are decoded as UTF-8 too, at a small cost). ``close`` closes the
    client, so close whatever shares it (a pub/sub broker) first. Connection failures and
    timeouts surface as ``StoreUnavailable``; how long a call retries before that is the
    client's ``retry`` policy.

    Both kinds of client run the same scripts on the same key layout. The one difference:
    on a cluster, fanouts are SPUBLISHed, and a fanout whose channel is not in the log's
    slot (the two users' channels of a conversation) is published right after the
    append instead of inside it.
    """

    def __init__(
        self, client: AnyRedis, keys: KeySchema, history_size: int, *, events_maxlen: int = 0
    ) -> None:
        if history_size < 1:
            raise ValueError(f"history_size must be at least 1, got {history_size}")
        self._redis = client
        self._keys = keys
        self._history_size = history_size
        self._cluster = isinstance(client, RedisCluster)
        # The event stream keeps about this many events; 0: no events are added. On a
        # Redis Cluster each hash slot has its own stream (a script writes only its own
        # slot's keys), each capped at this.
        self._events_maxlen = events_maxlen
        self._publish_command = "SPUBLISH" if self._cluster else "PUBLISH"
        # Lua scripts are registered once; the client runs them with EVALSHA and loads
        # them again by itself after a Redis restart (NOSCRIPT).
        register = client.register_script
        self._create_room_info = register(_CREATE_ROOM_INFO)
        self._rename_in_index = register(_RENAME_IN_INDEX)
        self._rename_room_info = register(_RENAME_ROOM_INFO)
        self._remove_room = register(_REMOVE_ROOM)
        self._unlist_room = register(_UNLIST_ROOM)
        self._user_session_added = register(_USER_SESSION_ADDED)
        self._user_session_ended = register(_USER_SESSION_ENDED)
        self._user_presence = register(_USER_PRESENCE)
        self._append_once = register(_APPEND_ONCE)
        self._claim_room_name = register(_CLAIM_ROOM_NAME)
        self._get_room = register(_GET_ROOM)
        self._set_acl = register(_SET_ACL)
        self._register_session = register(_REGISTER_SESSION)
        self._rename_in_room = register(_RENAME_IN_ROOM)
        self._join_session = register(_JOIN_SESSION)
        self._join_room = register(_JOIN_ROOM)
        self._still_joining = register(_STILL_JOINING)
        self._leave_room = register(_LEAVE_ROOM)
        self._drop_session_begin = register(_DROP_SESSION_BEGIN)
        self._renew_lease = register(_RENEW_LEASE)
        self._expired_nodes = register(_EXPIRED_NODES)
        self._live_nodes = register(_LIVE_NODES)
        self._append = register(_APPEND)
        self._set_role = register(_SET_ROLE)
        self._impose = register(_IMPOSE)
        self._hset_with_event = register(_HSET_WITH_EVENT)
        self._hdel_with_event = register(_HDEL_WITH_EVENT)
        self._send_check = register(_SEND_CHECK)
        self._remove_user_from_room = register(_REMOVE_USER_FROM_ROOM)
        self._revise = register(_REVISE)
        self._move_position = register(_MOVE_POSITION)

    @property
    def cluster(self) -> bool:
        return self._cluster

    def _event(self, keys: list[str], event: Event | None) -> tuple[list[str], str]:
        """A script's keys and its event argument: the stream key goes last in KEYS only
        when there is an event to add ('' adds none)."""
        if event is None or self._events_maxlen <= 0:
            return keys, ""
        return [*keys, self._stream_for(keys[0])], event.encode(self._events_maxlen)

    def _stream_for(self, key: str) -> str:
        """The event stream a script touching ``key`` writes: the one stream of a single
        Redis, or the stream of ``key``'s slot on a cluster."""
        return self._keys.events_stream_for(key) if self._cluster else self._keys.events()

    def _filled(self, event: Event | None, values: Mapping[str, str | int]) -> Event | None:
        """``event`` with its holes filled here (for steps whose values this side knows)."""
        if event is None:
            return None
        return Event(event.key(values), (event.text(values),))

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
        # Two slots: the room's own keys, then the name index. The room's keys come
        # first so that a room is never listed (or joinable by name) before it exists; a
        # crash in between leaves an unlisted room nobody knows the id of, harmless.
        k = self._keys
        owner_pairs = [part for o in owners for part in (o.id, o.name)]
        acl_pairs = [part for item in (acl or {}).items() for part in item]
        info_outcome = _text(
            await self._create_room_info(
                keys=[k.room_info(room_id), k.room_owners(room_id), k.room_acl(room_id)],
                args=[name, len(owners), *owner_pairs, *acl_pairs],
            )
        )
        if info_outcome == "id_in_use":
            raise ValueError(f"room id {room_id!r} is in use under another name")
        if info_outcome == "taken":
            raise RoomNameTaken(name)
        claim_keys, encoded = self._event([k.rooms(), k.room_names()], event)
        claim = _text(await self._claim_room_name(keys=claim_keys, args=[room_id, name, encoded]))
        if claim == "taken":
            # The name belongs to another room: this id's keys (written just now, or by
            # an earlier attempt that lost the same race) must not linger.
            await self._redis.delete(
                k.room_info(room_id), k.room_owners(room_id), k.room_acl(room_id)
            )
            raise RoomNameTaken(name)
        if info_outcome == "exists":
            room = await self.get_room(room_id)
            if room is not None:
                return room
        return Room(
            id=room_id, name=name, owners={o.id: o.name for o in owners}, acl=dict(acl or {})
        )

    @_unavailable_as_store_error
    async def get_room(self, room_id: str) -> Room | None:
        k = self._keys
        # One script: a consistent snapshot of the room's hashes.
        info, owners, acl, moderators, rules = await self._get_room(
            keys=[
                k.room_info(room_id),
                k.room_owners(room_id),
                k.room_acl(room_id),
                k.room_moderators(room_id),
                k.room_rules(room_id),
            ]
        )
        if not info:
            return None
        return Room(
            id=room_id,
            name=_pairs(info)["name"],
            owners=_pairs(owners),
            acl=_pairs(acl),
            moderators=_pairs(moderators),
            rules=_pairs(rules),
        )

    @_unavailable_as_store_error
    async def list_rooms(self) -> list[RoomSummary]:
        names = _text_map(await self._redis.hgetall(self._keys.rooms()))
        # Counts are read after the index, unsynchronised: a summary, not a snapshot.
        # (A cluster pipeline sends each shard its part.)
        pipe = self._redis.pipeline(transaction=False)
        for room_id in names:
            pipe.hlen(self._keys.room_users(room_id))
            pipe.hget(self._keys.room_rules(room_id), "list")
        replies = await pipe.execute()
        summaries = [
            RoomSummary(
                id=room_id,
                name=name,
                members=int(replies[2 * i]),
                list_rule=None if replies[2 * i + 1] is None else _text(replies[2 * i + 1]),
            )
            for i, (room_id, name) in enumerate(names.items())
        ]
        return sorted(summaries, key=lambda s: (s.name, s.id))

    @_unavailable_as_store_error
    async def set_acl(
        self, room_id: str, acl: Mapping[str, str], *, event: Event | None = None
    ) -> None:
        pairs = [part for item in acl.items() for part in item]
        keys, encoded = self._event(
            [self._keys.room_info(room_id), self._keys.room_acl(room_id)], event
        )
        await self._set_acl(keys=keys, args=[*pairs, encoded])

    @_unavailable_as_store_error
    async def rename_room(
        self, room_id: str, name: str, *, event: Event | None = None
    ) -> str | None:
        # The index first (it decides who holds a name), then the room's own copy, which
        # takes a rename only if it is newer than the last it took: whatever order
        # concurrent renames finish in, both end with the last name the index took. A
        # crash in between leaves the old name in get_room until the next rename.
        k = self._keys
        if not await self._redis.exists(k.room_info(room_id)):
            return None
        reply = await self._rename_in_index(
            keys=[k.rooms(), k.room_names(), k.room_renames()], args=[room_id, name]
        )
        if _text(reply[0]) == "taken":
            raise RoomNameTaken(name)
        old, number = _text(reply[1]), int(reply[2])
        info_keys, encoded = self._event([k.room_info(room_id)], event)
        await self._rename_room_info(keys=info_keys, args=[name, number, encoded])
        return old or name

    @_unavailable_as_store_error
    async def remove_room(
        self, room_id: str, log: str, *, event: Event | None = None
    ) -> Room | None:
        # The room's slot first (room, presence and log in one step: from then on nobody
        # can join it), then each member session's room set, then the index. A crash in
        # between leaves only index entries and stale room ids in session sets, which a
        # remove of the same id again clears (and leaving a removed room is a no-op).
        k = self._keys
        room = await self.get_room(room_id)
        sids: list[Any] | None = None
        if room is not None:
            room_keys = [
                k.room_info(room_id),
                k.room_owners(room_id),
                k.room_acl(room_id),
                k.room_users(room_id),
                k.room_sessions(room_id),
                k.room_counts(room_id),
                k.room_moderators(room_id),
                k.room_rules(room_id),
                k.room_bans(room_id),
                k.room_mutes(room_id),
            ]
            if hash_tag(k.log(log)) != hash_tag(k.room_info(room_id)):
                raise ValueError(f"log {log!r} is not room {room_id!r}'s log")
            doomed = [*room_keys, k.log(log), k.log_seq(log), k.log_epoch(log)]
            script_keys, encoded = self._event(doomed, event)
            sids = await self._remove_room(keys=script_keys, args=[len(doomed), encoded])
        for sid in sids or []:
            await self._redis.srem(k.session_rooms(_text(sid)), room_id)
        await self._unlist_room(keys=[k.rooms(), k.room_names(), k.room_renames()], args=[room_id])
        return room if sids is not None else None

    @_unavailable_as_store_error
    async def set_role(
        self, room_id: str, member: Member, role: str | None, *, event: Event | None = None
    ) -> bool:
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        k = self._keys
        keys, encoded = self._event(
            [k.room_info(room_id), k.room_owners(room_id), k.room_moderators(room_id)], event
        )
        done = await self._set_role(keys=keys, args=[member.id, member.name, role or "", encoded])
        return bool(done)

    @_unavailable_as_store_error
    async def set_rules(self, room_id: str, rules: Mapping[str, str]) -> None:
        # The same replace-if-the-room-exists script as the ACL, on the rules hash.
        pairs = [part for item in rules.items() for part in item]
        await self._set_acl(
            keys=[self._keys.room_info(room_id), self._keys.room_rules(room_id)],
            args=[*pairs, ""],
        )

    @_unavailable_as_store_error
    async def set_admin(self, member: Member, admin: bool) -> None:
        if admin:
            await self._redis.hset(self._keys.admins(), member.id, member.name)
        else:
            await self._redis.hdel(self._keys.admins(), member.id)

    @_unavailable_as_store_error
    async def is_admin(self, user_id: str) -> bool:
        return bool(await self._redis.hexists(self._keys.admins(), user_id))

    @_unavailable_as_store_error
    async def admins(self) -> list[Member]:
        found = _text_map(await self._redis.hgetall(self._keys.admins()))
        return [Member(uid, found[uid]) for uid in sorted(found)]

    # -- sanctions ---------------------------------------------------------------------

    def _sanctions_key(self, kind: str, scope: str | None) -> str:
        if kind not in SANCTIONS or (scope is None and kind != "ban"):
            raise ValueError(f"no {kind!r} sanction in scope {scope!r}")
        if scope is None:
            return self._keys.global_bans()
        return self._keys.room_bans(scope) if kind == "ban" else self._keys.room_mutes(scope)

    @_unavailable_as_store_error
    async def impose(
        self, kind: str, scope: str | None, sanction: Sanction, *, event: Event | None = None
    ) -> None:
        key = self._sanctions_key(kind, scope)
        text = _sanction_json(sanction)
        if scope is None:
            keys, encoded = self._event([key], event)
            await self._hset_with_event(keys=keys, args=[sanction.user.id, text, encoded])
        else:  # only while the room exists: a removed room leaves no bans behind
            keys, encoded = self._event([self._keys.room_info(scope), key], event)
            await self._impose(keys=keys, args=[sanction.user.id, text, encoded])

    @_unavailable_as_store_error
    async def lift(
        self, kind: str, scope: str | None, user_id: str, *, event: Event | None = None
    ) -> bool:
        keys, encoded = self._event([self._sanctions_key(kind, scope)], event)
        return bool(await self._hdel_with_event(keys=keys, args=[user_id, encoded]))

    @_unavailable_as_store_error
    async def sanction(self, kind: str, scope: str | None, user_id: str) -> Sanction | None:
        text = await self._redis.hget(self._sanctions_key(kind, scope), user_id)
        return None if text is None else _sanction_from_json(user_id, _text(text))

    @_unavailable_as_store_error
    async def sanctions(self, kind: str, scope: str | None) -> list[Sanction]:
        found = _text_map(await self._redis.hgetall(self._sanctions_key(kind, scope)))
        return [_sanction_from_json(uid, found[uid]) for uid in sorted(found)]

    @_unavailable_as_store_error
    async def send_check(self, room_id: str, user_id: str) -> SendCheck:
        # One script rather than a pipeline: a third less client CPU, on every message.
        k = self._keys
        rule, mute = await self._send_check(
            keys=[k.room_rules(room_id), k.room_mutes(room_id)], args=[user_id]
        )
        return SendCheck(
            None if rule is None else _text(rule),
            None if mute is None else _sanction_from_json(user_id, _text(mute)),
        )

    # -- presence ----------------------------------------------------------------------
    # The invariant that makes the multi-slot steps safe: a session's room set is always
    # a superset of the rooms whose presence lists it (a room is added to the set before
    # the presence, and removed after), and a session is in its node's set before its
    # record exists and until after it is deleted. So ``drop_session``, run again after
    # any crash (by the purge of a dead node), finds and repairs everything.

    @_unavailable_as_store_error
    async def register_session(
        self, sid: str, member: Member, node_id: str, *, event: Event | None = None
    ) -> None:
        k = self._keys
        await self._redis.sadd(k.node_sessions(node_id), sid)
        keys, encoded = self._event([k.session_info(sid), k.session_rooms(sid)], event)
        reply = await self._register_session(
            keys=keys, args=[member.id, member.name, node_id, encoded]
        )
        old_node, *room_ids = (_text(part) for part in reply)
        await self._user_session_added(
            keys=[k.user_sessions(member.id), k.user_info(member.id)], args=[sid, member.name]
        )
        if old_node and old_node != node_id:
            await self._redis.srem(k.node_sessions(old_node), sid)
        for room_id in room_ids:
            await self._rename_in_room(
                keys=[k.room_sessions(room_id), k.room_users(room_id)],
                args=[sid, member.id, member.name],
            )

    @_unavailable_as_store_error
    async def join_room(
        self,
        room_id: str,
        sid: str,
        *,
        event: Event | None = None,
        backout_event: Event | None = None,
    ) -> bool:
        k = self._keys
        session_keys = [k.session_info(sid), k.session_rooms(sid)]
        member = await self._join_session(keys=session_keys, args=[room_id])
        if not member:
            return False
        uid, name = (_text(part) for part in member)
        presence = [k.room_sessions(room_id), k.room_counts(room_id), k.room_users(room_id)]
        join_keys, encoded = self._event([k.room_info(room_id), *presence], event)
        joined = int(await self._join_room(keys=join_keys, args=[sid, uid, name, encoded]))
        if joined < 0:  # unknown room
            await self._redis.srem(k.session_rooms(sid), room_id)
            return False
        # A drop that began after our first step left the rooms it read, and a leave of
        # this room took it out of the set, perhaps before our presence was written: if
        # either happened, back out. (One beginning after this check undoes our presence
        # itself: a drop reads the room from the set, a leave re-checks the presence.)
        if not await self._still_joining(keys=session_keys, args=[room_id]):
            # The join event is in the stream already when the user entered the room:
            # its leave goes with the backing out, so the stream shows both or neither.
            keys, encoded = self._event(presence, backout_event if joined == 1 else None)
            await self._leave_room(keys=keys, args=[sid, encoded])
            return False
        return joined == 1

    @_unavailable_as_store_error
    async def leave_room(self, room_id: str, sid: str, *, event: Event | None = None) -> bool:
        # Presence first, then the session's set (a crash in between keeps the set a
        # superset), then presence again: a join of the same room that wrote its presence
        # in between, after its own check, would otherwise stay without a set entry. The
        # event goes with whichever step takes the user's last session out.
        k = self._keys
        presence = [k.room_sessions(room_id), k.room_counts(room_id), k.room_users(room_id)]
        keys, encoded = self._event(presence, event)
        left = await self._leave_room(keys=keys, args=[sid, encoded])
        await self._redis.srem(k.session_rooms(sid), room_id)
        left_again = await self._leave_room(keys=keys, args=[sid, encoded])
        return bool(left or left_again)

    @_unavailable_as_store_error
    async def drop_session(
        self, sid: str, *, events: DropEvents | None = None
    ) -> list[tuple[str, Member]]:
        # Mark, leave every room, then delete the record: a crash before the end leaves
        # the session registered on its node, whose purge drops it again (leaving a room
        # twice is harmless).
        k = self._keys
        reply = await self._drop_session_begin(keys=[k.session_info(sid), k.session_rooms(sid)])
        if not reply:
            return []
        uid, name, node_id, *room_ids = (_text(part) for part in reply)
        member = Member(id=uid, name=name)
        who: dict[str, str | int] = {"user_id": uid, "user_name": name}
        left: list[tuple[str, Member]] = []
        for room_id in sorted(room_ids):
            presence = [k.room_sessions(room_id), k.room_counts(room_id), k.room_users(room_id)]
            leave = events.leave if events is not None else None
            filled = self._filled(leave, {**who, "n": len(left) + 1, "room_id": room_id})
            keys, encoded = self._event(presence, filled)
            if await self._leave_room(keys=keys, args=[sid, encoded]):
                left.append((room_id, member))
        offline = self._filled(events.offline if events is not None else None, who)
        keys, encoded = self._event([k.user_sessions(uid), k.user_info(uid)], offline)
        await self._user_session_ended(keys=keys, args=[sid, encoded])
        await self._redis.delete(k.session_info(sid), k.session_rooms(sid))
        if node_id:
            await self._redis.srem(k.node_sessions(node_id), sid)
        return left

    @_unavailable_as_store_error
    async def room_members(self, room_id: str) -> list[Member]:
        users = _text_map(await self._redis.hgetall(self._keys.room_users(room_id)))
        return [Member(id=uid, name=users[uid]) for uid in sorted(users)]

    @_unavailable_as_store_error
    async def remove_from_room(
        self, room_id: str, user_id: str, *, event: Event | None = None
    ) -> list[str]:
        # The room's presence first, then each session's room set (the set stays a
        # superset of the presence that lists the session); a crash in between leaves a
        # stale room id in a session set, which leaving or dropping clears.
        k = self._keys
        keys, encoded = self._event(
            [k.room_sessions(room_id), k.room_counts(room_id), k.room_users(room_id)], event
        )
        sids = sorted(
            _text(sid)
            for sid in await self._remove_user_from_room(keys=keys, args=[user_id, encoded])
        )
        for sid in sids:
            await self._redis.srem(k.session_rooms(sid), room_id)
        return sids

    @_unavailable_as_store_error
    async def node_sessions(self, node_id: str) -> list[str]:
        sids = await self._redis.smembers(self._keys.node_sessions(node_id))
        return sorted(_text(sid) for sid in sids)

    @_unavailable_as_store_error
    async def user_presence(self, user_id: str) -> UserPresence | None:
        k = self._keys
        info, sids = await self._user_presence(
            keys=[k.user_info(user_id), k.user_sessions(user_id)]
        )
        if not info:
            return None
        user = _pairs(info)
        # Each session's room set lives in the session's slot: read one by one (a cluster
        # pipeline sends each shard its part).
        pipe = self._redis.pipeline(transaction=False)
        for sid in sids:
            pipe.smembers(k.session_rooms(_text(sid)))
        rooms = {_text(room) for members in await pipe.execute() for room in members}
        last_seen = user.get("last_seen")
        return UserPresence(
            id=user_id,
            name=user["name"],
            sessions=len(sids),
            rooms=sorted(rooms),
            last_seen_ms=int(last_seen) if last_seen else None,
        )

    # -- node leases -------------------------------------------------------------------
    # Expiries use the Redis server clock (TIME inside the scripts), so nodes with
    # skewed clocks still agree on who has expired. On a cluster, the clock of the
    # shard owning ``{nodes}``: one clock still.

    @_unavailable_as_store_error
    async def renew_lease(self, node_id: str, ttl_ms: int) -> bool:
        added = await self._renew_lease(keys=[self._keys.nodes()], args=[node_id, ttl_ms])
        return int(added) == 0

    @_unavailable_as_store_error
    async def expired_nodes(self) -> list[str]:
        reply = await self._expired_nodes(keys=[self._keys.nodes()])
        return sorted(_text(node_id) for node_id in reply)

    @_unavailable_as_store_error
    async def live_nodes(self) -> list[str]:
        reply = await self._live_nodes(keys=[self._keys.nodes()])
        return sorted(_text(node_id) for node_id in reply)

    @_unavailable_as_store_error
    async def put_node_stats(self, node_id: str, stats: str) -> None:
        await self._redis.hset(self._keys.node_stats(), node_id, stats)

    @_unavailable_as_store_error
    async def node_stats(self, node_ids: Sequence[str]) -> dict[str, str]:
        if not node_ids:
            return {}
        values = await self._redis.hmget(self._keys.node_stats(), list(node_ids))
        return {n: _text(v) for n, v in zip(node_ids, values, strict=True) if v is not None}

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
        await self._redis.hdel(self._keys.node_stats(), node_id)

    # -- message logs ------------------------------------------------------------------

    def _split_fanouts(
        self, log_key: str, fanouts: Sequence[Fanout]
    ) -> tuple[list[str], list[tuple[str, Fanout]]]:
        """(channel, head, tail) triples the script publishes, and the fanouts published
        after it: on a cluster, those whose channel is not in the log's slot."""
        inside: list[str] = []
        after: list[tuple[str, Fanout]] = []
        for fanout in fanouts:
            channel = self._keys.channel(fanout.channel)
            if self._cluster and hash_tag(channel) != hash_tag(log_key):
                after.append((channel, fanout))
            else:
                inside += (channel, fanout.head, fanout.tail)
        return inside, after

    async def _publish_after(self, entry: str, after: list[tuple[str, Fanout]]) -> None:
        # A conversation's user channels live in their users' slots: published once the
        # entry is stored. Two users sending at the same instant from two nodes may then
        # be delivered in either order; seq still tells the true order.
        for channel, fanout in after:
            await self._redis.spublish(channel, fanout.head + entry + fanout.tail)

    async def append(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout] = (),
        *,
        event: Event | None = None,
    ) -> int:
        return (await self.append_entry(log, entry_tail, fanouts, event=event)).seq

    @staticmethod
    def _entry(seq: int, epoch: str, entry_tail: str) -> str:
        return f'{{"seq":{seq},"epoch":"{epoch}"{entry_tail}'

    @_unavailable_as_store_error
    async def append_entry(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout] = (),
        *,
        event: Event | None = None,
    ) -> Appended:
        if not entry_tail.startswith((",", "}")):
            raise ValueError(f"entry_tail must start with ',' or '}}': {entry_tail[:20]!r}")
        k = self._keys
        log_key = k.log(log)
        inside, after = self._split_fanouts(log_key, fanouts)
        keys, encoded = self._event([log_key, k.log_seq(log), k.log_epoch(log)], event)
        seq, epoch = await self._append(
            keys=keys,
            args=[entry_tail, self._history_size, self._publish_command, *inside, encoded],
        )
        appended = Appended(int(seq), epoch=_text(epoch))
        if after:
            await self._publish_after(self._entry(appended.seq, appended.epoch, entry_tail), after)
        return appended

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
        log_key = k.log(log)
        digest = hashlib.sha256(dedupe.key.encode()).hexdigest()
        inside, after = self._split_fanouts(log_key, fanouts)
        dedupe_keys = [log_key, k.log_seq(log), k.log_dedupe(log, digest), k.log_epoch(log)]
        keys, encoded = self._event(dedupe_keys, event)
        reply = await self._append_once(
            keys=keys,
            args=[
                entry_tail,
                self._history_size,
                dedupe.ttl_ms,
                self._publish_command,
                *inside,
                encoded,
            ],
        )
        if len(reply) > 2:
            return Appended(int(reply[0]), original=_text(reply[2]), epoch=_text(reply[1]))
        appended = Appended(int(reply[0]), epoch=_text(reply[1]))
        if after:
            await self._publish_after(self._entry(appended.seq, appended.epoch, entry_tail), after)
        return appended

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
    async def revise(
        self,
        log: str,
        seq: int,
        old_entry: str,
        new_entry: str,
        entry_tail: str,
        fanouts: Sequence[Fanout] = (),
        *,
        event: Event | None = None,
    ) -> int | None:
        if not entry_tail.startswith((",", "}")):
            raise ValueError(f"entry_tail must start with ',' or '}}': {entry_tail[:20]!r}")
        k = self._keys
        log_key = k.log(log)
        inside, after = self._split_fanouts(log_key, fanouts)
        args: list[str | int] = [
            seq, old_entry, new_entry, entry_tail, self._history_size, self._publish_command
        ]  # fmt: skip
        keys, encoded = self._event([log_key, k.log_seq(log), k.log_epoch(log)], event)
        reply = await self._revise(keys=keys, args=[*args, *inside, encoded])
        appended = int(reply[0])
        if not appended:
            return None
        if after:
            await self._publish_after(self._entry(appended, _text(reply[1]), entry_tail), after)
        return appended

    @_unavailable_as_store_error
    async def add_event(self, event: Event) -> None:
        if self._events_maxlen > 0:
            await self._redis.xadd(
                self._stream_for(self._keys.events()),
                {"key": event.key({}), "event": event.text({})},
                maxlen=self._events_maxlen,
                approximate=True,
            )

    async def log_heads(self, logs: Sequence[str]) -> list[LogHead]:
        if not logs:
            return []
        k = self._keys
        # Not a transaction: a log's keys share a slot, but a cluster pipeline cannot
        # span slots. Read newest-first per log, so a concurrent append makes ``seq`` at
        # most lag ``last``, never the other way round.
        pipe = self._redis.pipeline(transaction=False)
        for log in logs:
            pipe.get(k.log_epoch(log))
            pipe.get(k.log_seq(log))
            pipe.zrange(k.log(log), 0, 0, withscores=True)
            pipe.zrange(k.log(log), -1, -1)
        replies = await pipe.execute()
        heads = []
        for i in range(0, len(replies), 4):
            epoch, seq_text, oldest, newest = replies[i : i + 4]
            seq = int(seq_text) if seq_text is not None else 0
            first = int(oldest[0][1]) if oldest else seq + 1
            last = _text(newest[0]) if newest else None
            heads.append(LogHead(_text(epoch) if epoch is not None else None, seq, first, last))
        return heads

    # -- per-user state ------------------------------------------------------------------

    def _positions_key(self, user_id: str, kind: str) -> str:
        if kind == "read":
            return self._keys.user_read(user_id)
        if kind == "received":
            return self._keys.user_received(user_id)
        raise ValueError(f"kind must be 'read' or 'received', not {kind!r}")

    @_unavailable_as_store_error
    async def move_position(
        self, user_id: str, log: str, kind: str, position: Position
    ) -> Position | None:
        moved = await self._move_position(
            keys=[self._positions_key(user_id, kind)],
            args=[log, position.seq, position.epoch],
        )
        return position if int(moved) else None

    @_unavailable_as_store_error
    async def positions(
        self, user_id: str, kind: str, logs: Sequence[str]
    ) -> list[Position | None]:
        if not logs:
            return []
        values = await self._redis.hmget(self._positions_key(user_id, kind), list(logs))
        found: list[Position | None] = []
        for value in values:
            if value is None:
                found.append(None)
                continue
            seq, _, epoch = _text(value).partition(":")
            found.append(Position(epoch, int(seq)))
        return found

    @_unavailable_as_store_error
    async def add_user_logs(self, user_id: str, refs: Sequence[str], at_ms: int) -> None:
        if refs:
            await self._redis.zadd(self._keys.user_logs(user_id), dict.fromkeys(refs, at_ms))

    @_unavailable_as_store_error
    async def remove_user_log(self, user_id: str, ref: str) -> None:
        await self._redis.zrem(self._keys.user_logs(user_id), ref)

    @_unavailable_as_store_error
    async def user_logs(self, user_id: str, limit: int) -> list[str]:
        if limit <= 0:
            return []
        refs = await self._redis.zrevrange(self._keys.user_logs(user_id), 0, limit - 1)
        return [_text(ref) for ref in refs]

    @_unavailable_as_store_error
    async def set_status(self, user_id: str, status: str, *, event: Event | None = None) -> None:
        # The status and its event in one script; then the set of invisible users, in
        # another slot: not atomic with it, but setting the status again repairs it.
        keys, encoded = self._event([self._keys.user_info(user_id)], event)
        await self._hset_with_event(keys=keys, args=["status", status, encoded])
        if status == "invisible":
            await self._redis.sadd(self._keys.invisible_users(), user_id)
        else:
            await self._redis.srem(self._keys.invisible_users(), user_id)

    @_unavailable_as_store_error
    async def invisible_among(self, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        flags = await self._redis.smismember(self._keys.invisible_users(), list(user_ids))
        return {uid for uid, flag in zip(user_ids, flags, strict=True) if int(flag)}

    @_unavailable_as_store_error
    async def user_statuses(self, user_ids: Sequence[str]) -> list[UserStatus]:
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.hmget(self._keys.user_info(user_id), ["status", "last_seen"])
            pipe.scard(self._keys.user_sessions(user_id))
        replies = await pipe.execute()
        found = []
        for i, user_id in enumerate(user_ids):
            (status, last_seen), sessions = replies[2 * i], replies[2 * i + 1]
            found.append(
                UserStatus(
                    user_id,
                    _text(status) if status is not None else None,
                    int(sessions),
                    int(last_seen) if last_seen is not None else None,
                )
            )
        return found

    async def close(self) -> None:
        await self._redis.aclose()
