"""login: who the connection is. Every other event needs it first."""

from __future__ import annotations

from typing import Any

from server import expiry
from server.auth import Identity
from server.hub import Session, room_channel, user_channel
from server.node import Node
from storage.base import Member

from .activities import Activity
from .presence import announce_left
from .validation import MAX_ID_CHARS, BadRequest, attribute_pairs, optional_object, optional_string


async def login(node: Node, session: Session, request: dict[str, Any]) -> Activity:
    actor = optional_object(request, "actor")
    claimed_id = optional_string(actor, "id", "actor.", max_chars=MAX_ID_CHARS)
    name = optional_string(actor, "summary", "actor.")
    pairs = attribute_pairs(actor, "attachments", "actor.")
    token = next((content for kind, content in pairs if kind == "token"), session.token)
    attributes = {kind: content for kind, content in pairs if kind != "token"}

    identity = node.auth.authenticate(Identity(claimed_id, name, attributes), token)
    assert identity.id is not None  # every authenticator guarantees an id
    if session.member is not None and session.member.id != identity.id:
        raise BadRequest(
            f"this connection is logged in as '{session.member.id}'; reconnect to log in "
            "as another user"
        )
    member = Member(identity.id, identity.name or identity.id)
    await node.store.register_session(session.sid, member, node.node_id)
    await node.hub.listen(user_channel(member.id), session.sid)
    session.member = member
    session.attributes = dict(identity.attributes)
    expiry.arm(node, session, identity.expires_at)  # a fresh token re-arms it
    return {
        "verb": "login",
        "actor": {
            "id": member.id,
            "summary": member.name,
            "attachments": [{"objectType": k, "content": v} for k, v in session.attributes.items()],
        },
    }


async def disconnect(node: Node, session: Session) -> None:
    """Leave every room: local routing at once, the store and the others' lists after."""
    for room_id in session.rooms:
        await node.hub.unlisten(room_channel(room_id), session.sid)
    if session.member is None:
        return
    await node.hub.unlisten(user_channel(session.member.id), session.sid)
    await drop_from_store(node, session.sid)


async def drop_from_store(node: Node, sid: str) -> None:
    """Remove a session cluster-wide and tell each room its user left entirely."""
    for room_id, member in await node.store.drop_session(sid):
        await announce_left(node, member, room_id)
