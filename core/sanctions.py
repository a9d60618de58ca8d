"""Bans and mutes as rules in force: durations, expiry and the checks every action makes.

Expiry is an absolute UTC time (ms since the epoch) computed once when the sanction is
imposed, so the time left is right on every node, after restarts and across any number
of days; an expired sanction simply stops counting.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from server.node import Node
from storage.base import Member, Room, Sanction

from . import access, roles
from .errors import BadRequest, Forbidden, NotFound

MAX_DURATION_SECONDS = 10 * 365 * 86_400
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhd]?)\s*$")


def now_ms() -> int:
    return int(time.time() * 1000)


def duration_seconds(value: Any, where: str) -> int | None:
    """``"30s"``, ``"15m"``, ``"2h"``, ``"7d"``, a number of seconds, or None (no end)."""
    if value is None:
        return None
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is not None:
            seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds is None:
        raise BadRequest(
            f"{where} must be like '30s', '15m', '2h', '7d', a number of seconds, or null"
        )
    if not 1 <= seconds <= MAX_DURATION_SECONDS:
        raise BadRequest(f"{where} must be between 1 second and 10 years")
    return seconds


def expires_ms(seconds: int | None) -> int | None:
    return None if seconds is None else now_ms() + seconds * 1000


def active(sanction: Sanction | None) -> bool:
    return sanction is not None and (sanction.expires_ms is None or sanction.expires_ms > now_ms())


def time_left(sanction: Sanction) -> str:
    """``"for 2d 3h 4m 5s more"`` or ``"without end"``; whole days are never dropped."""
    if sanction.expires_ms is None:
        return "without end"
    left = max(1, -(-(sanction.expires_ms - now_ms()) // 1000))  # seconds, rounded up
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "for " + " ".join(parts) + " more"


def _because(sanction: Sanction) -> str:
    return f" ({sanction.reason})" if sanction.reason else ""


async def require_not_banned(node: Node, room: Room, user: Member) -> None:
    ban = await node.store.sanction("ban", room.id, user.id)
    if ban is not None and active(ban):
        raise Forbidden(f"you are banned from room '{room.name}' {time_left(ban)}{_because(ban)}")


async def require_not_banned_globally(node: Node, user_id: str) -> None:
    ban = await node.store.sanction("ban", None, user_id)
    if ban is not None and active(ban):
        raise Forbidden(f"you are banned {time_left(ban)}{_because(ban)}")


async def check_sender(
    node: Node, room_id: str, sender: Member, attributes: Mapping[str, str]
) -> None:
    """Forbidden unless the user may send to the room: its "send" rule admits them (or
    they moderate it) and they are not muted there."""
    check = await node.store.send_check(room_id, sender.id)
    refused = check.rule is not None and not access.admits(check.rule, attributes)
    mute = check.mute if active(check.mute) else None
    if not refused and mute is None:
        return
    room = await node.store.get_room(room_id)  # only for a refusal: its name and roles
    if room is None:
        raise NotFound(f"there is no room with id '{room_id}'")
    if refused:
        await roles.require_access(node, room, sender, dict(attributes), "send")
    if mute is not None:
        raise Forbidden(f"you are muted in room '{room.name}' {time_left(mute)}{_because(mute)}")
