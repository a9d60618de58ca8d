"""``MemoryStore``: the embedded default for a single node, kept in plain dicts.

Every method runs to completion without awaiting, and the event loop is single-threaded,
so each call is atomic for free; the coroutine signatures only exist to honour ``Store``.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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
    UserPresence,
    UserStatus,
)
from storage.event_log import MemoryEventLog

Publish = Callable[[str, str], None]
"""``publish(channel, text)``: delivers fanout text to the subscribers of ``channel``."""


@dataclass
class _RoomState:
    name: str
    owners: dict[str, str]
    acl: dict[str, str] = field(default_factory=dict)
    moderators: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    # kind ("ban", "mute") -> user id -> sanction
    sanctions: dict[str, dict[str, Sanction]] = field(default_factory=dict)
    # Presence, as in RedisStore: sid -> uid, uid -> number of its sessions here
    # (never 0), and uid -> name of the users present.
    sessions: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)


@dataclass
class _Session:
    member: Member
    node_id: str
    rooms: set[str] = field(default_factory=set)


@dataclass
class _User:
    name: str
    sessions: set[str] = field(default_factory=set)
    last_seen_ms: int | None = None
    status: str | None = None


@dataclass
class _UserLogs:
    """Per-user state that exists before (or without) a login: positions and logs."""

    positions: dict[tuple[str, str], Position] = field(default_factory=dict)  # (kind, log)
    logs: dict[str, int] = field(default_factory=dict)  # ref -> last touch ms


@dataclass
class _Log:
    entries: deque[str]  # newest last; maxlen does the trimming
    # A fresh epoch per log per store: a restarted node (a new MemoryStore) starts every
    # log in a new epoch, which is what tells clients their seqs no longer apply.
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    seq: int = 0  # last seq handed out; entries hold seqs first_seq .. seq

    @property
    def first_seq(self) -> int:
        return self.seq - len(self.entries) + 1


class MemoryStore:
    """A ``Store`` for one node. ``publish`` is called synchronously for each fanout;
    events go to ``events`` (None: the event stream is off)."""

    def __init__(
        self, history_size: int, publish: Publish, events: MemoryEventLog | None = None
    ) -> None:
        if history_size < 1:
            raise ValueError(f"history_size must be at least 1, got {history_size}")
        self._history_size = history_size
        self._publish = publish
        self._events = events
        self._rooms: dict[str, _RoomState] = {}
        self._room_ids_by_name: dict[str, str] = {}
        self._sessions: dict[str, _Session] = {}
        self._node_sessions: dict[str, set[str]] = {}
        self._leases: dict[str, float] = {}  # node id -> expiry, time.monotonic()
        self._node_stats: dict[str, str] = {}  # node id -> JSON counters
        self._cleanup_locks: dict[str, float] = {}  # node id -> lock expiry
        self._logs: dict[str, _Log] = {}
        self._users: dict[str, _User] = {}
        self._user_logs: dict[str, _UserLogs] = {}
        # (log, dedupe key) -> (expiry, seq, entry), oldest first (one ttl setting per
        # node): expired ones are dropped from the front as new ones come.
        self._dedupe: dict[tuple[str, str], tuple[float, int, str, str]] = {}
        self._admins: dict[str, str] = {}
        self._global_bans: dict[str, Sanction] = {}

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
        existing_id = self._room_ids_by_name.get(name)
        if existing_id is not None:
            first = owners[0].id if owners else None
            if existing_id == room_id and (first is None or first in self._rooms[room_id].owners):
                return self._room(room_id)  # a retry of a create that went through
            raise RoomNameTaken(name)
        if room_id in self._rooms:
            raise ValueError(f"room id {room_id!r} is in use under another name")
        self._rooms[room_id] = _RoomState(
            name=name, owners={o.id: o.name for o in owners}, acl=dict(acl or {})
        )
        self._room_ids_by_name[name] = room_id
        self._emit(event, {})
        return self._room(room_id)

    async def get_room(self, room_id: str) -> Room | None:
        return self._room(room_id) if room_id in self._rooms else None

    async def list_rooms(self) -> list[RoomSummary]:
        summaries = [
            RoomSummary(
                id=room_id,
                name=state.name,
                members=len(state.users),
                list_rule=state.rules.get("list"),
            )
            for room_id, state in self._rooms.items()
        ]
        return sorted(summaries, key=lambda s: (s.name, s.id))

    async def set_acl(
        self, room_id: str, acl: Mapping[str, str], *, event: Event | None = None
    ) -> None:
        state = self._rooms.get(room_id)
        if state is not None:
            state.acl = dict(acl)
            self._emit(event, {})

    async def rename_room(
        self, room_id: str, name: str, *, event: Event | None = None
    ) -> str | None:
        state = self._rooms.get(room_id)
        if state is None:
            return None
        holder = self._room_ids_by_name.get(name)
        if holder is not None and holder != room_id:
            raise RoomNameTaken(name)
        old = state.name
        del self._room_ids_by_name[old]
        self._room_ids_by_name[name] = room_id
        state.name = name
        if old != name:
            self._emit(event, {"old_name": old})
        return old

    async def remove_room(
        self, room_id: str, log: str, *, event: Event | None = None
    ) -> Room | None:
        if room_id not in self._rooms:
            return None
        room = self._room(room_id)
        state = self._rooms.pop(room_id)
        del self._room_ids_by_name[state.name]
        for sid in state.sessions:
            self._sessions[sid].rooms.discard(room_id)
        self._logs.pop(log, None)
        self._emit(event, {})
        return room

    def _room(self, room_id: str) -> Room:
        state = self._rooms[room_id]
        # Copies, so that callers cannot reach into the store through the mappings.
        return Room(
            id=room_id,
            name=state.name,
            owners=dict(state.owners),
            acl=dict(state.acl),
            moderators=dict(state.moderators),
            rules=dict(state.rules),
        )

    async def set_role(
        self, room_id: str, member: Member, role: str | None, *, event: Event | None = None
    ) -> bool:
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        state = self._rooms.get(room_id)
        if state is None:
            return False
        state.owners.pop(member.id, None)
        state.moderators.pop(member.id, None)
        if role == "owner":
            state.owners[member.id] = member.name
        elif role == "moderator":
            state.moderators[member.id] = member.name
        self._emit(event, {})
        return True

    async def set_rules(self, room_id: str, rules: Mapping[str, str]) -> None:
        state = self._rooms.get(room_id)
        if state is not None:
            state.rules = dict(rules)

    async def set_admin(self, member: Member, admin: bool) -> None:
        if admin:
            self._admins[member.id] = member.name
        else:
            self._admins.pop(member.id, None)

    async def is_admin(self, user_id: str) -> bool:
        return user_id in self._admins

    async def admins(self) -> list[Member]:
        return [Member(uid, self._admins[uid]) for uid in sorted(self._admins)]

    # -- sanctions ---------------------------------------------------------------------

    def _sanctions(self, kind: str, scope: str | None) -> dict[str, Sanction] | None:
        """The user id -> sanction table of ``kind`` in ``scope``; None: unknown room."""
        if kind not in SANCTIONS or (scope is None and kind != "ban"):
            raise ValueError(f"no {kind!r} sanction in scope {scope!r}")
        if scope is None:
            return self._global_bans
        state = self._rooms.get(scope)
        return None if state is None else state.sanctions.setdefault(kind, {})

    async def impose(
        self, kind: str, scope: str | None, sanction: Sanction, *, event: Event | None = None
    ) -> None:
        table = self._sanctions(kind, scope)
        if table is not None:
            table[sanction.user.id] = sanction
            self._emit(event, {})

    async def lift(
        self, kind: str, scope: str | None, user_id: str, *, event: Event | None = None
    ) -> bool:
        table = self._sanctions(kind, scope)
        lifted = table is not None and table.pop(user_id, None) is not None
        if lifted:
            self._emit(event, {})
        return lifted

    async def sanction(self, kind: str, scope: str | None, user_id: str) -> Sanction | None:
        table = self._sanctions(kind, scope)
        return None if table is None else table.get(user_id)

    async def sanctions(self, kind: str, scope: str | None) -> list[Sanction]:
        table = self._sanctions(kind, scope) or {}
        return [table[uid] for uid in sorted(table)]

    async def send_check(self, room_id: str, user_id: str) -> SendCheck:
        state = self._rooms.get(room_id)
        if state is None:
            return SendCheck(None, None)
        return SendCheck(state.rules.get("send"), state.sanctions.get("mute", {}).get(user_id))

    # -- presence ----------------------------------------------------------------------

    async def register_session(
        self, sid: str, member: Member, node_id: str, *, event: Event | None = None
    ) -> None:
        previous = self._sessions.get(sid)
        if previous is not None:
            self._node_sessions.get(previous.node_id, set()).discard(sid)
            previous.member, previous.node_id = member, node_id
            for room_id in previous.rooms:  # a new name shows wherever the user is
                self._rooms[room_id].users[member.id] = member.name
        else:
            self._sessions[sid] = _Session(member=member, node_id=node_id)
        self._node_sessions.setdefault(node_id, set()).add(sid)
        user = self._users.setdefault(member.id, _User(member.name))
        user.name = member.name
        user.sessions.add(sid)
        self._emit(event, {})

    async def join_room(
        self,
        room_id: str,
        sid: str,
        *,
        event: Event | None = None,
        backout_event: Event | None = None,
    ) -> bool:
        # Atomic here: a join is never backed out, so ``backout_event`` is never added.
        session = self._sessions.get(sid)
        state = self._rooms.get(room_id)
        if session is None or state is None or sid in state.sessions:
            return False
        uid = session.member.id
        state.sessions[sid] = uid
        session.rooms.add(room_id)
        state.counts[uid] = state.counts.get(uid, 0) + 1
        if state.counts[uid] > 1:
            return False
        state.users[uid] = session.member.name
        self._emit(event, {})
        return True

    async def leave_room(self, room_id: str, sid: str, *, event: Event | None = None) -> bool:
        session = self._sessions.get(sid)
        if session is not None:
            session.rooms.discard(room_id)
        left = self._leave(room_id, sid)
        if left:
            self._emit(event, {})
        return left

    def _leave(self, room_id: str, sid: str) -> bool:
        """Take ``sid`` out of the room's presence; True if its user left the room."""
        state = self._rooms.get(room_id)
        uid = state.sessions.pop(sid, None) if state is not None else None
        if state is None or uid is None:
            return False
        state.counts[uid] -= 1
        if state.counts[uid] > 0:
            return False
        del state.counts[uid]
        del state.users[uid]
        return True

    async def drop_session(
        self, sid: str, *, events: DropEvents | None = None
    ) -> list[tuple[str, Member]]:
        session = self._sessions.pop(sid, None)
        if session is None:
            return []
        node_sessions = self._node_sessions.get(session.node_id, set())
        node_sessions.discard(sid)
        if not node_sessions:
            self._node_sessions.pop(session.node_id, None)
        left = [room_id for room_id in sorted(session.rooms) if self._leave(room_id, sid)]
        user = self._users[session.member.id]
        user.sessions.discard(sid)
        if events is not None:
            who = {"user_id": session.member.id, "user_name": session.member.name}
            for n, room_id in enumerate(left, 1):
                self._emit(events.leave, {**who, "n": n, "room_id": room_id})
        if not user.sessions:
            user.last_seen_ms = int(time.time() * 1000)
            if events is not None:
                self._emit(events.offline, who)
        return [(room_id, session.member) for room_id in left]

    async def room_members(self, room_id: str) -> list[Member]:
        state = self._rooms.get(room_id)
        users = state.users if state is not None else {}
        return [Member(id=uid, name=users[uid]) for uid in sorted(users)]

    async def remove_from_room(
        self, room_id: str, user_id: str, *, event: Event | None = None
    ) -> list[str]:
        state = self._rooms.get(room_id)
        if state is None:
            return []
        sids = sorted(sid for sid, uid in state.sessions.items() if uid == user_id)
        for sid in sids:
            self._sessions[sid].rooms.discard(room_id)
            self._leave(room_id, sid)
        if sids:
            self._emit(event, {})
        return sids

    async def node_sessions(self, node_id: str) -> list[str]:
        return sorted(self._node_sessions.get(node_id, ()))

    async def user_presence(self, user_id: str) -> UserPresence | None:
        user = self._users.get(user_id)
        if user is None:
            return None
        rooms = {room for sid in user.sessions for room in self._sessions[sid].rooms}
        return UserPresence(
            user_id, user.name, len(user.sessions), sorted(rooms), user.last_seen_ms
        )

    # -- node leases -------------------------------------------------------------------
    # A single node never outlives itself, but the semantics match RedisStore's so that
    # the lease code in the server is exercised the same way on both stores.

    async def renew_lease(self, node_id: str, ttl_ms: int) -> bool:
        registered = node_id in self._leases
        self._leases[node_id] = time.monotonic() + ttl_ms / 1000
        return registered

    async def expired_nodes(self) -> list[str]:
        now = time.monotonic()
        return sorted(node_id for node_id, expiry in self._leases.items() if expiry <= now)

    async def live_nodes(self) -> list[str]:
        now = time.monotonic()
        return sorted(node_id for node_id, expiry in self._leases.items() if expiry > now)

    async def put_node_stats(self, node_id: str, stats: str) -> None:
        self._node_stats[node_id] = stats

    async def node_stats(self, node_ids: Sequence[str]) -> dict[str, str]:
        return {n: self._node_stats[n] for n in node_ids if n in self._node_stats}

    async def claim_node_cleanup(self, node_id: str, ttl_ms: int) -> bool:
        now = time.monotonic()
        held_until = self._cleanup_locks.get(node_id)
        if held_until is not None and held_until > now:
            return False
        self._cleanup_locks[node_id] = now + ttl_ms / 1000
        return True

    async def forget_node(self, node_id: str) -> None:
        self._leases.pop(node_id, None)
        self._node_stats.pop(node_id, None)

    # -- message logs ------------------------------------------------------------------

    async def append_once(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout],
        dedupe: Dedupe,
        *,
        event: Event | None = None,
    ) -> Appended:
        now = time.monotonic()
        while self._dedupe:  # forget what expired, oldest first
            oldest = next(iter(self._dedupe))
            if self._dedupe[oldest][0] > now:
                break
            del self._dedupe[oldest]
        known = self._dedupe.get((log, dedupe.key))
        if known is not None:
            return Appended(known[1], original=known[2], epoch=known[3])
        appended = await self.append_entry(log, entry_tail, fanouts, event=event)
        entry = f'{{"seq":{appended.seq},"epoch":"{appended.epoch}"{entry_tail}'
        expiry = now + dedupe.ttl_ms / 1000
        self._dedupe[(log, dedupe.key)] = (expiry, appended.seq, entry, appended.epoch)
        return appended

    async def append(
        self,
        log: str,
        entry_tail: str,
        fanouts: Sequence[Fanout] = (),
        *,
        event: Event | None = None,
    ) -> int:
        return (await self.append_entry(log, entry_tail, fanouts, event=event)).seq

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
        state = self._logs.get(log)
        if state is None:
            state = self._logs[log] = _Log(entries=deque(maxlen=self._history_size))
        state.seq += 1
        entry = f'{{"seq":{state.seq},"epoch":"{state.epoch}"{entry_tail}'
        state.entries.append(entry)
        for fanout in fanouts:
            # Synchronously and before the next append can run: delivery order = seq order.
            self._publish(fanout.channel, fanout.head + entry + fanout.tail)
        self._emit(event, {"seq": state.seq, "epoch": state.epoch})
        return Appended(state.seq, epoch=state.epoch)

    async def log_heads(self, logs: Sequence[str]) -> list[LogHead]:
        heads = []
        for log in logs:
            state = self._logs.get(log)
            if state is None:
                heads.append(LogHead(None, 0, 1, None))
                continue
            last = state.entries[-1] if state.entries else None
            heads.append(LogHead(state.epoch, state.seq, state.first_seq, last))
        return heads

    async def history(
        self, log: str, *, before: int | None, since: int | None, limit: int
    ) -> list[str]:
        state = self._logs.get(log)
        if state is None or limit <= 0 or not state.entries:
            return []
        # Seqs in the log are contiguous, so a seq range maps straight to deque indexes.
        lo = state.first_seq if since is None else max(state.first_seq, since + 1)
        hi = state.seq if before is None else min(state.seq, before - 1)
        if since is None:
            lo = max(lo, hi - limit + 1)  # the newest ``limit`` below ``before``
        else:
            hi = min(hi, lo + limit - 1)  # the oldest ``limit`` above ``since``
        if lo > hi:
            return []
        first = state.first_seq
        return list(itertools.islice(state.entries, lo - first, hi - first + 1))

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
        state = self._logs.get(log)
        if state is None or not state.first_seq <= seq <= state.seq:
            return None
        index = seq - state.first_seq
        if state.entries[index] != old_entry:
            return None
        state.entries[index] = new_entry
        return await self.append(log, entry_tail, fanouts, event=event)

    async def add_event(self, event: Event) -> None:
        self._emit(event, {})

    def _emit(self, event: Event | None, values: Mapping[str, str | int]) -> None:
        """Add ``event`` to the stream, within the same step as its change."""
        if event is not None and self._events is not None:
            self._events.add(event.key(values), event.text(values))

    # -- per-user state ------------------------------------------------------------------

    def _of(self, user_id: str) -> _UserLogs:
        return self._user_logs.setdefault(user_id, _UserLogs())

    async def move_position(
        self, user_id: str, log: str, kind: str, position: Position
    ) -> Position | None:
        if kind not in ("read", "received"):
            raise ValueError(f"kind must be 'read' or 'received', not {kind!r}")
        positions = self._of(user_id).positions
        old = positions.get((kind, log))
        if old is not None and old.epoch == position.epoch and old.seq >= position.seq:
            return None
        positions[(kind, log)] = position
        return position

    async def positions(
        self, user_id: str, kind: str, logs: Sequence[str]
    ) -> list[Position | None]:
        if kind not in ("read", "received"):
            raise ValueError(f"kind must be 'read' or 'received', not {kind!r}")
        positions = self._of(user_id).positions
        return [positions.get((kind, log)) for log in logs]

    async def add_user_logs(self, user_id: str, refs: Sequence[str], at_ms: int) -> None:
        logs = self._of(user_id).logs
        for ref in refs:
            logs[ref] = at_ms

    async def remove_user_log(self, user_id: str, ref: str) -> None:
        self._of(user_id).logs.pop(ref, None)

    async def user_logs(self, user_id: str, limit: int) -> list[str]:
        logs = self._of(user_id).logs
        # Newest touch first; equal touches in reverse ref order, as Redis's ZREVRANGE.
        ordered = sorted(logs, key=lambda ref: (logs[ref], ref), reverse=True)
        return ordered[: max(limit, 0)]

    async def set_status(self, user_id: str, status: str, *, event: Event | None = None) -> None:
        self._users.setdefault(user_id, _User(user_id)).status = status
        self._emit(event, {})

    async def invisible_among(self, user_ids: Sequence[str]) -> set[str]:
        users = self._users
        return {uid for uid in user_ids if uid in users and users[uid].status == "invisible"}

    async def user_statuses(self, user_ids: Sequence[str]) -> list[UserStatus]:
        found = []
        for user_id in user_ids:
            user = self._users.get(user_id)
            if user is None:
                found.append(UserStatus(user_id, None, 0, None))
            else:
                found.append(
                    UserStatus(user_id, user.status, len(user.sessions), user.last_seen_ms)
                )
        return found

    async def close(self) -> None:
        """Nothing to release."""
