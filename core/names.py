"""Names of pub/sub channels and message logs: the one module that spells them.

Channels route live traffic (``room:<id>`` to a room's members, ``user:<id>`` to every
session of a user, ``all`` to every session of every node); logs are what the store keeps
(a room's messages, a direct conversation's messages).
"""

from __future__ import annotations

BROADCAST_CHANNEL = "all"


def room_channel(room_id: str) -> str:
    return "room:" + room_id


def user_channel(user_id: str) -> str:
    return "user:" + user_id


def room_log(room_id: str) -> str:
    """The name of a room's message log in the store."""
    return "room:" + room_id


def room_of_channel(channel: str) -> str:
    return channel.removeprefix("room:")


def conversation_log(user_a: str, user_b: str) -> str:
    """The log of messages between two users, the same whichever of them asks.

    The first id's length is part of the name, so no pair of ids can spell another
    pair's name even when ids contain the separator."""
    first, second = sorted((user_a, user_b))
    return f"dm:{len(first)}:{first}:{second}"


def log_ref(kind: str, target_id: str) -> str:
    """How a user's list of conversations names one: ``room:<id>`` or ``user:<other id>``
    (the kind never contains ':', so the first ':' splits it back)."""
    return f"{kind}:{target_id}"
