"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Written beside the handlers and checked against them: tests validate it with
openapi-spec-validator and run schemathesis against a live node, which fails on any
response that does not match it.
"""

from __future__ import annotations

from typing import Any

from core.access import ACTIONS
from core.messages import MAX_HISTORY_LIMIT
from core.sanctions import MAX_DURATION_SECONDS

from ..validation import MAX_ID_CHARS, MAX_NAME_CHARS
from .base import ApiHandler
from .messages import MAX_IDEMPOTENCY_KEY_CHARS, MAX_TARGETS

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> Schema:
    return {"description": description, "content": _json(_ref("Error"))}


# Ids and names: printable (no control characters), not blank, spaces around them trimmed.
_PRINTABLE = r"^[^\u0000-\u001f\u007f]*\S[^\u0000-\u001f\u007f]*$"
_ID: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": _PRINTABLE}
_NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_CHARS,
    "pattern": _PRINTABLE,
}
_USER_REF: Schema = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": _ID, "summary": _NAME},
}
_TARGET: Schema = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": _ID, "objectType": {"enum": ["room", "user"], "default": "user"}},
}
_CONTENT_OBJECT: Schema = {
    "type": "object",
    "required": ["content"],
    "properties": {
        "content": {
            "type": "string",
            "minLength": 1,
            "description": "UTF-8, at most --max-message-bytes",
        },
        "objectType": _NAME,
    },
}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what was wrong, readable"}},
    },
    "Message": {
        "type": "object",
        "description": "A stored message, exactly as socket clients receive it as `message`.",
        "required": ["seq", "id", "published", "verb", "actor", "target", "object"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1, "description": "position in its log"},
            "id": {"type": "string"},
            "published": {"type": "string", "format": "date-time"},
            "verb": {
                "enum": ["send", "delete", "edit"],
                "description": "send: a message; delete / edit: the entry that deleted or "
                "edited the message named by object.id",
            },
            "actor": {"type": "object", "required": ["id", "summary"]},
            "target": {"type": "object", "required": ["id", "objectType"]},
            "object": {
                "type": "object",
                "description": "a deleted message has no content",
            },
            "deleted": {"type": "string", "format": "date-time"},
            "updated": {"type": "string", "format": "date-time"},
        },
    },
    "Revision": {
        "type": "object",
        "description": "The log entry that deleted or edited a message (own seq); members "
        "receive it as gn_message_deleted / gn_message_edited.",
        "required": ["seq", "id", "published", "verb", "target", "object"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "id": {"type": "string"},
            "published": {"type": "string", "format": "date-time"},
            "verb": {"enum": ["delete", "edit"]},
            "target": {"type": "object", "required": ["id", "objectType"]},
            "object": {
                "type": "object",
                "required": ["id", "seq"],
                "properties": {
                    "id": {"type": "string"},
                    "seq": {"type": "integer"},
                    "content": {"type": "string"},
                },
            },
        },
    },
    "Sanction": {
        "type": "object",
        "description": "A ban or a mute in force",
        "required": ["user", "reason", "by", "expires"],
        "properties": {
            "user": _USER_REF,
            "reason": {"type": "string"},
            "by": {"type": ["string", "null"], "description": "who imposed it; null: the API"},
            "expires": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "UTC; null: until lifted",
            },
        },
    },
    "SanctionRequest": {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 512},
            "duration": {
                "description": "'30s', '15m', '2h', '7d', seconds, or null (until lifted)",
                "oneOf": [
                    {"type": "string", "pattern": r"^\s*\d{1,9}\s*[smhd]?\s*$"},
                    {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_SECONDS},
                    {"type": "null"},
                ],
            },
        },
    },
    "Rules": {
        "type": "object",
        "description": "action -> rule. A rule is an object of attribute -> condition "
        "(all must hold) or a list of such objects (any may hold). A condition is a value "
        "list 'a,b', a range 'min:max', {'in': [values]}, {'min': n, 'max': n} or "
        "{'not': condition}. null removes the action's rule.",
        "propertyNames": {"enum": list(ACTIONS)},
    },
    "MessageRequest": {
        "type": "object",
        "required": ["actor", "object"],
        "description": "Give `target` for one log or `targets` to notify many at once.",
        "oneOf": [{"required": ["target"]}, {"required": ["targets"]}],
        "properties": {
            "actor": _USER_REF,
            "target": _TARGET,
            "targets": {
                "type": "array",
                "items": _TARGET,
                "minItems": 1,
                "maxItems": MAX_TARGETS,
                "uniqueItems": True,
            },
            "object": _CONTENT_OBJECT,
        },
    },
    "Broadcast": {
        "type": "object",
        "required": ["verb", "published", "object"],
        "properties": {
            "verb": {"const": "broadcast"},
            "published": {"type": "string", "format": "date-time"},
            "actor": {"type": "object"},
            "object": {"type": "object", "required": ["content", "objectType"]},
        },
    },
    "BroadcastRequest": {
        "type": "object",
        "required": ["object"],
        "properties": {"actor": _USER_REF, "object": _CONTENT_OBJECT},
    },
    "Room": {
        "type": "object",
        "required": ["id", "name", "owners", "acl", "moderators", "rules"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "owners": {"type": "array", "items": _USER_REF},
            "acl": {"type": "object", "additionalProperties": {"type": "string"}},
            "moderators": {"type": "array", "items": _USER_REF},
            "rules": {"type": "object", "description": "access rules per action"},
        },
    },
    "RoomRequest": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": _NAME,
            "owners": {"type": "array", "items": _USER_REF},
            "acl": {
                "type": "object",
                "description": "attribute -> rule: a value list `a,b` or a range `min:max`",
                "propertyNames": _NAME,
                "additionalProperties": {"type": "string", "pattern": r"\S"},
            },
        },
    },
    "RoomSummary": {
        "type": "object",
        "required": ["id", "name", "members"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "members": {"type": "integer", "minimum": 0},
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "summary", "online", "sessions", "rooms", "last_seen"],
        "properties": {
            "id": {"type": "string"},
            "summary": {"type": "string"},
            "online": {"type": "boolean"},
            "sessions": {"type": "integer", "minimum": 0, "description": "on every node"},
            "rooms": {"type": "array", "items": {"type": "string"}},
            "last_seen": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "when the user's last session ended; null if never",
            },
            "status": {
                "type": "string",
                "enum": ["online", "away", "invisible", "offline"],
                "description": "the status the user set (offline without sessions); "
                "GET only",
            },
        },
    },
    "AdminStats": {
        "type": "object",
        "required": ["at_ms", "answered_by", "nodes", "rooms"],
        "properties": {
            "at_ms": {"type": "integer", "description": "server time, ms since the epoch"},
            "answered_by": {"type": "string"},
            "nodes": {
                "type": "array",
                "description": "nodes holding a lease, with the numbers each published at "
                "its last heartbeat (counters are totals since it started)",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string"},
                        "at_ms": {"type": "integer"},
                        "connections": {
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 0},
                        },
                        "sessions": {"type": "integer", "minimum": 0},
                        "users": {"type": "integer", "minimum": 0},
                        "rooms_local": {"type": "integer", "minimum": 0},
                        "events": {"type": "integer", "minimum": 0},
                        "messages": {"type": "integer", "minimum": 0},
                        "deliveries": {"type": "integer", "minimum": 0},
                        "draining": {"type": "boolean"},
                        "redis_up": {"type": "boolean"},
                    },
                },
            },
            "rooms": {
                "type": "object",
                "required": ["total", "busiest"],
                "properties": {
                    "total": {"type": "integer", "minimum": 0},
                    "busiest": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "name", "members", "last_seq"],
                            "properties": {
                                "id": {"type": "string"},
                                "name": {"type": "string"},
                                "members": {"type": "integer", "minimum": 0},
                                "last_seq": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                },
            },
        },
    },
}


def _items(schema: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": schema}},
    }


_COMMON = {
    "400": _error("a malformed request; the message names the field"),
    "401": _error("no API key, or a wrong one"),
    "413": _error("the body is larger than --max-api-body-bytes"),
    "503": _error("storage is unavailable; retry after Retry-After seconds"),
}
_ROOM_ID = {"name": "room_id", "in": "path", "required": True, "schema": {"type": "string"}}
_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, responses: dict[str, Schema], **extra: Any) -> Schema:
    return {"summary": summary, "responses": {**responses, **_COMMON}, **extra}


def _ok(description: str, schema: Schema, code: str = "200") -> dict[str, Schema]:
    return {code: {"description": description, "content": _json(schema)}}


def _body(name: str) -> Schema:
    return {"required": True, "content": _json(_ref(name))}


_NOT_FOUND = {"404": _error("no such room or user")}
_CONFLICT = {"409": _error("the message changed meanwhile; retry")}

PATHS: dict[str, Schema] = {
    "/messages": {
        "post": _op(
            "Store a message in a room or a direct conversation and deliver it on every node",
            {
                **_ok(
                    "the stored message (or, for `targets`, one per target)",
                    {"oneOf": [_ref("Message"), _items(_ref("Message"))]},
                    "201",
                ),
                **_NOT_FOUND,
            },
            requestBody=_body("MessageRequest"),
            parameters=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "a retry with the same key stores nothing new and "
                    "returns the first result (kept --idempotency-ttl seconds)",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
                    },
                }
            ],
        )
    },
    "/broadcast": {
        "post": _op(
            "Push gn_broadcast to every connected session on every node (not stored)",
            _ok("the pushed activity", _ref("Broadcast")),
            requestBody=_body("BroadcastRequest"),
        )
    },
    "/rooms": {
        "get": _op(
            "Every room with its member count", _ok("rooms by name", _items(_ref("RoomSummary")))
        ),
        "post": _op(
            "Create a room with owners and an ACL",
            {**_ok("the new room", _ref("Room"), "201"), "409": _error("the name is taken")},
            requestBody=_body("RoomRequest"),
        ),
    },
    "/rooms/{room_id}": {
        "parameters": [_ROOM_ID],
        "get": _op("A room", {**_ok("the room", _ref("Room")), **_NOT_FOUND}),
        "patch": _op(
            "Rename a room; members on every node receive gn_room_renamed",
            {
                **_ok("the renamed room", _ref("Room")),
                **_NOT_FOUND,
                "409": _error("the name is taken"),
            },
            requestBody={
                "required": True,
                "content": _json(
                    {"type": "object", "required": ["name"], "properties": {"name": _NAME}}
                ),
            },
        ),
        "delete": _op(
            "Remove a room and its history; members on every node receive gn_room_removed",
            {**_ok("the removed room", _ref("Room")), **_NOT_FOUND},
        ),
    },
    "/rooms/{room_id}/acl": {
        "parameters": [_ROOM_ID],
        "put": _op(
            "Replace a room's ACL",
            {**_ok("the room", _ref("Room")), **_NOT_FOUND},
            requestBody={
                "required": True,
                "content": _json(
                    {
                        "type": "object",
                        "properties": {"acl": SCHEMAS["RoomRequest"]["properties"]["acl"]},
                    }
                ),
            },
        ),
    },
    "/rooms/{room_id}/users": {
        "parameters": [_ROOM_ID],
        "get": _op(
            "Users in a room, on every node",
            {**_ok("users by id", _items(_USER_REF)), **_NOT_FOUND},
        ),
    },
    "/rooms/{room_id}/history": {
        "parameters": [
            _ROOM_ID,
            {
                "name": "since",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0},
                "description": "the oldest messages with seq > since",
            },
            {
                "name": "before",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1},
                "description": "only messages with seq < before",
            },
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_LIMIT},
            },
        ],
        "get": _op(
            "A room's messages, oldest first",
            {**_ok("messages", _items(_ref("Message"))), **_NOT_FOUND},
        ),
    },
    "/users/{user_id}": {
        "parameters": [_USER_ID],
        "get": _op(
            "Whether a user is online, on any node", {**_ok("the user", _ref("User")), **_NOT_FOUND}
        ),
    },
    "/users/{user_id}/disconnect": {
        "parameters": [_USER_ID],
        "post": _op(
            "Close every session of a user on every node (each receives gn_session_closed)",
            {**_ok("the user as they were", _ref("User")), **_NOT_FOUND},
            requestBody={
                "required": False,
                "content": _json({"type": "object", "properties": {"reason": _NAME}}),
            },
        ),
    },
    "/admin/stats": {
        "get": _op(
            "The cluster at a glance, for the admin page (/admin/): nodes alive with their "
            "connections and counters, the busiest rooms by members",
            _ok("the overview", _ref("AdminStats")),
            parameters=[
                {
                    "name": "rooms",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 50},
                    "description": "how many of the busiest rooms (default 10)",
                }
            ],
        ),
    },
}


_ROOM_AND_USER = [_ROOM_ID, _USER_ID]
_FORBIDDEN = {"403": _error("refused: the rank of the user acted upon, or yourself")}
_SANCTION_PATHS: dict[str, Schema] = {}
for _kind, _scope, _params in (
    ("ban", "/rooms/{room_id}/bans", [_ROOM_ID]),
    ("mute", "/rooms/{room_id}/mutes", [_ROOM_ID]),
    ("ban", "/bans", []),
):
    _where = "in every room (closes the user's sessions, refuses login)" if not _params else ""
    _SANCTION_PATHS[_scope] = {
        **({"parameters": _params} if _params else {}),
        "get": _op(
            f"The {_kind}s in force {_where}".strip(),
            {**_ok(f"{_kind}s by user id", _items(_ref("Sanction"))), **_NOT_FOUND},
        ),
    }
    _SANCTION_PATHS[_scope + "/{user_id}"] = {
        "parameters": [*_params, _USER_ID],
        "put": _op(
            f"{_kind.capitalize()} a user {_where}; their sessions receive gn_{_kind}ned".replace(
                "gn_mutened", "gn_muted"
            ).replace("gn_banned", "gn_banned"),
            {**_ok(f"the {_kind}", _ref("Sanction")), **_NOT_FOUND, **_FORBIDDEN},
            requestBody={"required": False, "content": _json(_ref("SanctionRequest"))},
        ),
        "delete": _op(
            f"Lift a {_kind}",
            {
                **_ok(f"the {_kind} lifted", _ref("Sanction")),
                "404": _error(f"no such room, or no {_kind} in force"),
            },
        ),
    }

PATHS.update(_SANCTION_PATHS)
PATHS.update(
    {
        "/rooms/{room_id}/roles/{user_id}": {
            "parameters": _ROOM_AND_USER,
            "put": _op(
                "Make a user an owner or moderator of a room, or neither",
                {**_ok("the room", _ref("Room")), **_NOT_FOUND},
                requestBody={
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["role"],
                            "properties": {"role": {"enum": ["owner", "moderator", "none"]}},
                        }
                    ),
                },
            ),
        },
        "/users/{user_id}/role": {
            "parameters": [_USER_ID],
            "put": _op(
                "Make a user a global admin (every right in every room), or not",
                _ok(
                    "the user and role",
                    {
                        "type": "object",
                        "required": ["id", "summary", "role"],
                        "properties": {
                            "id": {"type": "string"},
                            "summary": {"type": "string"},
                            "role": {"enum": ["admin", "none"]},
                        },
                    },
                ),
                requestBody={
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["role"],
                            "properties": {"role": {"enum": ["admin", "none"]}},
                        }
                    ),
                },
            ),
        },
        "/rooms/{room_id}/users/{user_id}/kick": {
            "parameters": _ROOM_AND_USER,
            "post": _op(
                "Every session of the user leaves the room on every node (gn_kicked); "
                "the members receive gn_user_kicked",
                {
                    **_ok(
                        "who left",
                        {
                            "type": "object",
                            "required": ["room", "user", "sessions"],
                            "properties": {
                                "room": {"type": "string"},
                                "user": {"type": "string"},
                                "sessions": {"type": "integer", "minimum": 0},
                            },
                        },
                    ),
                    **_NOT_FOUND,
                },
                requestBody={
                    "required": False,
                    "content": _json(
                        {"type": "object", "properties": {"reason": {"type": "string"}}}
                    ),
                },
            ),
        },
        "/rooms/{room_id}/rules": {
            "parameters": [_ROOM_ID],
            "get": _op(
                "A room's access rules per action",
                {
                    **_ok(
                        "the rules",
                        {"type": "object", "required": ["rules"], "properties": {"rules": {}}},
                    ),
                    **_NOT_FOUND,
                },
            ),
            "put": _op(
                "Replace a room's access rules per action; members who no longer meet "
                "the join rule leave it (gn_kicked, reason 'access rules changed')",
                {
                    **_ok(
                        "the rules",
                        {"type": "object", "required": ["rules"], "properties": {"rules": {}}},
                    ),
                    **_NOT_FOUND,
                },
                requestBody={
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["rules"],
                            "properties": {"rules": _ref("Rules")},
                        }
                    ),
                },
            ),
        },
        "/rooms/{room_id}/messages/{message_id}": {
            "parameters": [
                _ROOM_ID,
                {
                    "name": "message_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
            ],
            "delete": _op(
                "Delete a message: history keeps it without content; members receive "
                "gn_message_deleted",
                {**_ok("the deleting entry", _ref("Revision")), **_NOT_FOUND, **_CONFLICT},
            ),
            "patch": _op(
                "Edit a message: history shows the new content; members receive gn_message_edited",
                {**_ok("the editing entry", _ref("Revision")), **_NOT_FOUND, **_CONFLICT},
                requestBody={
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["content"],
                            "properties": {"content": {"type": "string", "minLength": 1}},
                        }
                    ),
                },
            ),
        },
    }
)


def document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dino HTTP API",
            "version": "1",
            "description": "For backends: send messages and notifications, manage rooms, "
            "see who is online. Every node serves it; changes reach every node.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": PATHS,
    }


class OpenApiHandler(ApiHandler):
    """The document itself: public whenever the API is on (it holds no secret)."""

    def authorized(self, keys: tuple[str, ...]) -> bool:
        return True

    def get(self) -> None:
        self.reply(document())
