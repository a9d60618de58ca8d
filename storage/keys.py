"""Redis key names: the one module that knows them.

Every key lives under a prefix (default ``dino:``) so that several deployments, or test
runs, can share one Redis. Each key is a method of ``KeySchema`` whose docstring reads
``"<redis type>: <meaning>"``; ``key_schema_table`` renders those docstrings, so the
README table cannot drift from the code.

Every per-id key ends in a fixed suffix (``room:{room_id}:info``, not ``room:{room_id}``).
That keeps the mapping injective whatever characters an id contains: without the suffix,
a room whose id is ``x:users`` would own the key ``room:x:users``, which is also room
``x``'s users hash.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

# Stands in for an id when a key is split into a Lua template (see ``split_template``).
# NUL never occurs in ids produced by the server (uuids, socket.io sids, node names).
_ID_MARK = "\x00"


class KeySchema:
    """Key and channel names under ``prefix``."""

    def __init__(self, prefix: str = "dino:") -> None:
        self.prefix = prefix

    # -- rooms -------------------------------------------------------------------------

    def rooms(self) -> str:
        """hash: room id -> room name. Index of all rooms, read by ``list_rooms``."""
        return f"{self.prefix}rooms"

    def room_names(self) -> str:
        """hash: room name -> room id. Makes names unique; written with ``rooms``."""
        return f"{self.prefix}room_names"

    def room_info(self, room_id: str) -> str:
        """hash: ``name``, ``created`` (ms, Redis clock). The room's own fields."""
        return f"{self.prefix}room:{room_id}:info"

    def room_owners(self, room_id: str) -> str:
        """hash: user id -> display name of the room's owners."""
        return f"{self.prefix}room:{room_id}:owners"

    def room_acl(self, room_id: str) -> str:
        """hash: acl type -> rule. Replaced as a whole by ``set_acl``."""
        return f"{self.prefix}room:{room_id}:acl"

    # -- presence ----------------------------------------------------------------------

    def room_users(self, room_id: str) -> str:
        """hash: user id -> display name of users with at least one session in the room."""
        return f"{self.prefix}room:{room_id}:users"

    def room_sessions(self, room_id: str) -> str:
        """hash: session id -> user id of the sessions in the room."""
        return f"{self.prefix}room:{room_id}:sessions"

    def room_counts(self, room_id: str) -> str:
        """hash: user id -> number of that user's sessions in the room (never 0)."""
        return f"{self.prefix}room:{room_id}:counts"

    def session_info(self, sid: str) -> str:
        """hash: ``uid``, ``name``, ``node`` of a registered session."""
        return f"{self.prefix}session:{sid}:info"

    def session_rooms(self, sid: str) -> str:
        """set: ids of the rooms the session is in (what ``drop_session`` leaves)."""
        return f"{self.prefix}session:{sid}:rooms"

    def user_info(self, user_id: str) -> str:
        """hash: ``name``, ``last_seen`` (ms, Redis clock) of a user who has logged in."""
        return f"{self.prefix}user:{user_id}:info"

    def user_sessions(self, user_id: str) -> str:
        """set: session ids of the user, on any node."""
        return f"{self.prefix}user:{user_id}:sessions"

    # -- nodes -------------------------------------------------------------------------

    def nodes(self) -> str:
        """zset: node id, score = lease expiry in ms on the Redis server clock."""
        return f"{self.prefix}nodes"

    def node_sessions(self, node_id: str) -> str:
        """set: session ids registered on the node (purged when its lease runs out)."""
        return f"{self.prefix}node:{node_id}:sessions"

    def node_cleanup(self, node_id: str) -> str:
        """string with PX ttl: lock held by the one node purging a dead node."""
        return f"{self.prefix}node:{node_id}:cleanup"

    # -- message logs ------------------------------------------------------------------

    def log(self, log: str) -> str:
        """zset: entry JSON text, score = seq. Trimmed to the newest history_size."""
        return f"{self.prefix}log:{log}:entries"

    def log_seq(self, log: str) -> str:
        """string: last seq handed out for the log (INCR). Survives trimming."""
        return f"{self.prefix}log:{log}:seq"

    def log_dedupe(self, log: str, key_digest: str) -> str:
        """string with PX ttl: the entry first appended to the log under an idempotency key
        (named by the key's SHA-256 hex digest, which has no ':', so names stay injective)."""
        return f"{self.prefix}log:{log}:dedupe:{key_digest}"

    # -- the event stream out ----------------------------------------------------------

    def events(self) -> str:
        """stream: every change of state as an event (``core.events``), fields ``key`` (its
        routing key) and ``event`` (its JSON). Capped near ``--events-maxlen``."""
        return f"{self.prefix}events"

    def events_lease(self, sink: str) -> str:
        """string with PX ttl: id of the one node forwarding the stream to ``sink``."""
        return f"{self.prefix}events:{sink}:lease"

    def events_cursor(self, sink: str) -> str:
        """hash: ``id``, ``position`` of the last event ``sink`` confirmed (forwarding
        resumes after it)."""
        return f"{self.prefix}events:{sink}:cursor"

    # -- pub/sub -----------------------------------------------------------------------

    def channel(self, name: str) -> str:
        """channel: pub/sub channel ``name`` (fanout of appends); not a key."""
        return f"{self.prefix}ch:{name}"


def split_template(key_fn: Callable[[str], str]) -> tuple[str, str]:
    """``(head, tail)`` such that ``key_fn(x) == head + x + tail`` for every id ``x``.

    Lua scripts that discover ids at run time (the rooms of a session being dropped) get
    these pairs as arguments and concatenate, so they never spell a key name themselves.
    """
    head, mark, tail = key_fn(_ID_MARK).partition(_ID_MARK)
    if not mark or _ID_MARK in tail:
        raise ValueError(f"{key_fn!r} does not contain its id exactly once")
    return head, tail


def key_schema_table(schema: KeySchema | None = None) -> str:
    """The key layout as a markdown table (for the README), built from the docstrings."""
    schema = schema or KeySchema()
    rows = ["| Key | Type | Meaning |", "| --- | --- | --- |"]
    # vars() keeps definition order, which groups the keys as the class does.
    for name, attr in vars(KeySchema).items():
        if name.startswith("_") or not inspect.isfunction(attr):
            continue
        method = getattr(schema, name)
        # Placeholders named after the parameters, e.g. room:{room_id}:users.
        params = inspect.signature(method).parameters
        key = method(*(f"{{{p}}}" for p in params))
        kind, _, meaning = (inspect.getdoc(method) or "").partition(": ")
        rows.append(f"| `{key}` | {kind} | {' '.join(meaning.split())} |")
    return "\n".join(rows)
