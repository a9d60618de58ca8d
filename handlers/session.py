"""login: who the connection is. Every other event needs it first."""

from __future__ import annotations

from typing import Any

from core import pushes, sessions
from core.resume import resume
from server.auth import Identity
from server.hub import Session
from server.node import Node

from .resume import log_refs
from .validation import MAX_ID_CHARS, attribute_pairs, optional_object, optional_string


async def login(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    actor = optional_object(request, "actor")
    claimed_id = optional_string(actor, "id", "actor.", max_chars=MAX_ID_CHARS)
    name = optional_string(actor, "summary", "actor.")
    pairs = attribute_pairs(actor, "attachments", "actor.")
    token = next((content for kind, content in pairs if kind == "token"), None)
    attributes = {kind: content for kind, content in pairs if kind != "token"}
    # ``object`` with logs: resume them as part of the login, before any direct message
    # can reach the session (a separate resume event cannot promise that for those).
    refs = log_refs(request) if request.get("object") is not None else None
    member, effective = await sessions.login(
        node,
        session,
        Identity(claimed_id, name, attributes),
        token,
        hold_user_channel=refs is not None,
    )
    if refs is not None:
        outcomes = await resume(node, session, refs, user_channel_held=True)
        report = pushes.resume_reply(o.as_activity() for o in outcomes)
        await node.send(session, pushes.RESUME_EVENT, {"status_code": 200, "data": report})
    return pushes.login_reply(member, effective)
