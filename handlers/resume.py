"""resume: replay what a reconnected client missed (``core.resume``)."""

from __future__ import annotations

from typing import Any

from core import pushes
from core.resume import MAX_LOGS, LogRef
from core.resume import resume as resume_logs
from server.hub import Session
from server.node import Node

from .validation import MAX_ID_CHARS, BadRequest, optional_string, required_string

MAX_EPOCH_CHARS = 64


def log_refs(request: dict[str, Any]) -> list[LogRef]:
    """``object.attachments``: up to MAX_LOGS distinct ``{id, objectType, seq, epoch}``."""
    obj = request.get("object")
    if not isinstance(obj, dict):
        raise BadRequest("object must be an object with the logs to resume as attachments")
    items = obj.get("attachments")
    if not isinstance(items, list) or len(items) > MAX_LOGS:
        raise BadRequest(f"object.attachments must be a list of at most {MAX_LOGS} logs")
    refs = []
    for index, item in enumerate(items):
        where = f"object.attachments[{index}]."
        if not isinstance(item, dict):
            raise BadRequest(f"object.attachments[{index}] must be an object")
        kind = optional_string(item, "objectType", where) or "room"
        if kind not in ("room", "user"):
            raise BadRequest(f"{where}objectType must be 'room' or 'user', not '{kind}'")
        log_id = required_string(item, "id", where, max_chars=MAX_ID_CHARS)
        seq = item.get("seq", 0)
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise BadRequest(f"{where}seq must be an integer of at least 0")
        epoch = optional_string(item, "epoch", where, max_chars=MAX_EPOCH_CHARS)
        refs.append(LogRef(kind, log_id, seq, epoch))
    if len({(r.kind, r.id) for r in refs}) != len(refs):
        raise BadRequest("object.attachments names a log twice")
    return refs


async def resume(node: Node, session: Session, request: dict[str, Any]) -> pushes.Activity:
    outcomes = await resume_logs(node, session, log_refs(request))
    return pushes.resume_reply(o.as_activity() for o in outcomes)
