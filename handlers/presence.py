"""Telling a room who came and who went: gn_user_joined and gn_user_left.

A user is announced once per room: when their first session enters it and when their last
session leaves it (the store says which), whether by join/leave, a disconnect, a dead
node's purge, or a node registering its sessions again after a false death.
"""

from __future__ import annotations

from server.hub import room_channel
from server.node import Node
from storage.base import Member

from .activities import presence


async def announce_joined(node: Node, member: Member, room_id: str, joiner_sid: str) -> None:
    """To the room's other members on every node (the joiner has its gn_join)."""
    joined = presence("join", member, room_id)
    await node.publish(room_channel(room_id), "gn_user_joined", joined, skip_sid=joiner_sid)


async def announce_left(node: Node, member: Member, room_id: str) -> None:
    """To the room's remaining members on every node."""
    await node.publish(room_channel(room_id), "gn_user_left", presence("leave", member, room_id))
