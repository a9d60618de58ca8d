"""message and history: the two events that touch message logs."""

from __future__ import annotations

from typing import Any

from core import messages, pushes
from core.messages import MAX_HISTORY_LIMIT, Target
from server.hub import Session
from server.node import Node

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
    return await messages.send(node, sender, to, text, object_type, from_session=session)


async def history(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    to = target(request)
    before = optional_int(request, "before", minimum=1)
    since = optional_int(request, "since", minimum=0)
    limit = optional_int(request, "limit", minimum=1, maximum=MAX_HISTORY_LIMIT)
    found = await messages.history(
        node, to, before=before, since=since, limit=limit, reader=session
    )
    return pushes.listing(to.id, "history", [pushes.history_entry(m) for m in found])
