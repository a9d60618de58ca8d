"""Rooms: create, list_rooms, join, leave, users_in_room, set_acl."""

from __future__ import annotations

import uuid
from typing import Any

import ujson

from server.hub import Session, room_channel, room_log
from server.node import Node
from storage.base import Member, Room, RoomNameTaken

from . import acl
from .activities import Activity, actor, join_reply, listing, member_attachments
from .presence import announce_joined, announce_left
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
    if session.member is None:
        raise BadRequest("log in first: send the login event")
    return session.member


def target_id(request: dict[str, Any]) -> str:
    return required_string(
        required_object(request, "target"), "id", "target.", max_chars=MAX_ID_CHARS
    )


async def existing_room(node: Node, room_id: str) -> Room:
    room = await node.store.get_room(room_id)
    if room is None:
        raise BadRequest(f"there is no room with id '{room_id}'")
    return room


def require_admission(room: Room, session: Session) -> None:
    reason = acl.refusal(room, logged_in(session).id, session.attributes)
    if reason is not None:
        raise BadRequest(reason)


async def create(node: Node, session: Session, request: dict[str, Any]) -> Activity:
    member = logged_in(session)
    target = required_object(request, "target")
    name = required_string(target, "displayName", "target.")
    if not node.limits.rooms.allow(member.id):
        raise BadRequest(
            f"too many rooms created: at most {node.limits.rooms.limit} per hour per user"
        )
    try:
        room = await node.store.create_room(str(uuid.uuid4()), name, member)
    except RoomNameTaken:
        raise BadRequest(f"a room named '{name}' exists already") from None
    return {
        "verb": "create",
        "actor": actor(member),
        "target": {"id": room.id, "displayName": room.name, "objectType": "room"},
    }


async def list_rooms(node: Node, session: Session, request: dict[str, Any]) -> Activity:
    rooms = await node.store.list_rooms()
    return {
        "verb": "list",
        "object": {
            "objectType": "rooms",
            "attachments": [{"id": r.id, "content": r.name, "summary": r.members} for r in rooms],
        },
    }


async def join(node: Node, session: Session, request: dict[str, Any]) -> Activity:
    member = logged_in(session)
    room = await existing_room(node, target_id(request))
    require_admission(room, session)
    channel = room_channel(room.id)
    # Listen before joining: whatever is published from now on reaches this session.
    await node.hub.listen(channel, session.sid)
    try:
        first_session = await node.store.join_room(room.id, session.sid)
    except BaseException:
        if room.id not in session.rooms:
            await node.hub.unlisten(channel, session.sid)
        raise
    session.rooms.add(room.id)
    entries = await node.store.history(
        room_log(room.id), before=None, since=None, limit=node.settings.history_on_join
    )
    members = await node.store.room_members(room.id)
    if first_session:
        await announce_joined(node, member, room.id, session.sid)
    return join_reply(room, [ujson.loads(e) for e in entries], members)


async def leave(node: Node, session: Session, request: dict[str, Any]) -> None:
    member = logged_in(session)
    room_id = target_id(request)
    if room_id not in session.rooms:
        raise BadRequest(f"you are not in room '{room_id}'")
    user_left = await node.store.leave_room(room_id, session.sid)
    session.rooms.discard(room_id)
    channel = room_channel(room_id)
    await node.hub.unlisten(channel, session.sid)
    if user_left:
        await announce_left(node, member, room_id)


async def users_in_room(node: Node, session: Session, request: dict[str, Any]) -> Activity:
    room = await existing_room(node, target_id(request))
    require_admission(room, session)  # who is in a restricted room is not public
    members = await node.store.room_members(room.id)
    return listing(room.id, "users", member_attachments(members))


async def set_acl(node: Node, session: Session, request: dict[str, Any]) -> None:
    member = logged_in(session)
    room = await existing_room(node, target_id(request))
    if member.id not in room.owners:
        raise BadRequest(f"only an owner of room '{room.name}' can change its ACL")
    rules = attribute_pairs(optional_object(request, "object"), "attachments", "object.")
    for kind, rule in rules:
        problem = acl.check_rule(rule)
        if problem is not None:
            raise BadRequest(f"acl rule for '{kind}': {problem}")
    await node.store.set_acl(room.id, dict(rules))
