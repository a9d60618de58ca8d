"""The event stream out: one event per change of state, shaped here and nowhere else.

Every action of the core that changes state hands the store the event describing it
(``storage.base.Event``), and the store adds it to the stream in the same atomic step as
the change (on Redis: XADD inside the change's own Lua script), only if the change
happens. So no change can be seen without its event, and a log's events are in ``seq``
order. ``server/forwarder.py`` moves the stream to RabbitMQ or a JSON-lines file.

Every event is an ActivityStreams object::

    {"id": "<unique event id>", "type": "<event type>", "verb": "...",
     "published": "<RFC 3339 UTC ms>", "node": "<node id that made the change>",
     "log": "<log name>", "seq": <n>,            (events of log entries only)
     "actor": {...}, "target": {...}, "object": {...}}

``id`` is a uuid4, followed by ``.<n>`` when one change makes several events (a session
dropped from several rooms). Its routing key is ``dino.<type>.<objectType>.<id>`` of what
it is about (``dino.message.room.<room id>``). The README lists every type.

**Adding an event type**: a builder here that returns ``_event(node, TYPE, verb,
routing, fields)``; then either pass it to the store call that makes the change
(``event=``; in Redis scripts, prepend ``redis_store._LUA_EVENT`` and call
``add_event(KEYS[stream], ARGV[event], values)`` where the change happens), or, for a
change without a script of its own, ``await emit(node, event)`` right after it (then a
crash between the two can lose that event).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ujson

from server.node import Node
from storage.base import DropEvents, Event, Member, Room, Sanction

from . import pushes

# Event types ("type" and the routing key's second word).
MESSAGE = "message"
JOIN = "join"
LEAVE = "leave"
LOGIN = "login"
OFFLINE = "offline"  # the user's last session is gone (disconnect, or a node's death)
ROOM_CREATED = "room_created"
ROOM_RENAMED = "room_renamed"
ROOM_REMOVED = "room_removed"
ACL_CHANGED = "acl_changed"
MESSAGE_EDITED = "message_edited"
MESSAGE_DELETED = "message_deleted"
ROLE_SET = "role_set"
KICK = "kick"
BAN = "ban"
UNBAN = "unban"
MUTE = "mute"
UNMUTE = "unmute"
STATUS_CHANGED = "status_changed"


@dataclass(frozen=True)
class Hole:
    """A value only the store knows (``storage.base.Event``), inserted as JSON."""

    name: str


@dataclass(frozen=True)
class Numbered:
    """A string value ending in ``.<n>``, ``n`` from the store (the index of an event
    among several made by one change)."""

    prefix: str
    hole: str


Fields = list[tuple[str, Any]]  # values: JSON values, Hole, Numbered, or nested Fields


def _is_fields(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], tuple)


def _segments(fields: Fields, out: list[str | Hole]) -> None:
    """``fields`` as JSON text segments and holes. Runs of plain fields are encoded with
    one ``ujson.dumps`` (this is on the send path of every message)."""
    out.append("{")
    plain: dict[str, Any] = {}
    comma = ""

    def flush() -> None:
        nonlocal comma
        if plain:
            out.append(comma + ujson.dumps(plain)[1:-1])
            comma = ","
            plain.clear()

    for name, value in fields:
        if not isinstance(value, Hole | Numbered) and not _is_fields(value):
            plain[name] = value
            continue
        flush()
        out.append(comma + ujson.dumps(name) + ":")
        comma = ","
        if isinstance(value, Hole):
            out.append(value)
        elif isinstance(value, Numbered):
            out += [ujson.dumps(value.prefix + ".")[:-1], Hole("=" + value.hole), '"']
        else:
            _segments(value, out)
    flush()
    out.append("}")


def template(routing_key: str, fields: Fields, routing_hole: str = "") -> Event:
    """The ``Event`` whose JSON is the object ``fields``, with its holes left open."""
    segments: list[str | Hole] = []
    _segments(fields, segments)
    parts: list[str] = []
    holes: list[str] = []
    current: list[str] = []
    for segment in segments:
        if isinstance(segment, Hole):
            parts.append("".join(current))
            holes.append(segment.name)
            current = []
        else:
            current.append(segment)
    parts.append("".join(current))
    return Event(routing_key, tuple(parts), tuple(holes), routing_hole)


def _on(node: Node) -> bool:
    """Whether this node keeps an event stream (``--events-maxlen 0`` turns it off; the
    in-memory store keeps one only for a forwarder)."""
    return node.events is not None


def _head(node: Node, kind: str, verb: str, published: str | None = None) -> Fields:
    return [
        ("id", str(uuid.uuid4())),
        ("type", kind),
        ("verb", verb),
        ("published", published or pushes.now_rfc3339()),
        ("node", node.node_id),
    ]


def _event(
    node: Node, kind: str, verb: str, about: tuple[str, str], fields: Fields
) -> Event | None:
    """An event of ``kind`` about ``(objectType, id)`` (its routing key) with ``fields``
    after the common ones; None while events are off."""
    if not _on(node):
        return None
    object_type, object_id = about
    return template(f"dino.{kind}.{object_type}.{object_id}", _head(node, kind, verb) + fields)


def _by(by: Member | None) -> Fields:
    """The actor, or nothing when the backend (HTTP API) acted."""
    return [] if by is None else [("actor", pushes.actor(by))]


def _room(room_id: str, name: str | None = None) -> Fields:
    target: Fields = [("id", room_id), ("objectType", "room")]
    if name is not None:
        target.append(("displayName", name))
    return target


# -- messages ------------------------------------------------------------------------------


def message_sent(node: Node, message: pushes.Activity, log: str) -> Event | None:
    """A stored message (as ``pushes.message`` shapes it); holes ``seq`` and ``epoch``
    (the log's, as on the stored entry). Spelled out rather than through ``template``:
    it is on the send path of every message, and this is the same JSON for a third of
    the CPU."""
    if not _on(node):
        return None
    target = message["target"]
    obj = message["object"]
    about = "room" if target["objectType"] == "room" else "user"
    head = {
        "id": str(uuid.uuid4()),
        "type": MESSAGE,
        "verb": "send",
        "published": message["published"],
        "node": node.node_id,
        "log": log,
    }
    rest = {
        "actor": message["actor"],
        "target": target,
        "object": {"id": message["id"], "objectType": obj["objectType"], "content": obj["content"]},
    }
    parts = (ujson.dumps(head)[:-1] + ',"seq":', ',"epoch":', "," + ujson.dumps(rest)[1:])
    return Event(f"dino.{MESSAGE}.{about}.{target['id']}", parts, ("seq", "epoch"))


def revised(node: Node, revision: pushes.Activity, log: str) -> Event | None:
    """A message edited or deleted (``revision`` as ``pushes.revision`` shapes it): an
    entry of the log with its own ``seq`` (holes ``seq`` and ``epoch``); ``object``
    names the changed message and its ``seq``, and carries the new content of an edit."""
    if not _on(node):
        return None
    kind = MESSAGE_EDITED if revision["verb"] == "edit" else MESSAGE_DELETED
    target = revision["target"]
    about = "room" if target["objectType"] == "room" else "user"
    fields: Fields = [
        ("log", log),
        ("seq", Hole("seq")),
        ("epoch", Hole("epoch")),
        *([("actor", revision["actor"])] if "actor" in revision else []),
        ("target", target),
        ("object", {"objectType": "message", **revision["object"]}),
    ]
    return template(
        f"dino.{kind}.{about}.{target['id']}",
        _head(node, kind, revision["verb"], revision["published"]) + fields,
    )


# -- sessions and presence -----------------------------------------------------------------


def login(node: Node, member: Member, sid: str) -> Event | None:
    session = {"id": sid, "objectType": "session"}
    fields = [("actor", pushes.actor(member)), ("object", session)]
    return _event(node, LOGIN, "login", ("user", member.id), fields)


def joined(node: Node, member: Member, room_id: str) -> Event | None:
    fields = [("actor", pushes.actor(member)), ("target", _room(room_id))]
    return _event(node, JOIN, "join", ("room", room_id), fields)


def left(node: Node, member: Member, room_id: str) -> Event | None:
    fields = [("actor", pushes.actor(member)), ("target", _room(room_id))]
    return _event(node, LEAVE, "leave", ("room", room_id), fields)


def dropped(node: Node) -> DropEvents | None:
    """What a session's drop makes: a leave per room its user left (the store knows
    which), and offline when it was the user's last session."""
    if not _on(node):
        return None
    actor: Fields = [("id", Hole("user_id")), ("summary", Hole("user_name"))]
    head = _head(node, LEAVE, "leave")
    head[0] = ("id", Numbered(str(head[0][1]), "n"))
    leave = template(
        f"dino.{LEAVE}.room.",
        [*head, ("actor", actor), ("target", [("id", Hole("room_id")), ("objectType", "room")])],
        routing_hole="room_id",
    )
    offline = template(
        f"dino.{OFFLINE}.user.",
        [*_head(node, OFFLINE, "offline"), ("actor", actor)],
        routing_hole="user_id",
    )
    return DropEvents(leave, offline)


