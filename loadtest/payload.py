"""What the tool writes into ``object.content`` and how it reads it back.

Content is ``t=<send time, ns since epoch>;k=<log key>;`` padded with ``x`` to the
requested size. The log key says which room (or which direct conversation) the
message belongs to, so a receiver does not need the target id to account for it.

Receivers get ~20,000 ``message`` events a second in the fan-out scenario, so the
fields are found with ``bytes.find`` in the raw frame instead of decoding the whole
activity: three scans and three ``int()`` calls cost less than a JSON decode and
build no objects. Anything unexpected falls back to a full decode.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

MESSAGE_EVENT_PREFIX = b'["message",'


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
        k_end = content.index(";", t_end + 3)
        return int(content[2:t_end]), int(content[t_end + 3 : k_end])
    except ValueError:
        return None


def _int_after(raw: bytes, marker: bytes) -> int | None:
    i = raw.find(marker)
    if i < 0:
        return None
    i += len(marker)
    while raw[i : i + 1] == b" ":  # json.dumps without compact separators
        i += 1
    j = i
    n = len(raw)
    while j < n and 48 <= raw[j] <= 57:
        j += 1
    return int(raw[i:j]) if j > i else None


def fast_delivery(raw: bytes) -> Delivery | None:
    """Parse a ``message`` event frame without a JSON decode.

    Relies on our content being the only string that starts with ``t=`` and
    containing no quote or escape; the seq is the only ``"seq":`` key.
    """
    seq = _int_after(raw, b'"seq":')
    if seq is None:
        return None
    t = raw.find(b'"t=')
    if t < 0:
        return None
    t_end = raw.find(b";", t)
    k = raw.find(b";k=", t)
    if t_end < 0 or k != t_end:
        return None
    k_end = raw.find(b";", k + 3)
    if k_end < 0:
        return None
    try:
        return Delivery(seq, int(raw[t + 3 : t_end]), int(raw[k + 3 : k_end]))
    except ValueError:
        return None


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
