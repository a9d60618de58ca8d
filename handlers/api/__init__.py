"""The HTTP API for backends, under /api/v1/ on every node's port.

Thin adapters like the socket handlers: read and validate the JSON body, call the core
action, shape the reply. ``routes`` is what the composition mounts.
"""

from __future__ import annotations

from typing import Any

from server.node import Node

from .admin import AdminStatsHandler
from .base import NotFoundHandler
from .messages import BroadcastHandler, MessagesHandler
from .moderation import (
    KickHandler,
    MuteHandler,
    MuteListHandler,
    RoomMessageHandler,
    RoomRoleHandler,
    RoomRulesHandler,
    SanctionHandler,
    SanctionListHandler,
    UserRoleHandler,
)
from .openapi import OpenApiHandler
from .rooms import (
    RoomAclHandler,
    RoomHandler,
    RoomHistoryHandler,
    RoomsHandler,
    RoomUsersHandler,
)
from .users import UserDisconnectHandler, UserHandler

_ID = r"([^/]+)"


def routes(node: Node) -> list[tuple[str, Any, dict[str, Any]]]:
    handlers: list[tuple[str, Any]] = [
        (r"/api/v1/openapi\.json", OpenApiHandler),
        (r"/api/v1/messages", MessagesHandler),
        (r"/api/v1/broadcast", BroadcastHandler),
        (r"/api/v1/rooms", RoomsHandler),
        (rf"/api/v1/rooms/{_ID}", RoomHandler),
        (rf"/api/v1/rooms/{_ID}/acl", RoomAclHandler),
        (rf"/api/v1/rooms/{_ID}/users", RoomUsersHandler),
        (rf"/api/v1/rooms/{_ID}/history", RoomHistoryHandler),
        (rf"/api/v1/users/{_ID}", UserHandler),
        (rf"/api/v1/users/{_ID}/disconnect", UserDisconnectHandler),
        (rf"/api/v1/users/{_ID}/role", UserRoleHandler),
        (rf"/api/v1/rooms/{_ID}/roles/{_ID}", RoomRoleHandler),
        (rf"/api/v1/rooms/{_ID}/users/{_ID}/kick", KickHandler),
        (rf"/api/v1/rooms/{_ID}/bans", SanctionListHandler),
        (rf"/api/v1/rooms/{_ID}/bans/{_ID}", SanctionHandler),
        (rf"/api/v1/rooms/{_ID}/mutes", MuteListHandler),
        (rf"/api/v1/rooms/{_ID}/mutes/{_ID}", MuteHandler),
        (r"/api/v1/bans", SanctionListHandler),
        (rf"/api/v1/bans/{_ID}", SanctionHandler),
        (rf"/api/v1/rooms/{_ID}/rules", RoomRulesHandler),
        (rf"/api/v1/rooms/{_ID}/messages/{_ID}", RoomMessageHandler),
        (r"/api/v1/admin/stats", AdminStatsHandler),
        (r"/api(?:/.*)?", NotFoundHandler),
    ]
    return [(path, handler, {"node": node}) for path, handler in handlers]
