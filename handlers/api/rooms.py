"""/api/v1/rooms: list, create, read, rename, remove, ACL, members and history."""

from __future__ import annotations

from typing import Any

from core import messages, rooms
from core.access import rules_json
from core.messages import MAX_HISTORY_LIMIT, Target
from core.pushes import Activity
from storage.base import Member, Room

from ..validation import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    BadRequest,
    optional_object,
    optional_string,
    required_string,
)
from .base import ApiHandler, endpoint


def room_json(room: Room) -> dict[str, Any]:
    return {
        "id": room.id,
        "name": room.name,
        "owners": [{"id": uid, "summary": name} for uid, name in sorted(room.owners.items())],
        "acl": dict(sorted(room.acl.items())),
        "moderators": [
            {"id": uid, "summary": name} for uid, name in sorted(room.moderators.items())
        ],
        "rules": rules_json(room),
    }


def members(body: dict[str, Any], key: str) -> list[Member]:
    """A list of ``{"id", "summary"}`` users (summary defaults to the id)."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{key} must be a list of users")
    found = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadRequest(f"{key}[{index}] must be an object with an id")
        user_id = required_string(item, "id", f"{key}[{index}].", max_chars=MAX_ID_CHARS)
        name = optional_string(item, "summary", f"{key}[{index}].") or user_id
        found.append(Member(user_id, name))
    return found


def acl_rules(body: dict[str, Any]) -> dict[str, str]:
    """``{"attribute": "rule", ...}``: the rules a user's attributes must match."""
    rules = optional_object(body, "acl")
    checked = {}
    for kind, rule in rules.items():
        name = kind.strip()
        if not name or len(name) > MAX_NAME_CHARS or any(ord(ch) < 32 for ch in name):
            raise BadRequest(f"acl attribute names are 1-{MAX_NAME_CHARS} printable characters")
        if not isinstance(rule, str):
            raise BadRequest(f"acl.{name} must be a string rule")
        checked[name] = required_string(rules, kind, "acl.", max_chars=4096)
    return checked


def query_int(
    handler: ApiHandler, name: str, minimum: int, maximum: int | None = None
) -> int | None:
    raw = handler.get_query_argument(name, None)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got '{raw[:40]}'") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise BadRequest(f"{name} must be between {minimum}{upper}, got {value}")
    return value


class RoomsHandler(ApiHandler):
    @endpoint
    async def get(self) -> None:
        summaries = await rooms.list_all(self.node)
        items = [{"id": r.id, "name": r.name, "members": r.members} for r in summaries]
        self.reply({"items": items})

    @endpoint
    async def post(self) -> None:
        body = self.json_body()
        name = required_string(body, "name")
        room = await rooms.create(self.node, name, members(body, "owners"), acl_rules(body))
        self.reply(room_json(room), 201)


class RoomHandler(ApiHandler):
    @endpoint
    async def get(self, room_id: str) -> None:
        self.reply(room_json(await rooms.get_room(self.node, room_id)))

    @endpoint
    async def patch(self, room_id: str) -> None:
        name = required_string(self.json_body(), "name")
        self.reply(room_json(await rooms.rename(self.node, room_id, name, by=None)))

    @endpoint
    async def delete(self, room_id: str) -> None:
        self.reply(room_json(await rooms.remove(self.node, room_id, by=None)))


class RoomAclHandler(ApiHandler):
    @endpoint
    async def put(self, room_id: str) -> None:
        rules = acl_rules(self.json_body())
        await rooms.set_acl(self.node, room_id, rules, by=None)
        self.reply(room_json(await rooms.get_room(self.node, room_id)))


class RoomUsersHandler(ApiHandler):
    @endpoint
    async def get(self, room_id: str) -> None:
        found = await rooms.members(self.node, room_id, viewer=None)
        self.reply({"items": [{"id": m.id, "summary": m.name} for m in found]})


class RoomHistoryHandler(ApiHandler):
    @endpoint
    async def get(self, room_id: str) -> None:
        since = query_int(self, "since", minimum=0)
        before = query_int(self, "before", minimum=1)
        limit = query_int(self, "limit", minimum=1, maximum=MAX_HISTORY_LIMIT)
        found: list[Activity] = await messages.history(
            self.node, Target("room", room_id), before=before, since=since, limit=limit, reader=None
        )
        self.reply({"items": found})
