"""/api/v1/users/{id}: who is online, and closing all of a user's sessions."""

from __future__ import annotations

from typing import Any

from core import status, users
from core.pushes import ms_rfc3339
from storage.base import UserPresence

from ..validation import optional_string
from .base import ApiHandler, endpoint

DEFAULT_DISCONNECT_REASON = "disconnected by the server"


def user_json(user: UserPresence, shown: status.Shown | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": user.id,
        "summary": user.name,
        "online": user.sessions > 0,
        "sessions": user.sessions,
        "rooms": user.rooms,
        "last_seen": ms_rfc3339(user.last_seen_ms) if user.last_seen_ms is not None else None,
    }
    if shown is not None:
        found["status"] = shown.status  # the backend sees invisible users as they are
    return found


class UserHandler(ApiHandler):
    @endpoint
    async def get(self, user_id: str) -> None:
        presence = await users.presence(self.node, user_id)
        [shown] = await status.get(self.node, [user_id], viewer=None)
        self.reply(user_json(presence, shown))


class UserDisconnectHandler(ApiHandler):
    @endpoint
    async def post(self, user_id: str) -> None:
        reason = optional_string(self.json_body(), "reason") or DEFAULT_DISCONNECT_REASON
        self.reply(user_json(await users.disconnect(self.node, user_id, reason)))
