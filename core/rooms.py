"""Rooms: create, list, join, leave, members, ACL, rename and remove.

``by`` names who asks for a change: a user, whose rights are checked here, or None for
the backend (the HTTP API), which may do anything.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ujson

from server.hub import Session
from server.node import Node
from storage.base import Member, Room, RoomNameTaken, RoomSummary

from . import access, acl, events, pushes, roles
from .clock import now_ms
from .control import leave_op, recheck_op
from .errors import BadRequest, Conflict, NotFound
from .names import log_ref, room_channel, room_log
from .sanctions import require_not_banned
from .sessions import announce_joined, announce_left
from .status import invisible_ids, visible_members
from .visibility import sees_invisible


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


async def require_owner(node: Node, room: Room, by: Member | None, what: str) -> None:
    """Owners and admins only (the backend always)."""
    await roles.require(node, room, by, roles.OWNER, what)


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


async def list_all(node: Node, viewer: Session | None = None) -> list[RoomSummary]:
    """Every room; a user sees only the rooms whose "list" rule admits them, or that they
    moderate (admins see all)."""
    found = await node.store.list_rooms()
    if viewer is None or all(r.list_rule is None for r in found):
        return found
    member = viewer.member
    assert member is not None
    if await roles.is_admin(node, member):
        return found
    shown = []
    for summary in found:
        rule = summary.list_rule
        if rule is None or access.admits(rule, viewer.attributes):
            shown.append(summary)
            continue
        room = await node.store.get_room(summary.id)  # only for rooms that hide
        if room is not None and roles.room_rank(room, member.id) >= roles.MODERATOR:
            shown.append(summary)
    return shown


async def join(node: Node, session: Session, room_id: str, *, with_history: bool = True) -> Joined:
    """Put the session in the room; it receives everything published there from now on.
    The room joins the user's conversations (``core.conversations``) until they leave."""
    assert session.member is not None
    room = await get_room(node, room_id)
    await roles.require_access(node, room, session.member, session.attributes, "join")
    await require_not_banned(node, room, session.member)
    channel = room_channel(room.id)
    # Listen before joining: whatever is published from now on reaches this session.
    await node.hub.listen(channel, session.sid)
    try:
        joined = events.joined(node, session.member, room.id)
        backout = events.left(node, session.member, room.id)
        first_session = await node.store.join_room(
            room.id, session.sid, event=joined, backout_event=backout
        )
    except BaseException:
        if room.id not in session.rooms:
            await node.hub.unlisten(channel, session.sid)
        raise
    session.rooms.add(room.id)
    await node.store.add_user_logs(session.member.id, [log_ref("room", room.id)], now_ms())
    entries = []
    if with_history:
        entries = await node.store.history(
            room_log(room.id), before=None, since=None, limit=node.settings.history_on_join
        )
    members = await node.store.room_members(room.id)
    hidden = await invisible_ids(node, [m.id for m in members])
    if first_session and session.member.id not in hidden:
        await announce_joined(node, session.member, room.id, session.sid)
    if not await sees_invisible(node, session):
        members = [m for m in members if m.id not in hidden or m.id == session.member.id]
    return Joined(room, [ujson.loads(e) for e in entries], members)


async def leave(node: Node, session: Session, room_id: str) -> None:
    assert session.member is not None
    if room_id not in session.rooms:
        raise BadRequest(f"you are not in room '{room_id}'")
    left = events.left(node, session.member, room_id)
    user_left = await node.store.leave_room(room_id, session.sid, event=left)
    session.rooms.discard(room_id)
    await node.hub.unlisten(room_channel(room_id), session.sid)
    if user_left:  # their last session left: the room leaves their conversations
        await node.store.remove_user_log(session.member.id, log_ref("room", room_id))
        if not await invisible_ids(node, [session.member.id]):
            await announce_left(node, session.member, room_id)


async def members(node: Node, room_id: str, viewer: Session | None) -> list[Member]:
    """Who is in the room; a user sees it only if the room would admit them."""
    room = await get_room(node, room_id)
    if viewer is not None:
        assert viewer.member is not None
        await roles.require_access(node, room, viewer.member, viewer.attributes, "users")
    return await visible_members(node, await node.store.room_members(room.id), viewer)


async def set_acl(node: Node, room_id: str, rules: Mapping[str, str], by: Member | None) -> None:
    await set_access(node, room_id, rules, None, by)


async def set_access(
    node: Node,
    room_id: str,
    simple: Mapping[str, str] | None,
    rules: Mapping[str, str] | None,
    by: Member | None,
) -> Room:
    """Replace the room's simple ACL and/or its per-action rules (checked JSON text from
    ``access.parse_rules``); None leaves that part as it is. Owners and admins. Members on
    every node who no longer meet the join rules leave the room with gn_kicked."""
    room = await get_room(node, room_id)
    await require_owner(node, room, by, "change its access rules")
    if simple is not None:
        check_acl(simple)
        event = events.acl_changed(node, room.id, simple, by)
        await node.store.set_acl(room.id, simple, event=event)
    if rules is not None:
        await node.store.set_rules(room.id, rules)
    updated = await get_room(node, room.id)
    notice = pushes.acl_changed(updated, by)
    await node.publish_control(
        room_channel(room.id), recheck_op(room.id), pushes.ACL_CHANGED_EVENT, notice
    )
    return updated


async def rename(node: Node, room_id: str, name: str, by: Member | None) -> Room:
    """Rename the room; its members on every node receive gn_room_renamed."""
    room = await get_room(node, room_id)
    await require_owner(node, room, by, "rename it")
    try:
        event = events.room_renamed(node, room.id, name, by)
        old_name = await node.store.rename_room(room.id, name, event=event)
    except RoomNameTaken:
        raise Conflict(f"a room named '{name}' exists already") from None
    if old_name is None:
        raise NotFound(f"there is no room with id '{room_id}'")
    renamed = dataclasses.replace(room, name=name)
    if old_name != name:
        notice = pushes.room_renamed(renamed, old_name, by)
        await node.publish(room_channel(room.id), pushes.ROOM_RENAMED_EVENT, notice)
    return renamed


async def remove(node: Node, room_id: str, by: Member | None) -> Room:
    """Remove the room, its history and presence. Its members on every node receive
    gn_room_removed and are out of the room (no gn_user_left: the room is gone)."""
    room = await get_room(node, room_id)
    await require_owner(node, room, by, "remove it")
    event = events.room_removed(node, room, by)
    removed = await node.store.remove_room(room.id, room_log(room.id), event=event)
    if removed is None:
        raise NotFound(f"there is no room with id '{room_id}'")
    notice = pushes.room_removed(room, by)
    await node.publish_control(
        room_channel(room.id), leave_op(room.id), pushes.ROOM_REMOVED_EVENT, notice
    )
    return room
