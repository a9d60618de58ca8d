"""Redis key names: the one module that knows them.

Every key lives under a prefix (default ``dino:``) so that several deployments, or test
runs, can share one Redis. Each key is a method of ``KeySchema`` whose docstring reads
``"<redis type>: <meaning>"``; ``key_schema_table`` renders those docstrings, so the
README table cannot drift from the code.

**Hash tags.** Every key is ``<prefix>{<owner>}:<suffix>``: the part in braces is a Redis
Cluster hash tag, so every key of one owner lands in one slot and a Lua script that
touches one owner's keys runs on one shard:

* ``{room:<id>}``: a room's fields, presence, and its message log (the room log is named
  ``room:<id>``), and its pub/sub channel, so ``append`` can SPUBLISH from its script;
* ``{<log>}``: a conversation log (``dm:...``) with its idempotency keys;
* ``{user:<id>}``: a user's profile, sessions index and channel;
* ``{session:<sid>}``, ``{node:<id>}``: one session's, one node's keys;
* ``{rooms}``, ``{nodes}``: the two cross-room indexes (all rooms, all node leases);
* ``{admins}``, ``{bans}``: the global admins and the bans from every room;
* ``{users}``: the invisible users.

The same layout serves one Redis server, where a tag is just part of the name: it costs
a dozen bytes per key and nothing measurable in time, and keeping one layout means one
set of scripts, tested on both, and no migration when a deployment moves to a cluster.

The mapping is injective: owners start with a fixed kind (``room:``, ``user:``, ...) or
are fixed words, and suffixes are distinct words without braces, so the last ``}:`` of a
key splits it back into owner and suffix whatever characters an id contains. An id
containing ``}`` ends its tag early (Redis hashes up to the first ``}``): that only puts
it in the slot of a shorter id, consistently for all of its keys, which is harmless.
The prefix itself must not contain braces, or it would become the tag.
"""

from __future__ import annotations

import functools
import inspect

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot


class KeySchema:
    """Key and channel names under ``prefix``."""

    def __init__(self, prefix: str = "dino:") -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"the key prefix must not contain '{{' or '}}': {prefix!r}")
        self.prefix = prefix

    def _key(self, owner: str, suffix: str) -> str:
        return f"{self.prefix}{{{owner}}}:{suffix}"

    # -- rooms -------------------------------------------------------------------------

    def rooms(self) -> str:
        """hash: room id -> room name. Index of all rooms, read by ``list_rooms``."""
        return self._key("rooms", "by_id")

    def room_names(self) -> str:
        """hash: room name -> room id. Makes names unique; written with ``rooms``."""
        return self._key("rooms", "by_name")

    def room_renames(self) -> str:
        """hash: room id -> number of renames. Orders concurrent renames of one room, so
        its own ``name`` ends as the index's."""
        return self._key("rooms", "renames")

    def room_info(self, room_id: str) -> str:
        """hash: ``name``, ``created`` (ms, Redis clock). The room's own fields."""
        return self._key("room:" + room_id, "info")

    def room_owners(self, room_id: str) -> str:
        """hash: user id -> display name of the room's owners."""
        return self._key("room:" + room_id, "owners")

    def room_acl(self, room_id: str) -> str:
        """hash: acl type -> rule. Replaced as a whole by ``set_acl``."""
        return self._key("room:" + room_id, "acl")

    def room_moderators(self, room_id: str) -> str:
        """hash: user id -> display name of the room's moderators."""
        return self._key("room:" + room_id, "moderators")

    def room_rules(self, room_id: str) -> str:
        """hash: action -> access rule (JSON). Replaced as a whole by ``set_rules``."""
        return self._key("room:" + room_id, "rules")

    def room_bans(self, room_id: str) -> str:
        """hash: user id -> ban (JSON: name, reason, by, expires ms UTC or null)."""
        return self._key("room:" + room_id, "bans")

    def room_mutes(self, room_id: str) -> str:
        """hash: user id -> mute (JSON, as a ban)."""
        return self._key("room:" + room_id, "mutes")

    # -- deployment-wide roles and bans --------------------------------------------------

    def admins(self) -> str:
        """hash: user id -> display name of the global admins set through the API."""
        return self._key("admins", "by_id")

    def global_bans(self) -> str:
        """hash: user id -> ban from the whole deployment (JSON, as a room ban)."""
        return self._key("bans", "by_user")

    # -- presence ----------------------------------------------------------------------

    def room_users(self, room_id: str) -> str:
        """hash: user id -> display name of users with at least one session in the room."""
        return self._key("room:" + room_id, "users")

    def room_sessions(self, room_id: str) -> str:
        """hash: session id -> user id of the sessions in the room."""
        return self._key("room:" + room_id, "sessions")

    def room_counts(self, room_id: str) -> str:
        """hash: user id -> number of that user's sessions in the room (never 0)."""
        return self._key("room:" + room_id, "counts")

    def session_info(self, sid: str) -> str:
        """hash: ``uid``, ``name``, ``node`` of a registered session (``dropping`` while
        it is being dropped)."""
        return self._key("session:" + sid, "session")

    def session_rooms(self, sid: str) -> str:
        """set: ids of the rooms the session is in or entering (what ``drop_session``
        leaves); a superset of the rooms whose presence lists the session."""
        return self._key("session:" + sid, "rooms")

    def user_info(self, user_id: str) -> str:
        """hash: ``name``, ``last_seen`` (ms, Redis clock), ``status`` (as the user set it)
        of a user who has logged in."""
        return self._key("user:" + user_id, "profile")

    def user_sessions(self, user_id: str) -> str:
        """set: session ids of the user, on any node."""
        return self._key("user:" + user_id, "sessions_of_user")

    def user_read(self, user_id: str) -> str:
        """hash: log -> ``<seq>:<epoch>``, how far the user has read each log (forward only)."""
        return self._key("user:" + user_id, "read")

    def user_received(self, user_id: str) -> str:
        """hash: log -> ``<seq>:<epoch>``, how far the user's devices have received each log."""
        return self._key("user:" + user_id, "received")

    def user_logs(self, user_id: str) -> str:
        """zset: ``room:<id>`` / ``user:<id>`` the user takes part in, score = last touch ms."""
        return self._key("user:" + user_id, "logs")

    def invisible_users(self) -> str:
        """set: ids of the users whose status is ``invisible`` (one lookup per member list)."""
        return self._key("users", "invisible")

    # -- nodes -------------------------------------------------------------------------

    def nodes(self) -> str:
        """zset: node id, score = lease expiry in ms on the Redis server clock."""
        return self._key("nodes", "leases")

    def node_sessions(self, node_id: str) -> str:
        """set: session ids registered on the node (purged when its lease runs out)."""
        return self._key("node:" + node_id, "sessions_of_node")

    def node_stats(self) -> str:
        """hash: node id -> JSON of its headline numbers, every heartbeat (admin page)."""
        return self._key("nodes", "stats")

    def node_cleanup(self, node_id: str) -> str:
        """string with PX ttl: lock held by the one node purging a dead node."""
        return self._key("node:" + node_id, "cleanup")

    # -- message logs ------------------------------------------------------------------

    def log(self, log: str) -> str:
        """zset: entry JSON text, score = seq. Trimmed to the newest history_size."""
        return self._key(log, "log")

    def log_seq(self, log: str) -> str:
        """string: last seq handed out for the log (INCR). Survives trimming."""
        return self._key(log, "seq")

    def log_epoch(self, log: str) -> str:
        """string: the log's epoch, new whenever the log starts again at seq 1."""
        return self._key(log, "epoch")

    def log_dedupe(self, log: str, key_digest: str) -> str:
        """string with PX ttl: the entry first appended to the log under an idempotency
        key (named by the key's SHA-256 hex digest: no braces, so names stay injective)."""
        return self._key(log, "dedupe:" + key_digest)

    # -- the event stream out ----------------------------------------------------------

    def events(self) -> str:
        """stream: every change of state as an event (``core.events``), fields ``key`` (its
        routing key) and ``event`` (its JSON). Capped near ``--events-maxlen``."""
        return self._key("events", "stream")

    def events_shard(self, n: str) -> str:
        """stream (Redis Cluster): the events of every change to keys of one hash slot,
        the slot that the tag ``events:<n>`` hashes to (``n``: the smallest number whose
        tag lands there), so each change's script can add its event in its own slot.
        Fields and cap as the single Redis stream."""
        return self._key("events:" + n, "stream")

    def events_stream_for(self, key: str) -> str:
        """The ``events_shard`` in the hash slot of ``key``."""
        return self.events_shard(_shard_numbers()[key_slot(key.encode())])

    def events_lease(self, sink: str) -> str:
        """string with PX ttl: id of the one node forwarding the stream to ``sink``."""
        return self._key("events", "lease:" + sink)

    def events_cursor(self, sink: str) -> str:
        """hash: per stream, ``id:<stream>`` and ``position:<stream>`` of the last event
        ``sink`` confirmed from it (forwarding resumes after it)."""
        return self._key("events", "cursor:" + sink)

    # -- pub/sub -----------------------------------------------------------------------

    def channel(self, name: str) -> str:
        """channel: pub/sub channel ``name`` (``room:<id>`` shares its room's slot, for
        SPUBLISH from the append script); not a key."""
        return self._key(name, "ch")

    def channel_name(self, channel: str) -> str:
        """The ``name`` of ``channel(name)``."""
        return channel[len(self.prefix) + 1 : -len("}:ch")]


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes (its tag, or the whole key)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


# KeySchema's methods that name no key of their own (left out of the README's table).
NOT_KEYS = ("channel_name", "events_stream_for")


@functools.cache  # a constant of the hash function, the same for every schema
def _shard_numbers() -> tuple[str, ...]:
    """For each hash slot, the smallest ``n`` whose tag ``events:<n>`` hashes to it: a
    few hundred thousand CRC16s, about 0.1 s once per process (cluster only)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < REDIS_CLUSTER_HASH_SLOTS:
        found.setdefault(key_slot(f"events:{n}".encode()), str(n))
        n += 1
    return tuple(found[slot] for slot in range(REDIS_CLUSTER_HASH_SLOTS))


def key_schema_table(schema: KeySchema | None = None) -> str:
    """The key layout as a markdown table (for the README), built from the docstrings."""
    schema = schema or KeySchema()
    rows = ["| Key | Type | Meaning |", "| --- | --- | --- |"]
    # vars() keeps definition order, which groups the keys as the class does.
    for name, attr in vars(KeySchema).items():
        if name.startswith("_") or name in NOT_KEYS or not inspect.isfunction(attr):
            continue
        method = getattr(schema, name)
        # Placeholders named after the parameters, e.g. {room:<room_id>}:users; the
        # braces that remain are the hash tags.
        params = inspect.signature(method).parameters
        key = method(*(f"<{p}>" for p in params))
        kind, _, meaning = (inspect.getdoc(method) or "").partition(": ")
        meaning = " ".join(meaning.split())
        rows.append(f"| `{key}` | {kind} | {meaning} |")
    return "\n".join(rows)
