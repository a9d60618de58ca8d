"""After a room's access rules change, every node checks its own members of the room.

Attributes live with the sessions (from the login token or the login request), so only
the node holding a session can tell whether it still qualifies. The acting node
publishes ``control.recheck_op`` on the room channel; each node runs ``recheck`` for its
listeners there, and those that no longer meet the join rules leave the room with
gn_kicked (reason ``ACCESS_CHANGED``), as a kick would make them.
"""

from __future__ import annotations

import logging

from server.node import Node

from . import access, events, pushes, roles
from .names import room_channel

log = logging.getLogger("dino.recheck")

ACCESS_CHANGED = "access rules changed"


async def recheck(node: Node, room_id: str, sids: tuple[str, ...]) -> None:
    room = await node.store.get_room(room_id)
    if room is None:
        return
    hub = node.hub
    channel = room_channel(room_id)
    for sid in sids:
        session = hub.sessions.get(sid)
        if session is None or session.member is None or room_id not in session.rooms:
            continue
        member = session.member
        if access.refusal(room, "join", session.attributes) is None:
            continue
        if await roles.privileged(node, room, member):
            continue
        left = events.left(node, member, room_id)
        user_left = await node.store.leave_room(room_id, sid, event=left)
        session.rooms.discard(room_id)
        await hub.unlisten(channel, sid)
        notice = pushes.kicked(room_id, member, ACCESS_CHANGED, None)
        await node.send(session, pushes.KICKED_EVENT, notice)
        if user_left:
            await node.publish(channel, pushes.USER_KICKED_EVENT, notice)
