"""message and history: the two events that touch message logs."""

from __future__ import annotations

from typing import Any

from core import messages, pushes
from core.messages import MAX_HISTORY_LIMIT, Target
from server.hub import Session
from server.node import Node
from server.wire import Json

from .rooms import logged_in
from .validation import (
    MAX_ID_CHARS,
    BadRequest,
    message_content,
    optional_int,
    optional_string,
    required_object,
    required_string,
)

MAX_CLIENT_ID_CHARS = 200  # a client's own message id (object.id)


def target(request: dict[str, Any]) -> Target:
    """The request's target: a room (the default) or a user."""
    obj = required_object(request, "target")
    kind = optional_string(obj, "objectType", "target.") or "room"
    if kind not in ("room", "user"):
        raise BadRequest(f"target.objectType must be 'room' or 'user', not '{kind}'")
    return Target(kind, required_string(obj, "id", "target.", max_chars=MAX_ID_CHARS))


async def message(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    sender = logged_in(session)
    to = target(request)
    obj = required_object(request, "object")
    text = message_content(obj)
    object_type = optional_string(obj, "objectType", "object.")
    if to.kind == "user" and not node.limits.conversations.allow(sender.id, to.id):
        raise BadRequest(
            "too many new conversations: at most "
            f"{node.limits.conversations.limit} users per hour"
        )
    # ``object.id``: the client's own id for the message. A retry with the same id
    # (its reply was lost) stores nothing new and gets the first message back.
    client_id = optional_string(obj, "id", "object.", max_chars=MAX_CLIENT_ID_CHARS)
    return await messages.send(
        node,
        sender,
        to,
        text,
        object_type,
        from_session=session,
        # Scoped apart from the HTTP API's "api:" keys.
        idempotency_key=None if client_id is None else "client:" + client_id,
    )


async def history(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    to = target(request)
    before = optional_int(request, "before", minimum=1)
    since = optional_int(request, "since", minimum=0)
    limit = optional_int(request, "limit", minimum=1, maximum=MAX_HISTORY_LIMIT)
    found = await messages.history(
        node, to, before=before, since=since, limit=limit, reader=session
    )
    # 500 entries of 10 KiB would outgrow the send buffer and drop the reader as a slow
    # consumer: the reply is cut at --max-history-reply-bytes and says there is more.
    # Catching up (since) keeps the oldest entries; paging back keeps the newest.
    entries = [pushes.history_entry(m) for m in found]
    kept = within_bytes(entries, node.settings.max_history_reply_bytes, oldest=since is not None)
    reply = pushes.listing(to.id, "history", kept)
    if len(kept) < len(entries):
        reply["more"] = True
    return reply


def within_bytes(
    entries: list[pushes.Activity], budget: int, *, oldest: bool
) -> list[pushes.Activity]:
    """The longest run of ``entries`` (oldest first) from the old end (``oldest``) or the
    new end whose JSON fits in ``budget`` bytes; at least one entry."""
    ordered = entries if oldest else entries[::-1]
    kept: list[pushes.Activity] = []
    used = 0
    for entry in ordered:
        used += len(Json.dumps(entry).encode()) + 1
        if kept and used > budget:
            break
        kept.append(entry)
    return kept if oldest else kept[::-1]
