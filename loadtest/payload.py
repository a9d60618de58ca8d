"""What the tool writes into ``object.content`` and how it reads it back.

Content is ``t=<send time, ns since epoch>;k=<log key>;`` padded with ``x`` to the
requested size. The log key says which room (or which direct conversation) the
message belongs to, so a receiver does not need the target id to account for it.

Receivers get ~20,000 ``message`` events a second in the fan-out scenario, so the
fields are found by regex in the raw frame instead of decoding the whole activity.
Anything unexpected falls back to a full decode.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

_SEQ = re.compile(rb'"seq": ?(\d+)')
_CONTENT = re.compile(rb'"t=(\d+);k=(\d+);')


class Delivery(NamedTuple):
    seq: int
    sent_ns: int
    key: int


def make_content(sent_ns: int, key: int, size: int = 0) -> str:
    """Content of at least the header, padded to ``size`` characters."""
    head = f"t={sent_ns};k={key};"
    if size > len(head):
        return head + "x" * (size - len(head))
    return head


def parse_content(content: str) -> tuple[int, int] | None:
    """(sent_ns, key) from our own content, or None if it is not ours."""
    if not content.startswith("t="):
        return None
    try:
        t_end = content.index(";", 2)
        if content[t_end + 1 : t_end + 3] != "k=":
            return None
        k_end = content.index(";", t_end + 3)
        return int(content[2:t_end]), int(content[t_end + 3 : k_end])
    except ValueError:
        return None


def fast_delivery(raw: bytes) -> Delivery | None:
    """Parse a ``message`` event frame without a JSON decode.

    Relies on our content being the only string that starts with ``t=`` and
    holding no quote or escape, and on ``"seq":`` appearing once. Two compiled
    regex searches measured ~1.5 µs per frame, against ~3 µs for chained
    ``bytes.find`` calls and ~2.5 µs for ``orjson.loads`` alone.
    """
    m = _SEQ.search(raw)
    if m is None:
        return None
    c = _CONTENT.search(raw)
    if c is None:
        return None
    return Delivery(int(m[1]), int(c[1]), int(c[2]))


def activity_delivery(activity: Any) -> Delivery | None:
    """The same fields from a decoded activity (the slow, general path)."""
    if not isinstance(activity, dict):
        return None
    seq = activity.get("seq")
    obj = activity.get("object")
    content = obj.get("content") if isinstance(obj, dict) else None
    if not isinstance(seq, int) or not isinstance(content, str):
        return None
    parsed = parse_content(content)
    if parsed is None:
        return None
    return Delivery(seq, parsed[0], parsed[1])


def decode_delivery(raw: bytes) -> Delivery | None:
    """Fast path, then a full decode of the event array as the fallback."""
    found = fast_delivery(raw)
    if found is not None:
        return found
    start = raw.find(b"[")
    if start < 0:
        return None
    try:
        arr = orjson.loads(raw[start:])
    except orjson.JSONDecodeError:
        return None
    if isinstance(arr, list) and len(arr) >= 2:
        return activity_delivery(arr[1])
    return None
