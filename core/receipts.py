"""Read and delivery positions, and the receipts they send.

A user's position in a log is one ``seq`` (with the log's epoch), not a row per message:
``read`` and ``received`` move it forward only. Unread counts are the log's last seq
minus the read position (``core.conversations``).

Receipts go to the senders of the messages the position passed: in a direct
conversation always (to the other user's sessions), in a room while it has at most
``--receipts-max-room-size`` members (a receipt per reader per sender would swamp a big
room). The reader's own other sessions hear it too, so their unread badges follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import ujson

from server.hub import Session
from server.node import Node
from storage.base import Position

from . import pushes, roles
from .errors import BadRequest
from .messages import MAX_HISTORY_LIMIT, Target
from .names import conversation_log, room_log, user_channel
from .rooms import get_room

KINDS = {"read": pushes.MESSAGE_READ_EVENT, "received": pushes.MESSAGE_RECEIVED_EVENT}


@dataclass(frozen=True)
class Moved:
    position: Position
    moved: bool  # False: the position was there or beyond already (nothing sent)


async def log_of(node: Node, session: Session, target: Target) -> str:
    """The log ``target`` names for the session's user; a room must admit them."""
    assert session.member is not None
    if target.kind == "room":
        room = await get_room(node, target.id)
        await roles.require_access(node, room, session.member, session.attributes, "history")
        return room_log(room.id)
    return conversation_log(session.member.id, target.id)


async def mark(node: Node, session: Session, target: Target, kind: str, seq: int) -> Moved:
    """Move the user's ``kind`` ("read" or "received") position in the log to ``seq``
    and send receipts if it moved."""
    assert session.member is not None
    reader = session.member
    log = await log_of(node, session, target)
    [head] = await node.store.log_heads([log])
    if head.epoch is None or seq > head.seq:
        raise BadRequest(f"object.seq {seq} is beyond the last message of the log ({head.seq})")
    [before] = await node.store.positions(reader.id, kind, [log])
    wanted = Position(head.epoch, seq)
    if await node.store.move_position(reader.id, log, kind, wanted) is None:
        return Moved(before or wanted, moved=False)
    old = before.seq if before is not None and before.epoch == head.epoch else 0
    receipt = pushes.receipt(kind, reader, target.kind, target.id, seq, head.epoch)
    event = KINDS[kind]
    await node.publish(user_channel(reader.id), event, receipt, skip_sid=session.sid)
    for sender in await _senders(node, log, target, reader.id, old, seq):
        await node.publish(user_channel(sender), event, receipt)
    return Moved(wanted, moved=True)


async def _senders(
    node: Node, log: str, target: Target, reader_id: str, old: int, new: int
) -> list[str]:
    """Who sent the messages (old, new] of the log, the reader left out."""
    if target.kind == "user":
        return [] if target.id == reader_id else [target.id]
    members = await node.store.room_members(target.id)
    if len(members) > node.settings.receipts_max_room_size:
        return []
    first = max(old, new - MAX_HISTORY_LIMIT)
    entries = await node.store.history(log, before=new + 1, since=first, limit=new - first)
    senders = {ujson.loads(e).get("actor", {}).get("id") for e in entries}
    return sorted(s for s in senders if isinstance(s, str) and s != reader_id)
