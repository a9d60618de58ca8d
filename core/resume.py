"""Resume: a reconnected client gets exactly what it missed, in order, on any node.

The client names each log it shows (a room, or the conversation with a user) with the
last ``seq`` it showed and that log's ``epoch``. For each, the server

1. holds the session's live deliveries of the log's channel (``Hub.hold``), then joins
   the room again if the user may still join it (listen before join, as ``join`` does),
2. reads the log's head: a changed epoch (or a seq beyond the head) is a *reset*, and
   the client is given the log from its start; a seq older than the oldest kept entry is
   a *gap*, reported with ``gn_gap`` before the rest is replayed,
3. writes the missed entries as they were pushed (``message``, or a deletion or edit
   of one), oldest first,
4. releases the held deliveries, dropping those the replay already wrote.

Steps 3 and 4 write on the path live deliveries take, without awaiting in between, so
no newer live message of the log can reach the client before the replayed ones.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from server.gaps import conversation_of, message_seq, packet_of_entry
from server.hub import Session
from server.node import Node
from server.wire import (
    CONTROL_MARK,
    Json,
    envelope,
    event_packet,
    event_packet_parts,
    open_envelope,
)
from storage.base import LogHead

from . import pushes, rooms
from .errors import Forbidden, NotFound
from .names import conversation_log, room_channel, room_log, user_channel

log = logging.getLogger("dino.resume")

MAX_LOGS = 500
PAGE = 500  # entries read per history call while replaying
LATE_COPY_WINDOW = 10.0  # seconds a replayed direct message's live copy is skipped

_MESSAGE_HEAD, _MESSAGE_TAIL = event_packet_parts(pushes.MESSAGE_EVENT)


@dataclass(frozen=True)
class LogRef:
    """A log as the client knows it: the last seq it showed, in which epoch."""

    kind: str  # "room" or "user"
    id: str
    seq: int
    epoch: str | None  # None: the client does not know (then only seqs are compared)


@dataclass
class Outcome:
    ref: LogRef
    status: str = "ok"  # ok, gap, reset, gone (no such room), refused (not admitted)
    epoch: str | None = None  # the log's epoch now
    seq: int = 0  # the newest seq replayed or known when the replay was read
    replayed: int = 0
    gap: tuple[int, int] | None = None
    error: str | None = None

    def as_activity(self) -> pushes.Activity:
        item: pushes.Activity = {
            "id": self.ref.id,
            "objectType": self.ref.kind,
            "status": self.status,
            "epoch": self.epoch,
            "seq": self.seq,
            "replayed": self.replayed,
        }
        if self.gap is not None:
            item["gap"] = {"from": self.gap[0], "to": self.gap[1]}
        if self.error is not None:
            item["error"] = self.error
        return item


@dataclass
class _Replay:
    """What was written per log, so that held live deliveries are not written twice."""

    last: dict[str, int] = field(default_factory=dict)  # log name -> last seq written


def log_name(member_id: str, ref: LogRef) -> str:
    if ref.kind == "room":
        return room_log(ref.id)
    return conversation_log(member_id, ref.id)


async def resume(
    node: Node, session: Session, refs: list[LogRef], *, user_channel_held: bool = False
) -> list[Outcome]:
    """Rejoin and replay ``refs`` for the session (see the module comment). With
    ``user_channel_held``, the caller held the user's channel already (login does, so
    that no direct message can slip in between login and the replay)."""
    assert session.member is not None
    member, hub = session.member, node.hub
    mine = user_channel(member.id)
    held = [mine] if user_channel_held else []
    if not user_channel_held and any(ref.kind == "user" for ref in refs):
        hub.hold(mine, session.sid)
        held.append(mine)
    outcomes = [Outcome(ref) for ref in refs]
    replay = _Replay()
    try:
        live: list[Outcome] = []
        for outcome in outcomes:
            ref = outcome.ref
            if ref.kind == "room":
                channel = room_channel(ref.id)
                hub.hold(channel, session.sid)
                held.append(channel)
                if ref.id not in session.rooms:
                    try:
                        await rooms.join(node, session, ref.id, with_history=False)
                    except NotFound as exc:
                        outcome.status, outcome.error = "gone", str(exc)
                        continue
                    except Forbidden as exc:
                        outcome.status, outcome.error = "refused", str(exc)
                        continue
            live.append(outcome)
        names = [log_name(member.id, o.ref) for o in live]
        heads = await node.store.log_heads(names)
        for outcome, name, head in zip(live, names, heads, strict=True):
            await _replay_log(node, session, outcome, name, head, replay)
    finally:
        # Everything below is synchronous: the held deliveries go out before anything
        # newer can be delivered to the session.
        for channel in held:
            _write_held(node, session, channel, hub.release(channel, session.sid), replay)
        conversations = [log_name(member.id, o.ref) for o in outcomes if o.ref.kind == "user"]
        _skip_late_copies(node, session, mine, conversations, replay)
    return outcomes


def _skip_late_copies(
    node: Node, session: Session, mine: str, conversations: list[str], replay: _Replay
) -> None:
    """On a Redis Cluster a direct message is published just after its append, not in
    the same step: the replay may have written one whose live copy is still on its way
    and arrives after the hold. The session's user channel ``mine`` skips such copies for
    a while (long enough for any publish in flight, short enough that a log started
    again meanwhile cannot lose a new message to an old seq); then the floors are
    dropped and the check costs one test of an empty dict."""
    written = {name: replay.last[name] for name in conversations if name in replay.last}
    if not written:
        return
    floors = session.replayed
    floors.update(written)
    until = time.monotonic() + LATE_COPY_WINDOW

    def replayed_already(payload: str) -> bool:
        if not floors:
            return False
        if time.monotonic() > until:
            floors.clear()
            return False
        seq = message_seq(payload)
        name = conversation_of(payload) if seq is not None else None
        return seq is not None and name is not None and seq <= floors.get(name, -1)

    node.hub.skip_if(mine, session.sid, replayed_already)


async def _replay_log(
    node: Node, session: Session, outcome: Outcome, name: str, head: LogHead, replay: _Replay
) -> None:
    ref = outcome.ref
    since = ref.seq
    outcome.epoch, outcome.seq = head.epoch, head.seq
    known_epoch = ref.epoch is None or ref.epoch == head.epoch
    if not known_epoch or ref.seq > head.seq:
        # The log started again (or lost its newest entries): the client's view is void,
        # and it is given the log from its start.
        outcome.status, since = "reset", 0
    if since < head.first_seq - 1 and head.seq > 0:
        outcome.gap = (since + 1, head.first_seq - 1)
        if outcome.status == "ok":
            outcome.status = "gap"
        notice = pushes.gap(ref.kind, ref.id, since + 1, head.first_seq - 1, head.epoch)
        node.hub.write(session, event_packet(pushes.GAP_EVENT, Json.dumps(notice)))
        since = head.first_seq - 1
    replay.last[name] = since
    while since < head.seq:
        entries = await node.store.history(name, before=head.seq + 1, since=since, limit=PAGE)
        if not entries:
            break  # trimmed meanwhile, or removed: the gap shows in the seqs
        for entry in entries:  # a message, or a deletion or edit of one
            node.hub.write(session, packet_of_entry(entry))
        outcome.replayed += len(entries)
        last = message_seq(envelope("", _MESSAGE_HEAD + entries[-1]))
        if last is None or last <= since:
            break
        since = replay.last[name] = last


def _write_held(
    node: Node, session: Session, channel: str, payloads: list[str], replay: _Replay
) -> None:
    """Write held live deliveries, minus the log entries the replay wrote already."""
    for payload in payloads:
        skip, text = open_envelope(payload)
        if skip == session.sid:
            continue
        seq = message_seq(payload) if skip[:1] != CONTROL_MARK else None
        if seq is not None:
            if channel.startswith("room:"):
                name: str | None = room_log(channel.removeprefix("room:"))
            else:
                name = conversation_of(payload)
            if name is not None and seq <= replay.last.get(name, -1):
                continue
        node.hub.write(session, text)
