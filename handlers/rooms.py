"""Rooms: create, list_rooms, join, leave, users_in_room, set_acl, rename_room, remove_room."""

from __future__ import annotations

from typing import Any

from core import access, pushes, rooms
from server.hub import Session
from server.node import Node
from storage.base import Member

from .validation import (
    MAX_ID_CHARS,
    BadRequest,
    attribute_pairs,
    optional_object,
    required_object,
    required_string,
)


def logged_in(session: Session) -> Member:
    """The session's user; the namespace has already refused anonymous requests."""
    assert session.member is not None
    return session.member


def target_id(request: dict[str, Any]) -> str:
    return required_string(
        required_object(request, "target"), "id", "target.", max_chars=MAX_ID_CHARS
    )


def display_name(request: dict[str, Any]) -> str:
    return required_string(required_object(request, "target"), "displayName", "target.")


async def create(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    member = logged_in(session)
    name = display_name(request)
    if not node.limits.rooms.allow(member.id):
        raise BadRequest(
            f"too many rooms created: at most {node.limits.rooms.limit} per hour per user"
        )
    room = await rooms.create(node, name, [member])
    return pushes.created(room, member)


async def list_rooms(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    return pushes.room_list(await rooms.list_all(node, viewer=session))


async def join(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    joined = await rooms.join(node, session, target_id(request))
    return pushes.join_reply(joined.room, joined.history, joined.members)


async def leave(node: Node, session: Session, request: dict[str, Any]) -> None:
    await rooms.leave(node, session, target_id(request))


async def users_in_room(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    room_id = target_id(request)
    members = await rooms.members(node, room_id, viewer=session)
    return pushes.listing(room_id, "users", pushes.member_attachments(members))


async def set_acl(node: Node, session: Session, request: dict[str, Any]) -> None:
    """``object.attachments``: the simple ACL (join, history, users); ``object.rules``:
    rules per action (``core.access``). Given only rules, the simple ACL stays."""
    room_id = target_id(request)
    obj = optional_object(request, "object")
    simple = attribute_pairs(obj, "attachments", "object.")
    if "rules" not in obj:
        await rooms.set_acl(node, room_id, dict(simple), by=logged_in(session))
        return
    rules = access.parse_rules(obj["rules"], "object.rules")
    keep_simple = "attachments" not in obj
    await rooms.set_access(
        node, room_id, None if keep_simple else dict(simple), rules, by=logged_in(session)
    )


async def rename_room(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    room = await rooms.rename(node, target_id(request), display_name(request), logged_in(session))
    return {"verb": "rename", "target": pushes.room_object(room)}


async def remove_room(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    room = await rooms.remove(node, target_id(request), by=logged_in(session))
    return {"verb": "remove", "target": pushes.room_object(room)}