# -- rooms -----------------------------------------------------------------------------


def room_created(node: Node, room: Room, by: Member | None) -> Event | None:
    owners = [{"id": uid, "content": name} for uid, name in sorted(room.owners.items())]
    acl = [{"objectType": k, "content": v} for k, v in sorted(room.acl.items())]
    attachments = [
        {"objectType": "owner", "attachments": owners},
        {"objectType": "acl", "attachments": acl},
    ]
    fields = [
        *_by(by),
        ("target", _room(room.id, room.name)),
        ("object", {"objectType": "room", "attachments": attachments}),
    ]
    return _event(node, ROOM_CREATED, "create", ("room", room.id), fields)


def room_renamed(node: Node, room_id: str, name: str, by: Member | None) -> Event | None:
    """Hole ``old_name``: the name before (``object.summary``)."""
    fields = [
        *_by(by),
        ("target", _room(room_id, name)),
        ("object", [("objectType", "room"), ("summary", Hole("old_name"))]),
    ]
    return _event(node, ROOM_RENAMED, "rename", ("room", room_id), fields)


def room_removed(node: Node, room: Room, by: Member | None) -> Event | None:
    fields = [*_by(by), ("target", _room(room.id, room.name))]
    return _event(node, ROOM_REMOVED, "remove", ("room", room.id), fields)


