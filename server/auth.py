"""Who a client is: pluggable authentication at login.

``open`` believes the client (for the quickstart and trusted backends); ``jwt`` believes
only a token signed with the shared secret, whose claims win over what the client says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from core.errors import BadRequest


@dataclass(frozen=True)
class Identity:
    id: str | None
    name: str | None
    attributes: dict[str, str] = field(default_factory=dict)


class Authenticator(Protocol):
    def authenticate(self, claimed: Identity, token: str | None) -> Identity:
        """The identity to log in as; raises BadRequest when it cannot be established."""
        ...


class OpenAuth:
    """Anyone may log in as anyone: the client's claim is taken as is."""

    def authenticate(self, claimed: Identity, token: str | None) -> Identity:
        if claimed.id is None:
            raise BadRequest("actor.id is required")
        return claimed


class JwtAuth:
    """HS256 tokens: ``sub`` is the user id, ``name`` the display name, ``attributes``
    an object of user attributes. Expiry (``exp``) is enforced when present."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def authenticate(self, claimed: Identity, token: str | None) -> Identity:
        if not token:
            raise BadRequest(
                "a token is required: send it in the socket.io auth payload {token} "
                "or as an actor attachment with objectType 'token'"
            )
        try:
            claims: dict[str, Any] = jwt.decode(token, self._secret, algorithms=["HS256"])
        except jwt.PyJWTError as exc:
            raise BadRequest(f"invalid token: {exc}") from None
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise BadRequest("invalid token: it has no 'sub' claim naming the user")
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
        return Identity(user_id, name if isinstance(name, str) and name else user_id, attributes)


def make_authenticator(kind: str, secret: str) -> Authenticator:
    return JwtAuth(secret) if kind == "jwt" else OpenAuth()
