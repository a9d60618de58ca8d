"""Sessions: connect, login, disconnect, and dropping sessions cluster-wide.

A user is announced once per room: when their first session enters it and when their
last session leaves it (the store says which), whether by join/leave, a disconnect, a
dead node's purge, or a node registering its sessions again after a false death.
"""

from __future__ import annotations

from server.auth import Identity
from server.hub import Session
from server.node import Node
from storage.base import Member

from . import events, expiry, pushes
from .errors import BadRequest
from .names import BROADCAST_CHANNEL, room_channel, user_channel
from .roles import Admin
from .sanctions import require_not_banned_globally


async def connect(node: Node, sid: str, eio_sid: str, token: str | None) -> Session:
    """A new socket.io connection: it hears broadcasts, and nothing else until login."""
    session = node.hub.add_session(sid, eio_sid)
    session.token = token
    await node.hub.listen(BROADCAST_CHANNEL, sid)
    return session


async def login(
    node: Node,
    session: Session,
    claimed: Identity,
    token: str | None,
    *,
    hold_user_channel: bool = False,
) -> tuple[Member, dict[str, str]]:
    """Authenticate the session as a user; returns who it is and their attributes.

    ``hold_user_channel``: the user's direct messages are held back from the session
    (``Hub.hold``) from the moment it listens, for a resume to release."""
    identity = node.auth.authenticate(claimed, token or session.token)
    assert identity.id is not None  # every authenticator guarantees an id
    if session.member is not None and session.member.id != identity.id:
        raise BadRequest(
            f"this connection is logged in as '{session.member.id}'; reconnect to log in "
            "as another user"
        )
    await require_not_banned_globally(node, identity.id)
    name = identity.name or identity.id
    member = Admin(identity.id, name) if "admin" in identity.roles else Member(identity.id, name)
    login_event = events.login(node, member, session.sid)
    await node.store.register_session(session.sid, member, node.node_id, event=login_event)
    if hold_user_channel:
        node.hub.hold(user_channel(member.id), session.sid)
    try:
        await node.hub.listen(user_channel(member.id), session.sid)
    except BaseException:
        node.hub.release(user_channel(member.id), session.sid)
        raise
    session.member = member
    session.attributes = dict(identity.attributes)
    session.may_be_invisible = identity.may_be_invisible
    expiry.arm(node, session, identity.expires_at)  # a fresh token re-arms it
    return member, session.attributes


async def disconnect(node: Node, session: Session) -> None:
    """The connection is gone: local routing at once, the store and the rooms after."""
    hub = node.hub
    hub.remove_session(session.sid)
    await hub.unlisten(BROADCAST_CHANNEL, session.sid)
    for room_id in session.rooms:
        await hub.unlisten(room_channel(room_id), session.sid)
    if session.member is None:
        return
    await hub.unlisten(user_channel(session.member.id), session.sid)
    try:
        await drop(node, session.sid)
    except BaseException:
        node.unfinished_drops.add(session.sid)  # the cluster's heartbeat retries it
        raise


async def drop(node: Node, sid: str) -> None:
    """Remove a session cluster-wide and tell each room its user left entirely (unless
    the user is invisible: nobody saw them come either). The event stream hears of it
    either way: it is the backend's record, not a presence push."""
    left = await node.store.drop_session(sid, events=events.dropped(node))
    if not left:
        return
    if await node.store.invisible_among([left[0][1].id]):
        return
    for room_id, member in left:
        await announce_left(node, member, room_id)


async def purge_node(node: Node, node_id: str) -> int:
    """Drop every session registered on ``node_id`` (dead, or this node's previous life);
    returns how many."""
    sids = await node.store.node_sessions(node_id)
    for sid in sids:
        await drop(node, sid)
    return len(sids)


async def register_again(node: Node) -> None:
    """Register every local session and room membership again, after peers purged this
    node while it lived (it stalled, or lost Redis for longer than its lease)."""
    for session in list(node.hub.sessions.values()):
        if session.member is None:
            continue
        member = session.member
        login_event = events.login(node, member, session.sid)
        await node.store.register_session(session.sid, member, node.node_id, event=login_event)
        hidden = await node.store.invisible_among([member.id])
        for room_id in list(session.rooms):
            joined = events.joined(node, member, room_id)
            backout = events.left(node, member, room_id)
            first = await node.store.join_room(
                room_id, session.sid, event=joined, backout_event=backout
            )
            if first and not hidden:
                await announce_joined(node, session.member, room_id, session.sid)


async def announce_joined(node: Node, member: Member, room_id: str, joiner_sid: str) -> None:
    """gn_user_joined to the room's other members on every node (the joiner has gn_join)."""
    joined = pushes.presence("join", member, room_id)
    await node.publish(room_channel(room_id), pushes.USER_JOINED_EVENT, joined, skip_sid=joiner_sid)


async def announce_left(node: Node, member: Member, room_id: str) -> None:
    """gn_user_left to the room's remaining members on every node."""
    left = pushes.presence("leave", member, room_id)
    await node.publish(room_channel(room_id), pushes.USER_LEFT_EVENT, left)
