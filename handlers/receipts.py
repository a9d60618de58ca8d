"""read and received: move the user's position in a log forward (``core.receipts``)."""

from __future__ import annotations

from typing import Any

from core import pushes, receipts
from server.hub import Session
from server.node import Node

from .messages import target
from .validation import BadRequest, required_object


def seq_of(request: dict[str, Any]) -> int:
    value = required_object(request, "object").get("seq")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("object.seq must be an integer of at least 1")
    return value


async def _mark(
    node: Node, session: Session, request: dict[str, Any], kind: str
) -> pushes.Activity:
    to = target(request)
    moved = await receipts.mark(node, session, to, kind, seq_of(request))
    return {
        "verb": kind,
        "target": pushes.log_target(to.kind, to.id),
        "object": {"seq": moved.position.seq, "epoch": moved.position.epoch, "moved": moved.moved},
    }


async def read(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    return await _mark(node, session, request, "read")


async def received(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    return await _mark(node, session, request, "received")
