"""Moderation: kick, ban, mute and their undoing, each one core function per action.

The acting node changes the store (presence, the sanction) and then publishes on the
user's channel: every node writes the push to that user's sessions there and applies the
control op (leave the room, or close). The room's remaining members hear
gn_user_kicked. ``scope`` None is the whole deployment (bans only, by admins).
"""

from __future__ import annotations

from dataclasses import dataclass

from server.node import Node
from storage.base import Event, Member, Room, Sanction

from . import events, pushes, roles
from .control import CLOSE_OP, leave_op
from .errors import BadRequest, Forbidden, NotFound
from .names import room_channel, user_channel
from .rooms import get_room
from .sanctions import active, expires_ms

GLOBAL_NAME = "every room"
_PAST = {"ban": "banned", "mute": "muted"}


@dataclass(frozen=True)
class Kicked:
    room: Room
    user: Member
    sessions: int  # how many of the user's sessions left the room


async def _evict(
    node: Node,
    room: Room,
    user: Member,
    reason: str,
    by: Member | None,
    push: str,
    notice: pushes.Activity,
    kick_event: Event | None = None,
) -> int:
    """Every session of the user leaves the room on every node, receiving ``push``;
    the remaining members receive gn_user_kicked. Returns how many sessions left.
    ``kick_event`` goes to the stream with the removal (a ban's event went with the
    ban)."""
    sids = await node.store.remove_from_room(room.id, user.id, event=kick_event)
    await node.publish_control(user_channel(user.id), leave_op(room.id), push, notice)
    if sids:
        kicked = pushes.kicked(room.id, user, reason, by)
        await node.publish(room_channel(room.id), pushes.USER_KICKED_EVENT, kicked)
    return len(sids)


async def kick(node: Node, room_id: str, user_id: str, reason: str, by: Member | None) -> Kicked:
    """Moderators, owners and admins: the user leaves the room (and may join again)."""
    room = await get_room(node, room_id)
    rank = await roles.require(node, room, by, roles.MODERATOR, "kick users")
    await roles.require_outranks(node, room, by, rank, user_id, "kick")
    user = await roles.known_user(node, user_id)
    present = {m.id for m in await node.store.room_members(room.id)}
    if user_id not in present:
        raise BadRequest(f"'{user_id}' is not in room '{room.name}'")
    notice = pushes.kicked(room.id, user, reason, by)
    kick_event = events.kicked(node, room.id, user, reason, by)
    left = await _evict(node, room, user, reason, by, pushes.KICKED_EVENT, notice, kick_event)
    return Kicked(room, user, left)


async def _scope_room(node: Node, scope: str | None, by: Member | None, what: str) -> Room | None:
    """The room of a room-scoped action after checking the caller moderates it; for the
    global scope, checks that the caller is an admin."""
    if scope is None:
        if by is not None and not await roles.is_admin(node, by):
            raise Forbidden(f"only an admin can {what} in every room")
        return None
    room = await get_room(node, scope)
    await roles.require(node, room, by, roles.MODERATOR, what)
    return room


async def ban(
    node: Node,
    scope: str | None,
    user_id: str,
    reason: str,
    seconds: int | None,
    by: Member | None,
) -> Sanction:
    """A room ban kicks the user and refuses their joins until it ends; a global ban
    closes all their sessions and refuses their logins. Their sessions receive
    gn_banned with the expiry. Banning again replaces the ban (a new duration)."""
    room = await _scope_room(node, scope, by, "ban users")
    if room is not None:
        await roles.require_outranks(
            node, room, by, await roles.rank(node, room, by), user_id, "ban"
        )
    elif by is not None and (by.id == user_id or await node.store.is_admin(user_id)):
        raise Forbidden(f"you cannot ban '{user_id}' from every room: an admin or yourself")
    user = await roles.known_user(node, user_id)
    sanction = Sanction(user, reason, by.id if by else "", expires_ms(seconds))
    await node.store.impose(
        "ban", scope, sanction, event=events.sanctioned(node, "ban", scope, sanction)
    )
    notice = pushes.sanction(sanction, "ban", scope)
    if room is None:
        await node.publish_control(user_channel(user.id), CLOSE_OP, pushes.BANNED_EVENT, notice)
    else:
        await _evict(node, room, user, reason, by, pushes.BANNED_EVENT, notice)
    return sanction


async def mute(
    node: Node,
    room_id: str,
    user_id: str,
    reason: str,
    seconds: int | None,
    by: Member | None,
) -> Sanction:
    """The user stays in the room and reads it, but sending there is refused until the
    mute ends; their sessions receive gn_muted."""
    room = await get_room(node, room_id)
    rank = await roles.require(node, room, by, roles.MODERATOR, "mute users")
    await roles.require_outranks(node, room, by, rank, user_id, "mute")
    user = await roles.known_user(node, user_id)
    sanction = Sanction(user, reason, by.id if by else "", expires_ms(seconds))
    await node.store.impose(
        "mute", room.id, sanction, event=events.sanctioned(node, "mute", room.id, sanction)
    )
    notice = pushes.sanction(sanction, "mute", room.id)
    await node.publish(user_channel(user.id), pushes.MUTED_EVENT, notice)
    return sanction


async def lift(
    node: Node, kind: str, scope: str | None, user_id: str, by: Member | None
) -> Sanction:
    """unban / unmute: the user may join (log in, send) again at once; returns what was
    lifted."""
    room = await _scope_room(node, scope, by, f"un{kind} users")
    found = await node.store.sanction(kind, scope, user_id)
    if found is not None and active(found):
        lifted = events.lifted(node, kind, scope, found.user, by)
        if await node.store.lift(kind, scope, user_id, event=lifted):
            return found
    where = f"room '{room.name}'" if room is not None else GLOBAL_NAME
    raise NotFound(f"'{user_id}' is not {_PAST[kind]} in {where}")


async def listing(node: Node, kind: str, scope: str | None, by: Member | None) -> list[Sanction]:
    """The bans (or mutes) in force in the room, or everywhere; moderators and admins."""
    await _scope_room(node, scope, by, f"list {kind}s")
    return [s for s in await node.store.sanctions(kind, scope) if active(s)]
