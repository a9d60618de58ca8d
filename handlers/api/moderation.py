"""/api/v1 moderation: roles, kicks, bans, mutes, access rules, deleting and editing
messages. The backend acts with every right (``by=None``); effects reach every node."""

from __future__ import annotations

from typing import Any

from core import access, edits, moderation, roles, rooms
from core.messages import Target
from core.pushes import ms_rfc3339
from core.sanctions import duration_seconds
from storage.base import Sanction

from ..validation import MAX_ID_CHARS, BadRequest, optional_string, required_string, utf8_size
from .base import ApiHandler, endpoint
from .rooms import room_json

MAX_REASON_CHARS = 512


def path_id(value: str, name: str) -> str:
    """An id from the path: printable, not blank, at most ``MAX_ID_CHARS``."""
    text = value.strip()
    if not text or len(text) > MAX_ID_CHARS or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise BadRequest(f"{name} must be 1-{MAX_ID_CHARS} printable characters")
    return text


def sanction_json(found: Sanction) -> dict[str, Any]:
    return {
        "user": {"id": found.user.id, "summary": found.user.name},
        "reason": found.reason,
        "by": found.by or None,
        "expires": None if found.expires_ms is None else ms_rfc3339(found.expires_ms),
    }


def _reason(body: dict[str, Any]) -> str:
    return optional_string(body, "reason", max_chars=MAX_REASON_CHARS) or ""


class RoomRoleHandler(ApiHandler):
    @endpoint
    async def put(self, room_id: str, user_id: str) -> None:
        role = required_string(self.json_body(), "role")
        user = path_id(user_id, "user_id")
        self.reply(room_json(await roles.set_role(self.node, room_id, user, role, by=None)))


class UserRoleHandler(ApiHandler):
    @endpoint
    async def put(self, user_id: str) -> None:
        role = required_string(self.json_body(), "role")
        if role not in ("admin", roles.NO_ROLE):
            raise BadRequest(f"role must be 'admin' or 'none', not '{role}'")
        member = await roles.set_admin(self.node, path_id(user_id, "user_id"), role == "admin")
        self.reply({"id": member.id, "summary": member.name, "role": role})


class KickHandler(ApiHandler):
    @endpoint
    async def post(self, room_id: str, user_id: str) -> None:
        reason = _reason(self.json_body())
        user = path_id(user_id, "user_id")
        kicked = await moderation.kick(self.node, room_id, user, reason, by=None)
        self.reply({"room": kicked.room.id, "user": user, "sessions": kicked.sessions})


class SanctionHandler(ApiHandler):
    """PUT imposes, DELETE lifts. Routed as room bans, room mutes and global bans."""

    kind = "ban"

    def scope(self, args: tuple[str, ...]) -> tuple[str | None, str]:
        """(room id or None, user id) from the path."""
        if len(args) == 2:
            return args[0], path_id(args[1], "user_id")
        return None, path_id(args[0], "user_id")

    @endpoint
    async def put(self, *args: str) -> None:
        body = self.json_body()
        reason, seconds = _reason(body), duration_seconds(body.get("duration"), "duration")
        scope, user = self.scope(args)
        if self.kind == "ban":
            found = await moderation.ban(self.node, scope, user, reason, seconds, by=None)
        else:
            assert scope is not None
            found = await moderation.mute(self.node, scope, user, reason, seconds, by=None)
        self.reply(sanction_json(found))

    @endpoint
    async def delete(self, *args: str) -> None:
        scope, user = self.scope(args)
        lifted = await moderation.lift(self.node, self.kind, scope, user, by=None)
        self.reply(sanction_json(lifted))


class MuteHandler(SanctionHandler):
    kind = "mute"


class SanctionListHandler(ApiHandler):
    kind = "ban"

    @endpoint
    async def get(self, room_id: str | None = None) -> None:
        found = await moderation.listing(self.node, self.kind, room_id, by=None)
        self.reply({"items": [sanction_json(s) for s in found]})


class MuteListHandler(SanctionListHandler):
    kind = "mute"


class RoomRulesHandler(ApiHandler):
    @endpoint
    async def get(self, room_id: str) -> None:
        room = await rooms.get_room(self.node, room_id)
        self.reply({"rules": access.rules_json(room)})

    @endpoint
    async def put(self, room_id: str) -> None:
        body = self.json_body()
        if "rules" not in body:
            raise BadRequest("rules is required")
        rules = access.parse_rules(body["rules"], "rules")
        room = await rooms.set_access(self.node, room_id, None, rules, by=None)
        self.reply({"rules": access.rules_json(room)})


class RoomMessageHandler(ApiHandler):
    @endpoint
    async def delete(self, room_id: str, message_id: str) -> None:
        target = Target("room", room_id)
        self.reply(await edits.delete(self.node, target, message_id, by=None))

    @endpoint
    async def patch(self, room_id: str, message_id: str) -> None:
        content = self.json_body().get("content")
        if not isinstance(content, str) or not content.strip():
            raise BadRequest("content must be a non-empty string")
        utf8_size(content, "content")
        target = Target("room", room_id)
        self.reply(await edits.edit(self.node, target, message_id, content, by=None))
