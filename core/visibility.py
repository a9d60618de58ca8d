"""Who may see invisible users: the one hook for roles.

Issue 10 (moderation) brings admin roles; until then only the backend (``viewer`` None,
the HTTP API) sees invisible users. Replace ``sees_invisible`` with a role check there.
"""

from __future__ import annotations

from server.hub import Session


def sees_invisible(viewer: Session | None) -> bool:
    return viewer is None
