"""The Store seam: what a node needs to keep, and the contract every store honours.

Two implementations exist: ``MemoryStore`` (the embedded default, one node only) and
``RedisStore`` (any number of nodes). ``tests/test_store_contract.py`` runs the same suite
against both, so a behaviour written here is a behaviour tested on both.

Message logs store entries as JSON text, not dicts: a node encodes an activity once, the
store adds the sequence number and hands the same text to every subscriber. See
``Fanout`` for why the publish is part of the append.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import ujson


class StoreError(Exception):
    """Base class for store failures that are not the client's fault."""


class StoreUnavailable(StoreError):
    """The backing service (Redis) cannot be reached; the request may be retried later."""


class RoomNameTaken(Exception):
    """A room with that name exists already (names are unique, compared case-sensitively)."""


@dataclass(frozen=True)
class Member:
    """A user as others see them: id and display name."""

    id: str
    name: str


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    owners: Mapping[str, str] = field(default_factory=dict)  # user id -> display name
    acl: Mapping[str, str] = field(default_factory=dict)  # acl type -> rule
    moderators: Mapping[str, str] = field(default_factory=dict)  # user id -> display name
    # Access rules per action (join, send, history, list, users) -> the rule as JSON text
    # (``core.access`` parses and checks it; the store keeps it as given).
    rules: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RoomSummary:
    id: str
    name: str
    members: int  # distinct users present, cluster-wide
    list_rule: str | None = None  # the room's access rule for "list" (JSON text), if any


@dataclass(frozen=True)
class UserPresence:
    """What the store knows of a user who has logged in at least once."""

    id: str
    name: str
    sessions: int  # sessions on any node now; 0: offline
    rooms: list[str]  # ids of the rooms the user is in, sorted
    last_seen_ms: int | None  # when the last session ended (Redis clock); None: never


ROLES = ("owner", "moderator")
"""The roles a user can hold in one room (``Store.set_role``)."""

SANCTIONS = ("ban", "mute")
"""What ``Store.impose`` keeps: a ban keeps a user out, a mute keeps them quiet."""


@dataclass(frozen=True)
class Sanction:
    """A ban or mute of one user, in one room or (bans only) everywhere."""

    user: Member
    reason: str
    by: str  # the user id who imposed it; "" for the backend
    expires_ms: int | None  # absolute UTC time in ms since the epoch; None: permanent


@dataclass(frozen=True)
class SendCheck:
    """What sending to a room from a user needs to know, read in one step."""

    rule: str | None  # the room's access rule for "send" (JSON text), if any
    mute: Sanction | None  # the user's mute in the room, expired or not


@dataclass(frozen=True)
class Dedupe:
    """Makes an append idempotent: a second append with the same ``key`` to the same log
    within ``ttl_ms`` stores and publishes nothing and returns the first one."""

    key: str
    ttl_ms: int


@dataclass(frozen=True)
class Appended:
    seq: int
    # The entry stored by the first append with the same dedupe key, when this append was
    # a retry of it (nothing was stored or published); None for a new entry.
    original: str | None = None
    epoch: str = ""  # the log's epoch the entry belongs to (see ``LogHead``)


@dataclass(frozen=True)
class LogHead:
    """Where a log stands: which life of it (``epoch``) and how far it reaches.

    A log's epoch changes whenever the log starts again from seq 1: a new in-memory store
    (a restarted node), a room removed and created again, Redis data lost. ``(epoch,
    seq)`` therefore names one message for good; a client that knows an older epoch knows
    its view of the log is void.
    """

    epoch: str | None  # None: nothing was ever appended (in this life of the store)
    seq: int  # last seq handed out; 0 for an empty log
    first_seq: int  # oldest seq still kept; seq + 1 when nothing is kept
    last: str | None  # the newest entry, or None


@dataclass(frozen=True)
class Position:
    """How far a user has read (or received) a log: ``seq`` in the log's ``epoch``."""

    epoch: str
    seq: int


@dataclass(frozen=True)
class UserStatus:
    """A user's status as others may see it, and when they were last online."""

    id: str
    status: str | None  # what the user set (online, away, invisible); None: never set
    sessions: int  # sessions on any node now; 0: offline
    last_seen_ms: int | None


