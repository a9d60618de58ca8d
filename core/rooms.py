"""Rooms: create, list, join, leave, members, ACL, rename and remove.

``by`` names who asks for a change: a user, whose rights are checked here, or None for
the backend (the HTTP API), which may do anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ujson

from server.hub import Session
from server.node import Node
from storage.base import Member, Room, RoomNameTaken, RoomSummary

from . import acl, events, pushes
from .control import leave_op
from .errors import BadRequest, Conflict, Forbidden, NotFound
from .names import room_channel, room_log
from .sessions import announce_joined, announce_left


@dataclass(frozen=True)
class Joined:
    room: Room
    history: list[pushes.Activity]  # the newest history_on_join messages, oldest first
    members: list[Member]


async def get_room(node: Node, room_id: str) -> Room:
    room = await node.store.get_room(room_id)
    if room is None:
        raise NotFound(f"there is no room with id '{room_id}'")
    return room


def require_admission(room: Room, user: Member, attributes: Mapping[str, str]) -> None:
    reason = acl.refusal(room, user.id, attributes)
    if reason is not None:
        raise Forbidden(reason)


def require_owner(room: Room, by: Member | None, what: str) -> None:
    if by is not None and by.id not in room.owners:
        raise Forbidden(f"only an owner of room '{room.name}' can {what}")


def check_acl(rules: Mapping[str, str]) -> None:
    for kind, rule in rules.items():
        problem = acl.check_rule(rule)
        if problem is not None:
            raise BadRequest(f"acl rule for '{kind}': {problem}")


async def create(
    node: Node, name: str, owners: Sequence[Member], rules: Mapping[str, str] | None = None
) -> Room:
    check_acl(rules or {})
    room_id = str(uuid.uuid4())
    # The first owner created it from a socket; the backend names owners of its own.
    room = Room(room_id, name, {o.id: o.name for o in owners}, dict(rules or {}))
    event = events.room_created(node, room, None)
    try:
        return await node.store.create_room(room_id, name, owners, rules, event=event)
    except RoomNameTaken:
        raise Conflict(f"a room named '{name}' exists already") from None


async def list_all(node: Node) -> list[RoomSummary]:
    return await node.store.list_rooms()


async def join(node: Node, session: Session, room_id: str) -> Joined:
    """Put the session in the room; it receives everything published there from now on."""
    assert session.member is not None
    room = await get_room(node, room_id)
    require_admission(room, session.member, session.attributes)
    channel = room_channel(room.id)
    # Listen before joining: whatever is published from now on reaches this session.
    await node.hub.listen(channel, session.sid)
    try:
        joined = events.joined(node, session.member, room.id)
        first_session = await node.store.join_room(room.id, session.sid, event=joined)
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
        await announce_joined(node, session.member, room.id, session.sid)
    return Joined(room, [ujson.loads(e) for e in entries], members)


async def leave(node: Node, session: Session, room_id: str) -> None:
    assert session.member is not None
    if room_id not in session.rooms:
        raise BadRequest(f"you are not in room '{room_id}'")
    left = events.left(node, session.member, room_id)
    user_left = await node.store.leave_room(room_id, session.sid, event=left)
    session.rooms.discard(room_id)
    await node.hub.unlisten(room_channel(room_id), session.sid)
    if user_left:
        await announce_left(node, session.member, room_id)


async def members(node: Node, room_id: str, viewer: Session | None) -> list[Member]:
    """Who is in the room; a user sees it only if the room would admit them."""
    room = await get_room(node, room_id)
    if viewer is not None:
        assert viewer.member is not None
        require_admission(room, viewer.member, viewer.attributes)
    return await node.store.room_members(room.id)


async def set_acl(node: Node, room_id: str, rules: Mapping[str, str], by: Member | None) -> None:
    room = await get_room(node, room_id)
    require_owner(room, by, "change its ACL")
    check_acl(rules)
    await node.store.set_acl(room.id, rules, event=events.acl_changed(node, room.id, rules, by))


async def rename(node: Node, room_id: str, name: str, by: Member | None) -> Room:
    """Rename the room; its members on every node receive gn_room_renamed."""
    room = await get_room(node, room_id)
    require_owner(room, by, "rename it")
    try:
        event = events.room_renamed(node, room.id, name, by)
        old_name = await node.store.rename_room(room.id, name, event=event)
    except RoomNameTaken:
        raise Conflict(f"a room named '{name}' exists already") from None
    if old_name is None:
        raise NotFound(f"there is no room with id '{room_id}'")
    renamed = Room(room.id, name, room.owners, room.acl)
    if old_name != name:
        notice = pushes.room_renamed(renamed, old_name, by)
        await node.publish(room_channel(room.id), pushes.ROOM_RENAMED_EVENT, notice)
    return renamed


async def remove(node: Node, room_id: str, by: Member | None) -> Room:
    """Remove the room, its history and presence. Its members on every node receive
    gn_room_removed and are out of the room (no gn_user_left: the room is gone)."""
    room = await get_room(node, room_id)
    require_owner(room, by, "remove it")
    event = events.room_removed(node, room, by)
    removed = await node.store.remove_room(room.id, room_log(room.id), event=event)
    if removed is None:
        raise NotFound(f"there is no room with id '{room_id}'")
    notice = pushes.room_removed(room, by)
    await node.publish_control(
        room_channel(room.id), leave_op(room.id), pushes.ROOM_REMOVED_EVENT, notice
    )
    return room