def acl_changed(
    node: Node, room_id: str, rules: Mapping[str, str], by: Member | None
) -> Event | None:
    acl = [{"objectType": k, "content": v} for k, v in sorted(rules.items())]
    fields = [
        *_by(by),
        ("target", _room(room_id)),
        ("object", {"objectType": "acl", "attachments": acl}),
    ]
    return _event(node, ACL_CHANGED, "update", ("room", room_id), fields)


# -- roles, moderation, status ---------------------------------------------------------------


def role_set(node: Node, room_id: str, user: Member, role: str, by: Member | None) -> Event | None:
    """``object.content``: "owner", "moderator" or "none" (the role taken away)."""
    subject = {"id": user.id, "summary": user.name, "objectType": "user", "content": role}
    fields = [*_by(by), ("target", _room(room_id)), ("object", subject)]
    return _event(node, ROLE_SET, "set_role", ("room", room_id), fields)


def kicked(node: Node, room_id: str, user: Member, reason: str, by: Member | None) -> Event | None:
    subject = {"id": user.id, "summary": user.name, "objectType": "user", "content": reason}
    fields = [*_by(by), ("target", _room(room_id)), ("object", subject)]
    return _event(node, KICK, "kick", ("room", room_id), fields)


def _scope(scope: str | None) -> tuple[tuple[str, str], Fields]:
    """Routing (what the event is about) and target of a room or global sanction."""
    if scope is None:
        return ("global", "all"), [("objectType", "global")]
    return ("room", scope), _room(scope)


def sanctioned(node: Node, kind: str, scope: str | None, sanction: Sanction) -> Event | None:
    """A ban (room or global, ``scope`` None) or mute imposed; ``object.expires`` is RFC
    3339 UTC or null (no end)."""
    about, target = _scope(scope)
    expires = None if sanction.expires_ms is None else pushes.ms_rfc3339(sanction.expires_ms)
    subject = {
        "id": sanction.user.id,
        "summary": sanction.user.name,
        "objectType": "user",
        "content": sanction.reason,
        "expires": expires,
    }
    actor = [("actor", {"id": sanction.by})] if sanction.by else []
    event_type = BAN if kind == "ban" else MUTE
    return _event(node, event_type, kind, about, [*actor, ("target", target), ("object", subject)])


def lifted(
    node: Node, kind: str, scope: str | None, user: Member, by: Member | None
) -> Event | None:
    """An unban or unmute."""
    about, target = _scope(scope)
    subject = {"id": user.id, "summary": user.name, "objectType": "user"}
    event_type = UNBAN if kind == "ban" else UNMUTE
    fields = [*_by(by), ("target", target), ("object", subject)]
    return _event(node, event_type, "un" + kind, about, fields)


def status_changed(node: Node, member: Member, status: str) -> Event | None:
    """The status a user chose (``object.content``), invisible included: the stream is
    for the product's backend, which sees what admins see."""
    chosen = {"objectType": "status", "content": status}
    fields = [("actor", pushes.actor(member)), ("object", chosen)]
    return _event(node, STATUS_CHANGED, "status", ("user", member.id), fields)


async def emit(node: Node, event: Event | None) -> None:
    """Add ``event`` (no holes) to the stream on its own, for a change that has no store
    step to carry it. Prefer the store call's ``event=``: this one is a second step."""
    if event is not None:
        await node.store.add_event(event)
