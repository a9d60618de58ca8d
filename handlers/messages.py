"""message and history: the two events that touch message logs."""

from __future__ import annotations

import uuid
from typing import Any

import ujson

from server.hub import Session, room_channel, room_log, user_channel
from server.node import Node
from server.wire import activity_tail

from .activities import Activity, actor, history_entry, listing, now_rfc3339
from .rooms import existing_room, logged_in, require_admission
from .validation import (
    MAX_ID_CHARS,
    BadRequest,
    optional_int,
    optional_string,
    required_object,
    required_string,
    utf8_size,
)

MAX_HISTORY_LIMIT = 500
DEFAULT_HISTORY_LIMIT = 50


def conversation_log(user_a: str, user_b: str) -> str:
    """The log of messages between two users, the same whichever of them asks.

    The first id's length is part of the name, so no pair of ids can spell another
    pair's name even when ids contain the separator."""
    first, second = sorted((user_a, user_b))
    return f"dm:{len(first)}:{first}:{second}"


def _target(request: dict[str, Any]) -> tuple[str, str]:
    """(kind, id) of the request's target: kind is "room" or "user"."""
    target = required_object(request, "target")
    kind = optional_string(target, "objectType", "target.") or "room"
    if kind not in ("room", "user"):
        raise BadRequest(f"target.objectType must be 'room' or 'user', not '{kind}'")
    return kind, required_string(target, "id", "target.", max_chars=MAX_ID_CHARS)


def _content(node: Node, request: dict[str, Any]) -> tuple[str, str | None]:
    obj = required_object(request, "object")
    content = obj.get("content")
    if not isinstance(content, str):
        raise BadRequest("object.content must be a string")
    if not content.strip():
        raise BadRequest("object.content must not be empty")
    size = utf8_size(content, "object.content")
    limit = node.settings.max_message_bytes
    if size > limit:
        raise BadRequest(f"object.content is {size} bytes; the limit is {limit}")
    return content, optional_string(obj, "objectType", "object.")


async def message(node: Node, session: Session, request: dict[str, Any]) -> Activity:
    sender = logged_in(session)
    kind, target_id = _target(request)
    content, object_type = _content(node, request)
    if kind == "room" and target_id not in session.rooms:
        raise BadRequest(f"join room '{target_id}' before sending to it")
    if kind == "user" and not node.limits.conversations.allow(sender.id, target_id):
        raise BadRequest(
            "too many new conversations: at most "
            f"{node.limits.conversations.limit} users per hour"
        )
    activity: Activity = {
        "id": str(uuid.uuid4()),
        "published": now_rfc3339(),
        "verb": "send",
        "actor": actor(sender),
        "target": {"id": target_id, "objectType": kind},
        "object": {
            "content": content,
            "objectType": object_type or ("group" if kind == "room" else "private"),
        },
    }
    tail = activity_tail(activity)
    if kind == "room":
        # Every member, the sender included, receives the message.
        channels, log, skip = [room_channel(target_id)], room_log(target_id), ""
    else:
        # The recipient's sessions, and the sender's other sessions (tabs, devices).
        channels = sorted({user_channel(target_id), user_channel(sender.id)})
        log, skip = conversation_log(sender.id, target_id), session.sid
    seq = await node.append_and_publish(log, tail, channels, "message", skip_sid=skip)
    return {"seq": seq, **activity}


async def history(node: Node, session: Session, request: dict[str, Any]) -> Activity:
    me = logged_in(session)
    kind, target_id = _target(request)
    before = optional_int(request, "before", minimum=1)
    since = optional_int(request, "since", minimum=0)
    limit = optional_int(request, "limit", minimum=1, maximum=MAX_HISTORY_LIMIT)
    if kind == "room":
        require_admission(await existing_room(node, target_id), session)
        log = room_log(target_id)
    else:
        log = conversation_log(me.id, target_id)
    entries = await node.store.history(
        log, before=before, since=since, limit=limit or DEFAULT_HISTORY_LIMIT
    )
    # 500 entries of 10 KiB would outgrow the send buffer and drop the reader as a slow
    # consumer: the reply is cut at --max-history-reply-bytes and says there is more.
    # Catching up (since) keeps the oldest entries; paging back keeps the newest.
    kept = within_bytes(entries, node.settings.max_history_reply_bytes, oldest=since is not None)
    reply = listing(target_id, "history", [history_entry(ujson.loads(e)) for e in kept])
    if len(kept) < len(entries):
        reply["more"] = True
    return reply


def within_bytes(entries: list[str], budget: int, *, oldest: bool) -> list[str]:
    """The longest run of ``entries`` (oldest first) from the old end (``oldest``) or the
    new end whose JSON fits in ``budget`` bytes; at least one entry."""
    ordered = entries if oldest else entries[::-1]
    kept: list[str] = []
    used = 0
    for entry in ordered:
        used += len(entry.encode()) + 1
        if kept and used > budget:
            break
        kept.append(entry)
    return kept if oldest else kept[::-1]
