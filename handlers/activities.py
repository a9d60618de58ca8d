"""ActivityStreams 1.0 shapes of the protocol, built in one place so every event agrees."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from storage.base import Member, Room

Activity = dict[str, Any]


def now_rfc3339() -> str:
    """UTC time with milliseconds, e.g. 2026-11-28T10:45:34.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def actor(member: Member) -> Activity:
    return {"id": member.id, "summary": member.name}


def room_target(room_id: str) -> Activity:
    return {"id": room_id, "objectType": "room"}


def member_attachments(members: Iterable[Member]) -> list[Activity]:
    return [{"id": m.id, "content": m.name} for m in members]


def history_entry(message: Activity) -> Activity:
    """A stored message as a history attachment: the seed's id/content/summary/published."""
    sender = message.get("actor", {})
    return {
        "id": message.get("id"),
        "seq": message.get("seq"),
        "content": message.get("object", {}).get("content"),
        "summary": sender.get("summary"),
        "published": message.get("published"),
        "actor": {"id": sender.get("id")},
    }


def presence(verb: str, member: Member, room_id: str) -> Activity:
    """Payload of gn_user_joined / gn_user_left."""
    return {"verb": verb, "actor": actor(member), "target": room_target(room_id)}


def listing(target_id: str, object_type: str, attachments: list[Activity]) -> Activity:
    return {
        "verb": "list",
        "target": {"id": target_id},
        "object": {"objectType": object_type, "attachments": attachments},
    }


def join_reply(room: Room, history: list[Activity], members: list[Member]) -> Activity:
    owners = [{"id": uid, "content": name} for uid, name in sorted(room.owners.items())]
    acl = [{"objectType": kind, "content": rule} for kind, rule in sorted(room.acl.items())]
    return {
        "verb": "join",
        "actor": {"id": room.id},
        "target": {"id": room.id, "displayName": room.name, "objectType": "room"},
        "object": {
            "objectType": "room",
            "attachments": [
                {"objectType": "history", "attachments": [history_entry(m) for m in history]},
                {"objectType": "owner", "attachments": owners},
                {"objectType": "acl", "attachments": acl},
                {"objectType": "user", "attachments": member_attachments(members)},
            ],
        },
    }