@dataclass(frozen=True)
class Fanout:
    """What to publish together with a log append.

    The store publishes ``head + entry + tail`` on ``channel`` in the same atomic step as
    the append. That is what keeps delivery order equal to sequence order when several
    nodes append to one log: with a separate publish, node A could take seq 5, node B seq
    6, and B's publish could still reach subscribers first.
    """

    channel: str
    head: str
    tail: str


# Separates the fields of an encoded ``Event`` (Lua splits at it). JSON text never holds a
# raw control character (they are escaped), and routing keys are built from ids that may
# not contain one (``Event.encode`` checks).
EVENT_FIELD_SEPARATOR = "\x01"


def _json_value(value: str | int) -> str:
    # Integers as themselves, strings as JSON strings (what Lua's cjson.encode writes).
    return str(value) if isinstance(value, int) else ujson.dumps(value)


@dataclass(frozen=True)
class Event:
    """An event for the stream out (``core.events``), added by the store in the same
    atomic step as the change it describes, and only when that change happens.

    Some of its values only the store knows (the ``seq`` of an append, the rooms a dropped
    session left), so the event is a template: its JSON text is ``parts[0]``, then the
    value of ``holes[0]``, then ``parts[1]``, and so on. A hole's value is inserted as
    JSON (a number, or a quoted string), or as is when its name starts with ``=`` (a number
    inside a string, such as the index in an event id). Its routing key is
    ``routing_key``, followed by the value of ``routing_hole`` when that is not empty.
    Each store method that takes an event names the holes it fills."""

    routing_key: str
    parts: tuple[str, ...]
    holes: tuple[str, ...] = ()
    routing_hole: str = ""

    def __post_init__(self) -> None:
        if len(self.parts) != len(self.holes) + 1:
            raise ValueError("an event template needs one more part than holes")

    def text(self, values: Mapping[str, str | int]) -> str:
        out = [self.parts[0]]
        for hole, part in zip(self.holes, self.parts[1:], strict=True):
            if hole.startswith("="):
                out.append(str(values[hole[1:]]))
            else:
                out.append(_json_value(values[hole]))
            out.append(part)
        return "".join(out)

    def key(self, values: Mapping[str, str | int]) -> str:
        if not self.routing_hole:
            return self.routing_key
        return self.routing_key + str(values[self.routing_hole])

    def encode(self, maxlen: int) -> str:
        """One Lua argument: maxlen, routing key, routing hole, then the parts with the
        holes between them, joined by ``EVENT_FIELD_SEPARATOR``."""
        fields = [str(maxlen), self.routing_key, self.routing_hole, self.parts[0]]
        for hole, part in zip(self.holes, self.parts[1:], strict=True):
            fields += (hole, part)
        if any(EVENT_FIELD_SEPARATOR in f for f in fields):
            raise ValueError("an event may not contain the control character \\x01")
        return EVENT_FIELD_SEPARATOR.join(fields)


@dataclass(frozen=True)
class DropEvents:
    """The events of ``drop_session``: ``leave`` once per room its user thereby left
    (holes ``n``, 1, 2, ... per room, ``room_id``, ``user_id``, ``user_name``), and
    ``offline`` when that was the user's last session (holes ``user_id``, ``user_name``)."""

    leave: Event
    offline: Event


