"""Users as the backend sees them: who is online, closing a user's sessions, broadcasts."""

from __future__ import annotations

from server.node import Node
from storage.base import Member, UserPresence

from . import pushes
from .control import CLOSE_OP
from .errors import NotFound
from .names import BROADCAST_CHANNEL, user_channel


async def presence(node: Node, user_id: str) -> UserPresence:
    """Sessions on every node, rooms and last seen of a user who has ever logged in."""
    found = await node.store.user_presence(user_id)
    if found is None:
        raise NotFound(f"there is no user with id '{user_id}'")
    return found


async def disconnect(node: Node, user_id: str, reason: str) -> UserPresence:
    """Close every session of the user on every node; each first receives
    gn_session_closed with ``reason``. Returns the user as they were."""
    user = await presence(node, user_id)
    notice = pushes.session_closed(reason)
    await node.publish_control(user_channel(user_id), CLOSE_OP, pushes.SESSION_CLOSED_EVENT, notice)
    return user


async def broadcast(
    node: Node, content: str, object_type: str | None, sender: Member | None
) -> pushes.Activity:
    """gn_broadcast to every connected session on every node; nothing is stored."""
    notice = pushes.broadcast(content, object_type or "notice", sender)
    await node.publish(BROADCAST_CHANNEL, pushes.BROADCAST_EVENT, notice)
    return notice
