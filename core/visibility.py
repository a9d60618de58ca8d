"""Who may see invisible users: the backend (the HTTP API, ``viewer`` None) and admins
(``core.roles``: a JWT ``roles`` claim, or made admin through the API)."""

from __future__ import annotations

from server.hub import Session
from server.node import Node

from . import roles


async def sees_invisible(node: Node, viewer: Session | None) -> bool:
    if viewer is None:
        return True
    return viewer.member is not None and await roles.is_admin(node, viewer.member)
