"""ActivityStreams 1.0 shapes of everything a node sends: replies and server pushes.

Built here and nowhere else, so every entry point and every node agrees on them. The
push events (sent without being asked) are named by the ``*_EVENT`` constants.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from storage.base import Member, Room, Sanction

Activity = dict[str, Any]

CONNECT_EVENT = "gn_connect"
MESSAGE_EVENT = "message"
USER_JOINED_EVENT = "gn_user_joined"
USER_LEFT_EVENT = "gn_user_left"
ROOM_REMOVED_EVENT = "gn_room_removed"
ROOM_RENAMED_EVENT = "gn_room_renamed"
BROADCAST_EVENT = "gn_broadcast"
SESSION_CLOSED_EVENT = "gn_session_closed"
KICKED_EVENT = "gn_kicked"
USER_KICKED_EVENT = "gn_user_kicked"
BANNED_EVENT = "gn_banned"
MUTED_EVENT = "gn_muted"
MESSAGE_DELETED_EVENT = "gn_message_deleted"
MESSAGE_EDITED_EVENT = "gn_message_edited"
ACL_CHANGED_EVENT = "gn_acl_changed"
# Log entries that change an earlier one: the push event each is delivered as.
REVISION_EVENTS = {"delete": MESSAGE_DELETED_EVENT, "edit": MESSAGE_EDITED_EVENT}
GAP_EVENT = "gn_gap"
RESUME_EVENT = "gn_resume"
MESSAGE_READ_EVENT = "gn_message_read"
MESSAGE_RECEIVED_EVENT = "gn_message_received"


def connected() -> Activity:
    """gn_connect: pushed right after the socket.io connection is made."""
    return {"status_code": 200}


def now_rfc3339() -> str:
    """UTC time with milliseconds, e.g. 2026-11-28T10:45:34.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms_rfc3339(ms: int) -> str:
    """A time in milliseconds since the epoch, as ``now_rfc3339`` writes it."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def actor(member: Member) -> Activity:
    return {"id": member.id, "summary": member.name}


def room_target(room_id: str) -> Activity:
    return {"id": room_id, "objectType": "room"}


def room_object(room: Room) -> Activity:
    return {"id": room.id, "displayName": room.name, "objectType": "room"}


def member_attachments(members: Iterable[Member]) -> list[Activity]:
    return [{"id": m.id, "content": m.name} for m in members]


def message(
    message_id: str, sender: Member, target_kind: str, target_id: str, content: str, kind: str
) -> Activity:
    """A message as it is stored and pushed (the store adds ``seq`` in front)."""
    return {
        "id": message_id,
        "published": now_rfc3339(),
        "verb": "send",
        "actor": actor(sender),
        "target": {"id": target_id, "objectType": target_kind},
        "object": {"content": content, "objectType": kind},
    }


def history_entry(message: Activity) -> Activity:
    """A stored message as a history attachment: the seed's id/content/summary/published.

    A deleted message has no content and ``deleted`` (when); an edited one its latest
    content and ``updated``. The entries that deleted or edited one (``verb`` delete or
    edit) name it as ``object.id``."""
    sender = message.get("actor", {})
    entry: Activity = {
        "id": message.get("id"),
        "seq": message.get("seq"),
        "epoch": message.get("epoch"),
        "content": message.get("object", {}).get("content"),
        "summary": sender.get("summary"),
        "published": message.get("published"),
        "actor": {"id": sender.get("id")},
    }
    for extra in ("deleted", "updated"):
        if extra in message:
            entry[extra] = message[extra]
    if message.get("verb", "send") != "send":
        entry["verb"] = message["verb"]
        entry["object"] = {"id": message.get("object", {}).get("id")}
    return entry


def presence(verb: str, member: Member, room_id: str) -> Activity:
    """Payload of gn_user_joined / gn_user_left."""
    return {"verb": verb, "actor": actor(member), "target": room_target(room_id)}


def listing(target_id: str, object_type: str, attachments: list[Activity]) -> Activity:
    return {
        "verb": "list",
        "target": {"id": target_id},
        "object": {"objectType": object_type, "attachments": attachments},
    }


def login_reply(member: Member, attributes: dict[str, str]) -> Activity:
    return {
        "verb": "login",
        "actor": {
            "id": member.id,
            "summary": member.name,
            "attachments": [{"objectType": k, "content": v} for k, v in attributes.items()],
        },
    }


def created(room: Room, by: Member) -> Activity:
    """The reply to ``create``."""
    return {"verb": "create", "actor": actor(by), "target": room_object(room)}


def room_list(rooms: Iterable[Any]) -> Activity:
    """The reply to ``list_rooms``: each room with its member count as ``summary``."""
    return {
        "verb": "list",
        "object": {
            "objectType": "rooms",
            "attachments": [{"id": r.id, "content": r.name, "summary": r.members} for r in rooms],
        },
    }


def join_reply(room: Room, history: list[Activity], members: list[Member]) -> Activity:
    owners = [{"id": uid, "content": name} for uid, name in sorted(room.owners.items())]
    acl = [{"objectType": kind, "content": rule} for kind, rule in sorted(room.acl.items())]
    moderators = [{"id": uid, "content": name} for uid, name in sorted(room.moderators.items())]
    return {
        "verb": "join",
        "actor": {"id": room.id},
        "target": room_object(room),
        "object": {
            "objectType": "room",
            "attachments": [
                {"objectType": "history", "attachments": [history_entry(m) for m in history]},
                {"objectType": "owner", "attachments": owners},
                {"objectType": "moderator", "attachments": moderators},
                {"objectType": "acl", "attachments": acl},
                {"objectType": "user", "attachments": member_attachments(members)},
            ],
        },
    }


def _by(activity: Activity, member: Member | None) -> Activity:
    """``activity`` with ``actor`` when a user (not the backend) did it."""
    if member is not None:
        activity["actor"] = actor(member)
    return activity


def room_removed(room: Room, by: Member | None) -> Activity:
    """gn_room_removed: the room is gone; its members are no longer in it."""
    return _by({"verb": "remove", "target": room_object(room), "published": now_rfc3339()}, by)


def room_renamed(room: Room, old_name: str, by: Member | None) -> Activity:
    """gn_room_renamed: ``target.displayName`` is the new name, ``object.summary`` the old."""
    renamed = {
        "verb": "rename",
        "target": room_object(room),
        "object": {"objectType": "room", "summary": old_name},
        "published": now_rfc3339(),
    }
    return _by(renamed, by)


def broadcast(content: str, kind: str, sender: Member | None) -> Activity:
    """gn_broadcast: a notice to every connected session, not stored."""
    notice = {
        "verb": "broadcast",
        "published": now_rfc3339(),
        "object": {"content": content, "objectType": kind},
    }
    return _by(notice, sender)


def session_closed(reason: str) -> Activity:
    """gn_session_closed: sent right before the server closes a session on purpose."""
    return {"verb": "disconnect", "published": now_rfc3339(), "object": {"content": reason}}


def scope_target(room_id: str | None) -> Activity:
    """A room, or ``{"objectType": "global"}`` for the whole deployment."""
    return room_target(room_id) if room_id is not None else {"objectType": "global"}


def kicked(room_id: str, user: Member, reason: str, by: Member | None) -> Activity:
    """gn_kicked (to the user's sessions) and gn_user_kicked (to the room's members)."""
    notice = {
        "verb": "kick",
        "target": room_target(room_id),
        "object": {"id": user.id, "summary": user.name, "content": reason},
        "published": now_rfc3339(),
    }
    return _by(notice, by)


def sanction(sanctioned: Sanction, verb: str, room_id: str | None) -> Activity:
    """gn_banned / gn_muted to the user's sessions, and one item of list_bans:
    ``object.expires`` is RFC 3339 UTC, or null for a sanction without end."""
    expires = None if sanctioned.expires_ms is None else ms_rfc3339(sanctioned.expires_ms)
    notice: Activity = {
        "verb": verb,
        "target": scope_target(room_id),
        "object": {
            "id": sanctioned.user.id,
            "summary": sanctioned.user.name,
            "content": sanctioned.reason,
            "expires": expires,
        },
        "published": now_rfc3339(),
    }
    if sanctioned.by:
        notice["actor"] = {"id": sanctioned.by}
    return notice


def sanction_list(room_id: str | None, kind: str, sanctions: Iterable[Sanction]) -> Activity:
    """The reply to list_bans: each active sanction as an attachment."""
    items = []
    for found in sanctions:
        expires = None if found.expires_ms is None else ms_rfc3339(found.expires_ms)
        items.append(
            {
                "id": found.user.id,
                "summary": found.user.name,
                "content": found.reason,
                "expires": expires,
                "actor": {"id": found.by} if found.by else None,
            }
        )
    return {
        "verb": "list",
        "target": scope_target(room_id),
        "object": {"objectType": kind, "attachments": items},
    }


def revision(
    verb: str,
    editor: Member | None,
    target_kind: str,
    target_id: str,
    original: Activity,
    content: str | None,
) -> Activity:
    """The log entry (and gn_message_deleted / gn_message_edited push) that deletes or
    edits message ``original``; the store adds its own ``seq``."""
    changed: Activity = {"id": original.get("id"), "seq": original.get("seq")}
    if content is not None:
        changed["content"] = content
    entry: Activity = {
        "id": str(uuid.uuid4()),
        "published": now_rfc3339(),
        "verb": verb,
        "target": {"id": target_id, "objectType": target_kind},
        "object": changed,
    }
    return _by(entry, editor)


def acl_changed(room: Room, by: Member | None) -> Activity:
    """gn_acl_changed: the room's access rules changed (members who no longer qualify
    then receive gn_kicked)."""
    return _by({"verb": "set_acl", "target": room_object(room), "published": now_rfc3339()}, by)


def access_reply(room: Room, rules: dict[str, Any]) -> Activity:
    """The reply to get_acl: the simple ACL as attachments, per-action rules as rules."""
    return {
        "verb": "get_acl",
        "target": room_object(room),
        "object": {
            "objectType": "acl",
            "attachments": [
                {"objectType": kind, "content": rule} for kind, rule in sorted(room.acl.items())
            ],
            "rules": rules,
        },
    }


def log_target(kind: str, target_id: str) -> Activity:
    """A log as a target: a room, or the conversation with a user."""
    return {"id": target_id, "objectType": kind}


def gap(kind: str, target_id: str, first: int, last: int, epoch: str | None) -> Activity:
    """gn_gap: messages ``first``..``last`` of the log cannot be replayed (trimmed)."""
    return {"target": log_target(kind, target_id), "from": first, "to": last, "epoch": epoch}


def resume_reply(outcomes: Iterable[Activity]) -> Activity:
    """gn_resume: per log, what resuming it did."""
    return {"verb": "resume", "object": {"objectType": "logs", "attachments": list(outcomes)}}


def receipt(verb: str, reader: Member, kind: str, target_id: str, seq: int, epoch: str) -> Activity:
    """gn_message_read / gn_message_received: ``reader`` has read (received) the log up
    to ``seq``."""
    return {
        "verb": verb,
        "actor": actor(reader),
        "target": log_target(kind, target_id),
        "object": {"seq": seq, "epoch": epoch},
        "published": now_rfc3339(),
    }
