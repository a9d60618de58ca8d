"""/api/v1/messages and /api/v1/broadcast: the backend speaks to users."""

from __future__ import annotations

import asyncio
from typing import Any

from core import messages, users
from core.messages import Target
from storage.base import Member

from ..validation import (
    MAX_ID_CHARS,
    BadRequest,
    message_content,
    optional_object,
    optional_string,
    required_object,
    required_string,
)
from .base import ApiHandler, endpoint

MAX_TARGETS = 1_000
MAX_IDEMPOTENCY_KEY_CHARS = 200


def target(item: Any, where: str) -> Target:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object with objectType and id")
    kind = optional_string(item, "objectType", f"{where}.") or "user"
    if kind not in ("room", "user"):
        raise BadRequest(f"{where}.objectType must be 'room' or 'user', not '{kind}'")
    return Target(kind, required_string(item, "id", f"{where}.", max_chars=MAX_ID_CHARS))


def targets(body: dict[str, Any]) -> list[Target]:
    """``target`` (one) or ``targets`` (up to MAX_TARGETS, distinct), not both."""
    many = body.get("targets")
    if many is None:
        return [target(body.get("target"), "target")]
    if "target" in body:
        raise BadRequest("give either target or targets, not both")
    if not isinstance(many, list) or not 1 <= len(many) <= MAX_TARGETS:
        raise BadRequest(f"targets must be a list of 1 to {MAX_TARGETS} targets")
    found = [target(item, f"targets[{i}]") for i, item in enumerate(many)]
    if len(set(found)) != len(found):
        raise BadRequest("targets must not repeat a target")
    return found


def sender(body: dict[str, Any]) -> Member:
    actor = required_object(body, "actor")
    user_id = required_string(actor, "id", "actor.", max_chars=MAX_ID_CHARS)
    return Member(user_id, optional_string(actor, "summary", "actor.") or user_id)


class MessagesHandler(ApiHandler):
    @endpoint
    async def post(self) -> None:
        body = self.json_body()
        author = sender(body)
        to = targets(body)
        obj = required_object(body, "object")
        text = message_content(obj)
        kind = optional_string(obj, "objectType", "object.")
        key = self.idempotency_key()
        sent = await asyncio.gather(
            *(messages.send(self.node, author, t, text, kind, idempotency_key=key) for t in to)
        )
        self.reply(sent[0] if "targets" not in body else {"items": sent}, 201)

    def idempotency_key(self) -> str | None:
        """The Idempotency-Key header, scoped to the API so that no socket client's own
        message ids can collide with it."""
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
            raise BadRequest(
                f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
            )
        return "api:" + key


class BroadcastHandler(ApiHandler):
    @endpoint
    async def post(self) -> None:
        body = self.json_body()
        obj = required_object(body, "object")
        text = message_content(obj)
        kind = optional_string(obj, "objectType", "object.")
        actor = optional_object(body, "actor")
        author = sender(body) if actor else None
        self.reply(await users.broadcast(self.node, text, kind, author))
