"""Deleting and editing messages: the log keeps one entry per message, changed in place,
plus an entry of its own (its own ``seq``) saying what changed.

A deleted message stays in history without its content and with ``deleted`` (when); an
edited one shows its latest content and ``updated`` (when). The change is an entry of
the log, delivered as gn_message_deleted / gn_message_edited: a client that catches up
with ``history since`` sees it at its place in the sequence, and a node repairing a gap
re-delivers it as what it was.
"""

from __future__ import annotations

from datetime import datetime

import ujson

from server.node import Node
from server.wire import Json, activity_tail, envelope, event_packet_parts
from storage.base import Fanout, Member

from . import events, pushes, roles
from .errors import BadRequest, Conflict, Forbidden, NotFound
from .messages import Target
from .names import conversation_log, room_channel, room_log, user_channel
from .rooms import get_room
from .sanctions import now_ms


async def _find(node: Node, log: str, message_id: str) -> tuple[str, pushes.Activity]:
    """The stored text and activity of a message still in the log."""
    entries = await node.store.history(
        log, before=None, since=None, limit=node.settings.history_size
    )
    for text in reversed(entries):
        if message_id not in text:  # cheap filter before parsing
            continue
        entry: pushes.Activity = ujson.loads(text)
        if entry.get("id") == message_id and entry.get("verb", "send") == "send":
            if "deleted" in entry:
                raise NotFound(f"message '{message_id}' is deleted already")
            return text, entry
    raise NotFound(f"there is no message '{message_id}' in the recent history of this log")


def _age_seconds(entry: pushes.Activity) -> float:
    published = entry.get("published")
    try:
        moment = datetime.fromisoformat(str(published))
    except ValueError:
        return float("inf")
    return now_ms() / 1000 - moment.timestamp()


async def _where(node: Node, target: Target, by: Member | None) -> tuple[str, list[str], int]:
    """The log, its channels and the caller's rank there (members of a conversation rank
    as members; the backend as the backend)."""
    if target.kind == "room":
        room = await get_room(node, target.id)
        return room_log(room.id), [room_channel(room.id)], await roles.rank(node, room, by)
    if by is None:
        raise BadRequest("a conversation's messages are changed by one of its users")
    channels = sorted({user_channel(target.id), user_channel(by.id)})
    return conversation_log(by.id, target.id), channels, roles.MEMBER


def _check_window(node: Node, entry: pushes.Activity, what: str) -> None:
    window = node.settings.edit_window
    if _age_seconds(entry) > window:
        raise Forbidden(f"a message can be {what} by its sender within {window:g} seconds only")


async def _revise(
    node: Node,
    log: str,
    channels: list[str],
    text: str,
    entry: pushes.Activity,
    changed: pushes.Activity,
    revision: pushes.Activity,
) -> pushes.Activity:
    event = pushes.REVISION_EVENTS[revision["verb"]]
    head, tail = event_packet_parts(event)
    fanouts = [Fanout(channel, envelope("", head), tail) for channel in channels]
    seq = await node.store.revise(
        log,
        int(entry["seq"]),
        text,
        Json.dumps(changed),
        activity_tail(revision),
        fanouts,
        event=events.revised(node, revision, log),
    )
    if seq is None:
        raise Conflict(f"message '{entry.get('id')}' changed meanwhile; try again")
    stored: pushes.Activity = {"seq": seq}
    if "epoch" in entry:
        # The revision is in the original's epoch: revise found the original unchanged,
        # so the log has not started again since.
        stored["epoch"] = entry["epoch"]
    return {**stored, **revision}


async def delete(node: Node, target: Target, message_id: str, by: Member | None) -> pushes.Activity:
    """By its sender within ``--edit-window``, or by a moderator, owner or admin of the
    room at any time (in a conversation, each user deletes their own messages)."""
    log, channels, rank = await _where(node, target, by)
    text, entry = await _find(node, log, message_id)
    sender = entry.get("actor", {}).get("id")
    if by is not None and rank < roles.MODERATOR:
        if sender != by.id:
            raise Forbidden("only its sender or a moderator can delete a message")
        _check_window(node, entry, "deleted")
    changed = dict(entry)
    changed["object"] = {k: v for k, v in entry.get("object", {}).items() if k != "content"}
    changed["deleted"] = pushes.now_rfc3339()
    revision = pushes.revision("delete", by, target.kind, target.id, entry, None)
    return await _revise(node, log, channels, text, entry, changed, revision)


async def edit(
    node: Node, target: Target, message_id: str, content: str, by: Member | None
) -> pushes.Activity:
    """By its sender within ``--edit-window`` (or the backend): new content."""
    size = len(content.encode("utf-8"))
    if size > node.settings.max_message_bytes:
        limit = node.settings.max_message_bytes
        raise BadRequest(f"object.content is {size} bytes; the limit is {limit}")
    log, channels, _ = await _where(node, target, by)
    text, entry = await _find(node, log, message_id)
    if by is not None:
        if entry.get("actor", {}).get("id") != by.id:
            raise Forbidden("only its sender can edit a message")
        _check_window(node, entry, "edited")
    changed = dict(entry)
    changed["object"] = {**entry.get("object", {}), "content": content}
    changed["updated"] = pushes.now_rfc3339()
    revision = pushes.revision("edit", by, target.kind, target.id, entry, content)
    return await _revise(node, log, channels, text, entry, changed, revision)
