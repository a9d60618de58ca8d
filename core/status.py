"""Status (online, away, invisible, offline) and last seen.

A user sets a status with ``status``; it is kept across sessions. Others see
``offline`` for a user without sessions, and for an invisible one: an invisible user is
left out of room member lists and their joins and leaves are not announced (admins and
the backend still see them in lists and statuses: ``core.visibility``). Turning
invisible looks like leaving the rooms one is in; turning visible again like joining.

Whether a user may be invisible is decided at login: under ``--auth jwt`` by the token's
``invisible`` claim (true), under ``--auth open`` anyone may (anyone may be anyone there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server.hub import Session
from server.node import Node
from storage.base import Member, UserStatus

from . import events
from .errors import Forbidden
from .sessions import announce_joined, announce_left
from .visibility import sees_invisible

STATUSES = ("online", "away", "invisible", "offline")
INVISIBLE = "invisible"
MAX_USERS = 500


@dataclass(frozen=True)
class Shown:
    """A user's status as a viewer sees it."""

    id: str
    status: str
    last_seen_ms: int | None


def shown(user: UserStatus, sees_invisible_users: bool) -> Shown:
    if user.sessions == 0 or (user.status == INVISIBLE and not sees_invisible_users):
        status = "offline"
    else:
        status = user.status or "online"
    return Shown(user.id, status, user.last_seen_ms)


async def get(node: Node, user_ids: Sequence[str], viewer: Session | None) -> list[Shown]:
    """Status and last seen of up to MAX_USERS users, in one store round trip."""
    admin = await sees_invisible(node, viewer)
    return [shown(u, admin) for u in await node.store.user_statuses(user_ids)]


async def invisible_ids(node: Node, user_ids: Sequence[str]) -> set[str]:
    if not user_ids:
        return set()
    return await node.store.invisible_among(user_ids)


async def visible_members(
    node: Node, members: list[Member], viewer: Session | None
) -> list[Member]:
    """``members`` without the invisible ones, unless the viewer may see them (a user
    always sees themselves)."""
    if not members or await sees_invisible(node, viewer):
        return members
    hidden = await invisible_ids(node, [m.id for m in members])
    me = viewer.member.id if viewer is not None and viewer.member is not None else None
    return [m for m in members if m.id not in hidden or m.id == me]


async def set_status(node: Node, session: Session, status: str) -> str:
    """Store the session's user's status; rooms see an invisible user leave and a user
    who is visible again come back."""
    assert session.member is not None
    member = session.member
    if status == INVISIBLE and not session.may_be_invisible:
        raise Forbidden("you may not be invisible (your token does not allow it)")
    [before] = await node.store.user_statuses([member.id])
    changed = events.status_changed(node, member, status) if before.status != status else None
    await node.store.set_status(member.id, status, event=changed)
    was_hidden, is_hidden = before.status == INVISIBLE, status == INVISIBLE
    if was_hidden != is_hidden:
        presence = await node.store.user_presence(member.id)
        for room_id in presence.rooms if presence is not None else []:
            if is_hidden:
                await announce_left(node, member, room_id)
            else:
                await announce_joined(node, member, room_id, "")
    return status
