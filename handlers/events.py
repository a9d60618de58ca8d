"""Which handler serves which event; the event ``E`` is answered as ``gn_E`` by the
namespace (server/namespace.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.hub import Session
from server.node import Node

from . import messages, moderation, receipts, resume, rooms, session, status

Handler = Callable[[Node, Session, dict[str, Any]], Awaitable[dict[str, Any] | None]]

EVENTS: dict[str, Handler] = {
    "login": session.login,
    "create": rooms.create,
    "list_rooms": rooms.list_rooms,
    "join": rooms.join,
    "leave": rooms.leave,
    "users_in_room": rooms.users_in_room,
    "set_acl": rooms.set_acl,
    "rename_room": rooms.rename_room,
    "remove_room": rooms.remove_room,
    "message": messages.message,
    "history": messages.history,
    "get_acl": moderation.get_acl,
    "set_role": moderation.set_role,
    "kick": moderation.kick,
    "ban": moderation.ban,
    "unban": moderation.unban,
    "list_bans": moderation.list_bans,
    "mute": moderation.mute,
    "unmute": moderation.unmute,
    "delete_message": moderation.delete_message,
    "edit_message": moderation.edit_message,
    "resume": resume.resume,
    "read": receipts.read,
    "received": receipts.received,
    "conversations": status.list_conversations,
    "status": status.set_status,
    "get_status": status.get_status,
}
