"""Roles: owner and moderator of a room, admin of the whole deployment.

Rank decides who may do what: a caller acts on a room with the rank of their role
there (admins rank above owners everywhere), and may act on another user only if they
outrank them. The backend (``by`` None, the HTTP API) outranks everyone.

Admins come from a JWT ``roles`` claim (the session's member is then an ``Admin``) or
from ``Store.set_admin`` (the API); either counts on every node.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.node import Node
from storage.base import Member, Room

from . import access, events
from .errors import BadRequest, Forbidden, NotFound

MEMBER, MODERATOR, OWNER, ADMIN, BACKEND = range(5)
ROLE_NAMES = {"moderator": MODERATOR, "owner": OWNER}
NO_ROLE = "none"


@dataclass(frozen=True)
class Admin(Member):
    """A user whose login token names them an admin (``"roles": ["admin"]``)."""


async def is_admin(node: Node, user: Member) -> bool:
    return isinstance(user, Admin) or await node.store.is_admin(user.id)


def room_rank(room: Room, user_id: str) -> int:
    """The rank a user's room role gives them (admins are not known here)."""
    if user_id in room.owners:
        return OWNER
    if user_id in room.moderators:
        return MODERATOR
    return MEMBER


async def rank(node: Node, room: Room, by: Member | None) -> int:
    if by is None:
        return BACKEND
    if by.id in room.owners:
        return OWNER  # no admin lookup for the common case
    if await is_admin(node, by):
        return ADMIN
    return room_rank(room, by.id)


async def user_rank(node: Node, room: Room, user_id: str) -> int:
    """The rank of a user acted upon (no token at hand: admins set through the API)."""
    if await node.store.is_admin(user_id):
        return ADMIN
    return room_rank(room, user_id)


async def require(node: Node, room: Room, by: Member | None, minimum: int, what: str) -> int:
    """The caller's rank, if at least ``minimum``; else Forbidden naming ``what``."""
    found = await rank(node, room, by)
    if found < minimum:
        who = {MODERATOR: "a moderator", OWNER: "an owner"}.get(minimum, "an admin")
        raise Forbidden(f"only {who} of room '{room.name}' can {what}")
    return found


async def require_outranks(
    node: Node, room: Room, by: Member | None, by_rank: int, user_id: str, what: str
) -> None:
    if by is not None and by.id == user_id:
        raise BadRequest(f"you cannot {what} yourself")
    if by is not None and await user_rank(node, room, user_id) >= by_rank:
        raise Forbidden(f"you cannot {what} '{user_id}': their role is not below yours")


async def privileged(node: Node, room: Room, user: Member) -> bool:
    """Moderators, owners and admins are not held to a room's access rules."""
    return room_rank(room, user.id) >= MODERATOR or await is_admin(node, user)


async def require_access(
    node: Node, room: Room, user: Member, attributes: dict[str, str], action: str
) -> None:
    """Forbidden unless the user may ``action`` in the room (one of ``access.ACTIONS``)."""
    reason = access.refusal(room, action, attributes)
    if reason is not None and not await privileged(node, room, user):
        raise Forbidden(reason)


async def known_user(node: Node, user_id: str) -> Member:
    """A user by id, with the display name they last logged in with (the id if never)."""
    presence = await node.store.user_presence(user_id)
    return Member(user_id, presence.name if presence is not None else user_id)


async def set_role(node: Node, room_id: str, user_id: str, role: str, by: Member | None) -> Room:
    """Make the user an owner or moderator of the room, or neither (``NO_ROLE``); owners
    and admins only. Returns the room as it is now."""
    if role != NO_ROLE and role not in ROLE_NAMES:
        raise BadRequest(f"object.content must be 'owner', 'moderator' or 'none', not '{role}'")
    room = await node.store.get_room(room_id)
    if room is None:
        raise NotFound(f"there is no room with id '{room_id}'")
    await require(node, room, by, OWNER, "give or take roles")
    member = await known_user(node, user_id)
    changed = events.role_set(node, room.id, member, role, by)
    if not await node.store.set_role(
        room.id, member, None if role == NO_ROLE else role, event=changed
    ):
        raise NotFound(f"there is no room with id '{room_id}'")
    updated = await node.store.get_room(room.id)
    if updated is None:
        raise NotFound(f"there is no room with id '{room_id}'")
    return updated


async def set_admin(node: Node, user_id: str, admin: bool) -> Member:
    """Make the user a global admin, or not any more (the backend's call)."""
    member = await known_user(node, user_id)
    await node.store.set_admin(member, admin)
    return member
