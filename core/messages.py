"""Messages: send to a room or a user, and read a log's history."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import ujson

from server.hub import Session
from server.node import Node
from server.wire import activity_tail
from storage.base import Dedupe, Member, Position

from . import events, pushes, roles
from .clock import now_ms
from .errors import BadRequest
from .names import conversation_log, log_ref, room_channel, room_log, user_channel
from .rooms import get_room
from .sanctions import check_sender

MAX_HISTORY_LIMIT = 500
DEFAULT_HISTORY_LIMIT = 50


@dataclass(frozen=True)
class Target:
    kind: str  # "room" or "user"
    id: str


async def send(
    node: Node,
    sender: Member,
    target: Target,
    content: str,
    object_type: str | None,
    *,
    from_session: Session | None = None,
    idempotency_key: str | None = None,
) -> pushes.Activity:
    """Store a message and deliver it as ``message`` on every node; returns it with its
    ``seq``. From a session, a room message needs the session in the room; from the
    backend (no session), the room only has to exist.

    With ``idempotency_key``, a retry (same sender, same log, same key, within the
    node's ``idempotency_ttl``) stores and delivers nothing and returns the first one."""
    size = len(content.encode("utf-8"))
    if size > node.settings.max_message_bytes:
        limit = node.settings.max_message_bytes
        raise BadRequest(f"object.content is {size} bytes; the limit is {limit}")
    skip = ""
    if target.kind == "room":
        if from_session is not None and target.id not in from_session.rooms:
            raise BadRequest(f"join room '{target.id}' before sending to it")
        if from_session is None:
            await get_room(node, target.id)
        else:
            # Checked on every message (one store round trip), so a new rule or a mute
            # counts at once on every node.
            await check_sender(node, target.id, sender, from_session.attributes)
        # Every member, the sender included, receives the message.
        channels, log = [room_channel(target.id)], room_log(target.id)
    else:
        # The recipient's sessions, and the sender's other sessions (tabs, devices).
        channels = sorted({user_channel(target.id), user_channel(sender.id)})
        log = conversation_log(sender.id, target.id)
        skip = from_session.sid if from_session is not None else ""
    kind = object_type or ("group" if target.kind == "room" else "private")
    message = pushes.message(str(uuid.uuid4()), sender, target.kind, target.id, content, kind)
    tail = activity_tail(message)
    if target.kind == "user":
        # The recipient's conversation list shows this one first, and the sender's when
        # a user sent it (a backend's notifier is no user: it keeps no list).
        at = now_ms()
        touches = [node.store.add_user_logs(target.id, [log_ref("user", sender.id)], at)]
        if from_session is not None:
            touches.append(node.store.add_user_logs(sender.id, [log_ref("user", target.id)], at))
        await asyncio.gather(*touches)
    dedupe = None
    if idempotency_key is not None:
        ttl_ms = int(node.settings.idempotency_ttl * 1000)
        dedupe = Dedupe(f"{sender.id}\n{idempotency_key}", ttl_ms)
    event = events.message_sent(node, message, log)
    appended = await node.append_entry(
        log, tail, channels, pushes.MESSAGE_EVENT, skip, dedupe, stream_event=event
    )
    if appended.original is not None:
        first: pushes.Activity = ujson.loads(appended.original)
        return first
    if from_session is not None:
        # One's own message is read: it does not count as unread for the sender.
        position = Position(appended.epoch, appended.seq)
        await node.store.move_position(sender.id, log, "read", position)
    return {"seq": appended.seq, "epoch": appended.epoch, **message}


async def history(
    node: Node,
    target: Target,
    *,
    before: int | None,
    since: int | None,
    limit: int | None,
    reader: Session | None,
) -> list[pushes.Activity]:
    """Messages of a room (which must admit the reading session) or of the conversation
    between the reading session's user and the target user, oldest first. ``reader`` None
    is the backend, which reads rooms only."""
    if target.kind == "room":
        room = await get_room(node, target.id)
        if reader is not None:
            assert reader.member is not None
            await roles.require_access(node, room, reader.member, reader.attributes, "history")
        log = room_log(target.id)
    elif reader is not None and reader.member is not None:
        log = conversation_log(reader.member.id, target.id)
    else:
        raise BadRequest("a conversation's history is read by one of its users")
    entries = await node.store.history(
        log, before=before, since=since, limit=limit or DEFAULT_HISTORY_LIMIT
    )
    return [ujson.loads(e) for e in entries]
