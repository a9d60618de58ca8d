"""login: who the connection is. Every other event needs it first."""

from __future__ import annotations

from typing import Any

from core import pushes, sessions
from server.auth import Identity
from server.hub import Session
from server.node import Node

from .validation import MAX_ID_CHARS, attribute_pairs, optional_object, optional_string


async def login(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    actor = optional_object(request, "actor")
    claimed_id = optional_string(actor, "id", "actor.", max_chars=MAX_ID_CHARS)
    name = optional_string(actor, "summary", "actor.")
    pairs = attribute_pairs(actor, "attachments", "actor.")
    token = next((content for kind, content in pairs if kind == "token"), None)
    attributes = {kind: content for kind, content in pairs if kind != "token"}
    member, effective = await sessions.login(
        node, session, Identity(claimed_id, name, attributes), token
    )
    return pushes.login_reply(member, effective)
