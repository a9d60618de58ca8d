"""Who a client is: pluggable authentication at login.

``open`` believes the client (for the quickstart and trusted backends); ``jwt`` believes
only a token signed with the shared secret, whose claims win over what the client says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from core.errors import BadRequest
from core.text import checked_id


@dataclass(frozen=True)
class Identity:
    id: str | None
    name: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    roles: frozenset[str] = frozenset()  # global roles ("admin"): from a JWT claim only
    expires_at: float | None = None  # the token's exp (epoch seconds); None: never
    may_be_invisible: bool = False  # whether the user may set the status "invisible"


class Authenticator(Protocol):
    def authenticate(self, claimed: Identity, token: str | None) -> Identity:
        """The identity to log in as; raises BadRequest when it cannot be established."""
        ...


class OpenAuth:
    """Anyone may log in as anyone: the client's claim is taken as is (but never a global
    role: admins are then named through the HTTP API only)."""

    def authenticate(self, claimed: Identity, token: str | None) -> Identity:
        if claimed.id is None:
            raise BadRequest("actor.id is required")
        # Anyone may be anyone here, so anyone may be invisible too.
        return Identity(claimed.id, claimed.name, claimed.attributes, may_be_invisible=True)


class JwtAuth:
    """HS256 tokens: ``sub`` is the user id, ``name`` the display name, ``attributes``
    an object of user attributes, ``invisible: true`` lets the user be invisible.
    ``exp`` is required unless ``require_exp`` is off, and enforced when present
    (server/expiry.py closes the session when it passes)."""

    def __init__(self, secret: str, require_exp: bool = True) -> None:
        self._secret = secret
        self._required = ["exp"] if require_exp else []

    def authenticate(self, claimed: Identity, token: str | None) -> Identity:
        if not token:
            raise BadRequest(
                "a token is required: send it in the socket.io auth payload {token} "
                "or as an actor attachment with objectType 'token'"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": self._required}
            )
        except jwt.PyJWTError as exc:
            raise BadRequest(f"invalid token: {exc}") from None
        raw_id = claims.get("sub")
        if not isinstance(raw_id, str) or not raw_id:
            raise BadRequest("invalid token: it has no 'sub' claim naming the user")
        # The same rules as an id in a request: a signed token is no excuse for an id
        # that breaks logs or other clients' displays.
        user_id = checked_id(raw_id, "token sub")
        name = claims.get("name")
        raw_attributes = claims.get("attributes")
        # Only the token speaks: attributes decide room ACLs, so a client must not be
        # able to add one the token does not give.
        attributes: dict[str, str] = {}
        if isinstance(raw_attributes, dict):
            attributes.update(
                {
                    str(k): str(v)
                    for k, v in raw_attributes.items()
                    if isinstance(v, (str, int, float))
                }
            )
        raw_roles = claims.get("roles")
        roles = frozenset(
            r for r in (raw_roles if isinstance(raw_roles, list) else []) if isinstance(r, str)
        )
        display = name if isinstance(name, str) and name else user_id
        exp = claims.get("exp")
        expires_at = float(exp) if isinstance(exp, (int, float)) else None
        return Identity(
            user_id,
            display,
            attributes,
            roles,
            expires_at,
            may_be_invisible=claims.get("invisible") is True,
        )


def make_authenticator(kind: str, secret: str, require_exp: bool = True) -> Authenticator:
    return JwtAuth(secret, require_exp) if kind == "jwt" else OpenAuth()