class Store(Protocol):
    """Rooms, presence, message logs and node leases.

    Methods that change state take the ``Event`` describing the change (``core.events``)
    and add it to the event stream atomically with the change, only if the change happens
    (an unknown room, a retried append: no event). All methods are coroutines. Methods
    raise ``StoreUnavailable`` when the backing service is down; they never leave
    half-written state that a retry cannot repair.
    """

    # -- rooms -------------------------------------------------------------------------

    async def create_room(
        self,
        room_id: str,
        name: str,
        owners: Sequence[Member],
        acl: Mapping[str, str] | None = None,
        *,
        event: Event | None = None,
    ) -> Room:
        """Create a room with its owners (none: only the backend and admins manage it)
        and ACL, in one atomic step: nobody can join it before its ACL is in place.
        Raises ``RoomNameTaken`` if ``name`` is in use.

        Of two concurrent creates with one name, exactly one succeeds. Repeating a create
        that went through (same id, name and first owner: a retry after a lost reply)
        returns the room instead of failing (and adds no ``event``). ``ValueError`` if
        ``room_id`` is in use under another name."""
        ...

    async def get_room(self, room_id: str) -> Room | None:
        """The room with its owners and ACL, or None if it does not exist."""
        ...

    async def list_rooms(self) -> list[RoomSummary]:
        """Every room with its member count, sorted by name."""
        ...

    async def set_acl(
        self, room_id: str, acl: Mapping[str, str], *, event: Event | None = None
    ) -> None:
        """Replace the room's ACL with ``acl`` (an empty mapping clears it).

        An unknown room is left alone: nothing is stored for it (nor ``event``)."""
        ...

    async def rename_room(
        self, room_id: str, name: str, *, event: Event | None = None
    ) -> str | None:
        """Give the room a new name; returns the old one, or None for an unknown room.

        Raises ``RoomNameTaken`` if another room has ``name``. Renaming to the same name
        succeeds and changes nothing (no ``event``). ``event`` hole: ``old_name``."""
        ...

    async def remove_room(
        self, room_id: str, log: str, *, event: Event | None = None
    ) -> Room | None:
        """Remove the room with its presence (every session leaves it), owners, ACL and
        its message log ``log``, atomically; returns what it was, or None for an unknown
        room. Its id is not used again (ids are uuids)."""
        ...

    async def set_role(
        self, room_id: str, member: Member, role: str | None, *, event: Event | None = None
    ) -> bool:
        """Give ``member`` the room role ``role`` (one of ``ROLES``), replacing the one
        they had; None takes their role away. False (and nothing stored, no ``event``)
        for an unknown room. ``ValueError`` for a role not in ``ROLES``."""
        ...

    async def set_rules(self, room_id: str, rules: Mapping[str, str]) -> None:
        """Replace the room's per-action access rules (action -> rule JSON text); an
        empty mapping clears them. An unknown room is left alone."""
        ...

    async def set_admin(self, member: Member, admin: bool) -> None:
        """Make ``member`` a global admin, or not any more."""
        ...

    async def is_admin(self, user_id: str) -> bool:
        """Whether ``set_admin`` made the user an admin."""
        ...

    async def admins(self) -> list[Member]:
        """The global admins set through ``set_admin``, sorted by id."""
        ...

    # -- sanctions ---------------------------------------------------------------------
    # ``scope`` is a room id, or None for the whole deployment (bans only). The store
    # keeps expiry times as given and returns expired sanctions too: the caller compares
    # ``expires_ms`` with the time, so remaining time is right across restarts and days.

    async def impose(
        self, kind: str, scope: str | None, sanction: Sanction, *, event: Event | None = None
    ) -> None:
        """Record a sanction (``kind`` in ``SANCTIONS``), replacing one the user had;
        nothing (and no ``event``) for a room that does not exist. ``ValueError`` for
        another kind, or a global mute."""
        ...

    async def lift(
        self, kind: str, scope: str | None, user_id: str, *, event: Event | None = None
    ) -> bool:
        """Remove the user's sanction; False (and no ``event``) if there was none."""
        ...

    async def sanction(self, kind: str, scope: str | None, user_id: str) -> Sanction | None:
        """The user's sanction of ``kind`` in ``scope``, expired or not; None if none."""
        ...

    async def sanctions(self, kind: str, scope: str | None) -> list[Sanction]:
        """Every sanction of ``kind`` in ``scope``, sorted by user id."""
        ...

    async def send_check(self, room_id: str, user_id: str) -> SendCheck:
        """The room's "send" rule and the user's mute there: what every message from a
        user needs, in one round trip (nothing for an unknown room)."""
        ...

    # -- presence ----------------------------------------------------------------------

    async def register_session(
        self, sid: str, member: Member, node_id: str, *, event: Event | None = None
    ) -> None:
        """Remember that session ``sid`` of ``member`` lives on node ``node_id``.

        Registering ``sid`` again moves it to ``node_id`` and renames its user in every
        room the session is in (``room_members``); its user id must stay the same."""
        ...

    async def join_room(
        self,
        room_id: str,
        sid: str,
        *,
        event: Event | None = None,
        backout_event: Event | None = None,
    ) -> bool:
        """Put registered session ``sid`` in the room.

        Returns True if its user was not in the room before (this is the user's first
        session there), False otherwise. Idempotent: joining twice returns False.
        An unregistered (or already dropped) session, or an unknown room, is not joined and
        returns False, so a join racing a disconnect cannot leave a ghost member behind.
        ``event`` is added when it returns True. A store whose join takes several steps
        may find a drop or leave raced it after ``event`` was added and back the join out:
        it then adds ``backout_event`` (the matching leave), so the stream never shows a
        join without its leave."""
        ...

    async def leave_room(self, room_id: str, sid: str, *, event: Event | None = None) -> bool:
        """Take session ``sid`` out of the room.

        Returns True if that was its user's last session in the room (the user left),
        False otherwise, including when the session was not in the room. ``event`` is
        added when it returns True."""
        ...

    async def drop_session(
        self, sid: str, *, events: DropEvents | None = None
    ) -> list[tuple[str, Member]]:
        """Forget session ``sid``: leave every room it is in, unregister it.

        Returns ``(room_id, member)`` for each room its user thereby left entirely, sorted
        by room id. Idempotent: an unknown sid returns []."""
        ...

    async def room_members(self, room_id: str) -> list[Member]:
        """The distinct users present in the room, sorted by id."""
        ...

    async def remove_from_room(
        self, room_id: str, user_id: str, *, event: Event | None = None
    ) -> list[str]:
        """Take every session of the user out of the room in one atomic step; returns
        their sids, sorted ([] and no ``event`` if the user was not in the room)."""
        ...

    async def node_sessions(self, node_id: str) -> list[str]:
        """The sessions registered on node ``node_id``, sorted."""
        ...

    async def user_presence(self, user_id: str) -> UserPresence | None:
        """The user's sessions, rooms and last seen time; None if they never logged in.

        ``drop_session`` of a user's last session stamps ``last_seen_ms``."""
        ...

    # -- node leases -------------------------------------------------------------------

    async def renew_lease(self, node_id: str, ttl_ms: int) -> bool:
        """Register the node and keep it alive for ``ttl_ms`` from now.

        Returns True if the node was registered already, False if this call registered
        it: at first start, or after peers took it for dead and removed it (then its
        sessions were dropped while it lived, and it has to register them again)."""
        ...

    async def expired_nodes(self) -> list[str]:
        """Registered nodes whose lease has run out (they died without a goodbye), sorted.

        ``RedisStore`` measures leases on the Redis server clock, so the nodes' own clocks
        need not agree."""
        ...

    async def live_nodes(self) -> list[str]:
        """Registered nodes whose lease has not run out (this one included), sorted."""
        ...

    async def put_node_stats(self, node_id: str, stats: str) -> None:
        """Replace the node's published counters (JSON text, for the admin page)."""
        ...

    async def node_stats(self, node_ids: Sequence[str]) -> dict[str, str]:
        """The published counters of those of ``node_ids`` that have any."""
        ...

    async def claim_node_cleanup(self, node_id: str, ttl_ms: int) -> bool:
        """True for exactly one caller per ``ttl_ms`` window: that caller purges the node."""
        ...

    async def forget_node(self, node_id: str) -> None:
        """Remove the node from the registry (after its sessions were dropped), and its
        published counters.

        A cleanup claim on the node stays until its ttl ends, so a slower peer that saw
        the node expire does not purge it again."""
        ...

    # -- message logs ------------------------------------------------------------------

    async def append(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout] = (),
        *,
        event: Event | None = None,
    ) -> int:
        """Append an entry to ``log`` and return its sequence number.

        The stored entry is ``'{"seq":' + str(seq) + ',"epoch":"' + epoch + '"' +
        entry_tail``, where ``entry_tail`` is the rest of a JSON object (starting with
        ``,`` or ``}``) and ``epoch`` the log's (``LogHead``). Sequence numbers start at
        1 and grow by exactly one per append; the log keeps the newest ``history_size``
        entries. The entry is published on each of ``fanouts`` atomically with the append.
        ``ValueError`` if ``entry_tail`` does not start with ``,`` or ``}``. ``event``
        (holes ``seq`` and ``epoch``) is added to the stream in the same atomic step."""
        ...

    async def append_entry(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout] = (),
        *,
        event: Event | None = None,
    ) -> Appended:
        """``append``, returning the seq together with the log's epoch."""
        ...

    async def append_once(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout],
        dedupe: Dedupe,
        *,
        event: Event | None = None,
    ) -> Appended:
        """``append``, unless an append to ``log`` with ``dedupe.key`` happened within
        ``dedupe.ttl_ms``: then nothing is stored or published, and the result carries the
        first entry. The check and the append are one atomic step, so of concurrent
        retries exactly one stores."""
        ...

    async def history(
        self, log: str, *, before: int | None, since: int | None, limit: int
    ) -> list[str]:
        """Up to ``limit`` entries of ``log``, oldest first.

        ``since``: the oldest entries with seq > since. Otherwise the newest entries.
        ``before``, when given, restricts both to seq < before. ``limit`` <= 0 or an
        unknown log: []."""
        ...

    async def add_event(self, event: Event) -> None:
        """Add ``event`` (without holes) to the event stream on its own, for a change
        that has no store step of its own to carry it."""

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
        """Replace the entry at ``seq`` of ``log`` with ``new_entry`` and append
        ``entry_tail`` (as ``append`` does, with its fanouts and ``event``, holes ``seq``
        and ``epoch`` of the appended entry), atomically; returns the new entry's seq.
        None, and nothing changed, if the entry at ``seq`` is no longer ``old_entry``
        (revised meanwhile, or trimmed)."""
        ...

    async def log_heads(self, logs: Sequence[str]) -> list[LogHead]:
        """The head of each of ``logs`` (in that order), in one round trip."""
        ...

    # -- per-user state: read positions, the user's logs, status ------------------------

    async def move_position(
        self, user_id: str, log: str, kind: str, position: Position
    ) -> Position | None:
        """Move the user's ``kind`` ("read" or "received") position in ``log`` forward to
        ``position``; returns it if it moved, None if it was there or beyond already. A
        position of another epoch (the log started again) is replaced whatever its seq."""
        ...

    async def positions(
        self, user_id: str, kind: str, logs: Sequence[str]
    ) -> list[Position | None]:
        """The user's ``kind`` position in each of ``logs`` (None: never set)."""
        ...

    async def add_user_logs(self, user_id: str, refs: Sequence[str], at_ms: int) -> None:
        """Remember that the user takes part in the logs named by ``refs`` (opaque text,
        e.g. ``room:<id>``), touched at ``at_ms``: a later touch moves a ref up."""
        ...

    async def remove_user_log(self, user_id: str, ref: str) -> None:
        """Forget ``ref`` for the user (they left the room for good)."""
        ...

    async def user_logs(self, user_id: str, limit: int) -> list[str]:
        """Up to ``limit`` refs of the user, most recently touched first."""
        ...

    async def set_status(self, user_id: str, status: str, *, event: Event | None = None) -> None:
        """Store the status the user chose (kept across sessions), with ``event``. The
        status ``invisible`` also puts the user in the set ``invisible_among`` reads."""
        ...

    async def invisible_among(self, user_ids: Sequence[str]) -> set[str]:
        """Which of ``user_ids`` are invisible, in one store command however many."""
        ...

    async def user_statuses(self, user_ids: Sequence[str]) -> list[UserStatus]:
        """Status, session count and last seen of each user (in that order), in one round
        trip; a user who never logged in has no status, 0 sessions, no last seen."""
        ...

    async def close(self) -> None:
        """Release connections (``RedisStore`` closes the client it was given)."""
        ...
