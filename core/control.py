"""Control ops: what a node does to its own sessions when a change reaches it.

Some changes must act on sessions wherever they live: a removed room's members leave it
on every node, a disconnected user's sessions close on every node. The acting node
publishes a ``wire.control_envelope`` on the channel those sessions listen to; every
node writes its packet to them as usual and then applies the op here, in channel order
with the messages around it.
"""

from __future__ import annotations

import logging

from server.node import Node
from server.wire import NAMESPACE

from .names import room_channel
from .recheck import recheck

log = logging.getLogger("dino.control")

_LEAVE = "leave:"
_RECHECK = "recheck:"
CLOSE_OP = "close"


def leave_op(room_id: str) -> str:
    """The op by which every listener of the channel leaves room ``room_id`` locally (the
    store has already taken their presence out)."""
    return _LEAVE + room_id


def recheck_op(room_id: str) -> str:
    """The op by which every node checks its members of room ``room_id`` against the
    room's access rules, and takes out those who no longer qualify (``core.recheck``)."""
    return _RECHECK + room_id


def apply(node: Node, op: str, channel: str, sids: tuple[str, ...]) -> None:
    """``hub.on_control``: applies ``op`` to ``sids``, this node's listeners of ``channel``."""
    hub = node.hub
    if op.startswith(_LEAVE):
        room_id = op.removeprefix(_LEAVE)
        room = room_channel(room_id)
        for sid in sids:
            session = hub.sessions.get(sid)
            if session is None or room_id not in session.rooms:
                continue
            session.rooms.discard(room_id)
            if hub.forget(room, sid):
                node.spawn(hub.broker.unsubscribe(room))
    elif op.startswith(_RECHECK):
        node.spawn(recheck(node, op.removeprefix(_RECHECK), sids))
    elif op == CLOSE_OP:
        for sid in sids:
            if sid in hub.sessions:
                node.spawn(node.sio.disconnect(sid, namespace=NAMESPACE))
    else:
        log.warning("unknown control op %r on %s ignored", op, channel)
