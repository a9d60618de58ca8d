"""Typed errors of the actions, mapped once per entry point to its status codes.

| error        | socket.io status | HTTP |
|--------------|------------------|------|
| BadRequest   | 400              | 400  |
| Forbidden    | 403              | 403  |
| NotFound     | 400              | 404  |
| Conflict     | 400              | 409  |
| Unavailable  | 500              | 503  |

The message of each is shown to the caller as is, so it names the field or the thing
that was wrong and never carries internals. ``Unavailable`` is the store's own
``StoreUnavailable`` (the backing service cannot be reached; retry later).
"""

from __future__ import annotations

from storage.base import StoreUnavailable as Unavailable

__all__ = ["ActionError", "BadRequest", "Conflict", "Forbidden", "NotFound", "Unavailable"]


class ActionError(Exception):
    """A refusal whose message is for the caller."""


class BadRequest(ActionError):
    """The caller's mistake: a malformed or impossible request."""


class Forbidden(ActionError):
    """The caller may not do this (ownership, access rules)."""


class NotFound(BadRequest):
    """The room or user named does not exist. A BadRequest to the socket protocol, whose
    clients have always received 400 for it."""


class Conflict(BadRequest):
    """The request clashes with what exists (a room name in use)."""
