"""A user's conversations: direct conversations and joined rooms, newest message first,
with the last message, its seq and how many messages the user has not read.

Which logs a user takes part in is kept per user in the store: a room from its join
until the user leaves it (not when a session merely disconnects), a direct conversation
from its first message, whichever node or the HTTP API sent it. So a user who logs in
after a night offline sees every conversation that moved, with its unread count.
"""

from __future__ import annotations

from dataclasses import dataclass

import ujson

from server.node import Node
from storage.base import LogHead, Member, Position

from . import pushes
from .names import conversation_log, room_log

MAX_CONVERSATIONS = 1_000  # the most recently touched logs a listing looks at
DEFAULT_PAGE = 50
MAX_PAGE = 200


@dataclass(frozen=True)
class Conversation:
    kind: str  # "room" or "user"
    id: str  # the room's id, or the other user's
    head: LogHead
    read: int  # the user's read position in this epoch of the log (0: nothing read)

    @property
    def unread(self) -> int:
        return max(self.head.seq - self.read, 0)

    @property
    def last(self) -> pushes.Activity | None:
        return ujson.loads(self.head.last) if self.head.last is not None else None

    def as_activity(self) -> pushes.Activity:
        last = self.last
        return {
            "id": self.id,
            "objectType": self.kind,
            "epoch": self.head.epoch,
            "seq": self.head.seq,
            "read": self.read,
            "unread": self.unread,
            "last": pushes.history_entry(last) if last is not None else None,
        }


def _read_seq(position: Position | None, head: LogHead) -> int:
    # A position of another epoch was for an earlier life of the log: nothing read.
    if position is None or position.epoch != head.epoch:
        return 0
    return position.seq


async def listing(
    node: Node, user: Member, offset: int, limit: int
) -> tuple[int, list[Conversation]]:
    """(total, one page): the user's conversations, newest last message first."""
    refs = await node.store.user_logs(user.id, MAX_CONVERSATIONS)
    parsed = [ref.partition(":")[::2] for ref in refs]
    logs = [room_log(i) if k == "room" else conversation_log(user.id, i) for k, i in parsed]
    heads = await node.store.log_heads(logs)
    reads = await node.store.positions(user.id, "read", logs)
    found = [
        Conversation(kind, target_id, head, _read_seq(read, head))
        for (kind, target_id), head, read in zip(parsed, heads, reads, strict=True)
    ]
    # Newest last message first (RFC 3339 UTC text sorts by time); silent logs after,
    # in the order the user last touched them.
    dated = sorted(
        (c for c in found if c.last is not None),
        key=lambda c: str((c.last or {}).get("published", "")),
        reverse=True,
    )
    silent = [c for c in found if c.last is None]
    everything = dated + silent
    return len(everything), everything[offset : offset + limit]
