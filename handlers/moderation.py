"""Moderation events: set_role, kick, ban, unban, list_bans, mute, unmute, get_acl,
delete_message and edit_message. Validate, call the core action, shape the reply."""

from __future__ import annotations

from typing import Any

from core import access, edits, moderation, pushes, roles, rooms
from core.sanctions import duration_seconds
from server.hub import Session
from server.node import Node

from .messages import target
from .rooms import logged_in, target_id
from .validation import (
    MAX_ID_CHARS,
    BadRequest,
    message_content,
    optional_string,
    required_object,
    required_string,
)

MAX_REASON_CHARS = 512


def user_id(request: dict[str, Any]) -> str:
    return required_string(
        required_object(request, "object"), "id", "object.", max_chars=MAX_ID_CHARS
    )


def reason(request: dict[str, Any]) -> str:
    obj = required_object(request, "object")
    return optional_string(obj, "content", "object.", max_chars=MAX_REASON_CHARS) or ""


def scope(request: dict[str, Any]) -> str | None:
    """A room id, or None for ``{"objectType": "global"}``."""
    obj = required_object(request, "target")
    kind = optional_string(obj, "objectType", "target.") or "room"
    if kind == "global":
        return None
    if kind != "room":
        raise BadRequest(f"target.objectType must be 'room' or 'global', not '{kind}'")
    return required_string(obj, "id", "target.", max_chars=MAX_ID_CHARS)


def duration(request: dict[str, Any]) -> int | None:
    return duration_seconds(required_object(request, "object").get("duration"), "object.duration")


async def set_role(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    room_id, user = target_id(request), user_id(request)
    role = required_string(required_object(request, "object"), "content", "object.")
    room = await roles.set_role(node, room_id, user, role, by=logged_in(session))
    return {
        "verb": "set_role",
        "target": pushes.room_object(room),
        "object": {"id": user, "content": role},
    }


async def kick(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    room_id, user, why = target_id(request), user_id(request), reason(request)
    by = logged_in(session)
    kicked = await moderation.kick(node, room_id, user, why, by)
    return pushes.kicked(kicked.room.id, kicked.user, why, by)


async def ban(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    where, user, why, seconds = scope(request), user_id(request), reason(request), duration(request)
    banned = await moderation.ban(node, where, user, why, seconds, logged_in(session))
    return pushes.sanction(banned, "ban", where)


async def unban(node: Node, session: Session, request: dict[str, Any]) -> None:
    where, user = scope(request), user_id(request)
    await moderation.lift(node, "ban", where, user, logged_in(session))


async def list_bans(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    where = scope(request)
    found = await moderation.listing(node, "ban", where, logged_in(session))
    return pushes.sanction_list(where, "bans", found)


async def mute(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    room_id, user, why, seconds = (
        target_id(request),
        user_id(request),
        reason(request),
        duration(request),
    )
    muted = await moderation.mute(node, room_id, user, why, seconds, logged_in(session))
    return pushes.sanction(muted, "mute", room_id)


async def unmute(node: Node, session: Session, request: dict[str, Any]) -> None:
    room_id, user = target_id(request), user_id(request)
    await moderation.lift(node, "mute", room_id, user, logged_in(session))


async def get_acl(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    room = await rooms.get_room(node, target_id(request))
    return pushes.access_reply(room, access.rules_json(room))


def message_id(request: dict[str, Any]) -> str:
    return required_string(
        required_object(request, "object"), "id", "object.", max_chars=MAX_ID_CHARS
    )


async def delete_message(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    where, message = target(request), message_id(request)
    return await edits.delete(node, where, message, logged_in(session))


async def edit_message(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    where, message = target(request), message_id(request)
    text = message_content(required_object(request, "object"))
    return await edits.edit(node, where, message, text, logged_in(session))
