"""status, get_status and conversations: what a user shows and what they have missed."""

from __future__ import annotations

from typing import Any

from core import conversations, pushes, status
from server.hub import Session
from server.node import Node

from .rooms import logged_in
from .validation import MAX_ID_CHARS, BadRequest, optional_int, required_string


async def set_status(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    verb = request.get("verb")
    if verb not in status.STATUSES:
        raise BadRequest(f"verb must be one of {', '.join(status.STATUSES)}")
    return {"verb": await status.set_status(node, session, verb)}


def user_ids(request: dict[str, Any]) -> list[str]:
    obj = request.get("object")
    items = obj.get("attachments") if isinstance(obj, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= status.MAX_USERS:
        raise BadRequest(f"object.attachments must be a list of 1 to {status.MAX_USERS} users")
    ids = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(f"object.attachments[{index}] must be an object with an id")
        where = f"object.attachments[{index}]."
        ids.append(required_string(item, "id", where, max_chars=MAX_ID_CHARS))
    return ids


async def get_status(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    found = await status.get(node, user_ids(request), viewer=session)
    return {
        "verb": "list",
        "object": {
            "objectType": "statuses",
            "attachments": [
                {
                    "id": s.id,
                    "status": s.status,
                    "last_seen": pushes.ms_rfc3339(s.last_seen_ms) if s.last_seen_ms else None,
                }
                for s in found
            ],
        },
    }


async def list_conversations(
    node: Node, session: Session, request: dict[str, Any]
) -> pushes.Activity:
    offset = optional_int(request, "offset", minimum=0) or 0
    limit = optional_int(request, "limit", minimum=1, maximum=conversations.MAX_PAGE)
    total, page = await conversations.listing(
        node, logged_in(session), offset, limit or conversations.DEFAULT_PAGE
    )
    return {
        "verb": "list",
        "object": {
            "objectType": "conversations",
            "totalItems": total,
            "attachments": [c.as_activity() for c in page],
        },
    }
