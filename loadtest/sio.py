"""Engine.io v4 / socket.io v5 packet encoding, for one namespace, over websocket.

On the websocket transport every frame is one engine.io packet: a type digit then
the data. Socket.io packets travel inside engine.io MESSAGE packets (type 4), so
an event on ``/chat`` reads ``42/chat,["event",{...}]`` and its ack
``43/chat,<id>[...]``. Binary attachments (types 5/6) are never used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# engine.io packet types (first byte of a frame)
EIO_OPEN = ord("0")
EIO_CLOSE = ord("1")
EIO_PING = ord("2")
EIO_PONG = ord("3")
EIO_MESSAGE = ord("4")

# socket.io packet types (second byte of an engine.io MESSAGE)
SIO_CONNECT = ord("0")
SIO_DISCONNECT = ord("1")
SIO_EVENT = ord("2")
SIO_ACK = ord("3")
SIO_CONNECT_ERROR = ord("4")

PONG = b"3"
EIO_QUERY = "EIO=4&transport=websocket"


@dataclass(frozen=True, slots=True)
class SioPacket:
    """A decoded socket.io packet on our namespace."""

    kind: int  # one of SIO_*
    ack_id: int | None
    data: Any  # JSON value: the event array, ack array, or connect payload


def connect_packet(namespace: str, auth: dict[str, Any] | None = None) -> bytes:
    """``40/chat,`` (with the auth object after the comma, if any)."""
    body = orjson.dumps(auth) if auth else b""
    return b"40" + namespace.encode() + b"," + body


def event_packet(namespace: str, event: str, data: Any, ack_id: int | None = None) -> bytes:
    """``42/chat,[<id>]["event",data]``."""
    ack = str(ack_id).encode() if ack_id is not None else b""
    return b"42" + namespace.encode() + b"," + ack + orjson.dumps([event, data])


def namespace_prefix(namespace: str) -> bytes:
    """Bytes that follow the two type digits on our namespace: ``/chat,``.

    The default namespace ``/`` is written without a prefix.
    """
    return b"" if namespace == "/" else namespace.encode() + b","


def decode_message(frame: bytes, prefix: bytes) -> SioPacket | None:
    """Decode an engine.io MESSAGE frame (``4...``) on our namespace.

    Returns None for another namespace or an unsupported packet type.
    """
    if len(frame) < 2:
        return None
    kind = frame[1]
    pos = 2
    if prefix:
        if not frame.startswith(prefix, pos):
            return None
        pos += len(prefix)
    ack_id: int | None = None
    end = pos
    while end < len(frame) and 48 <= frame[end] <= 57:
        end += 1
    if end > pos and kind in (SIO_EVENT, SIO_ACK):
        ack_id = int(frame[pos:end])
        pos = end
    body = frame[pos:]
    data = orjson.loads(body) if body else None
    if kind in (SIO_CONNECT, SIO_DISCONNECT, SIO_EVENT, SIO_ACK, SIO_CONNECT_ERROR):
        return SioPacket(kind, ack_id, data)
    return None


def decode_open(frame: bytes) -> dict[str, Any]:
    """The engine.io OPEN handshake ``0{"sid":...,"pingInterval":...}``."""
    value = orjson.loads(frame[1:])
    if not isinstance(value, dict):
        raise ValueError(f"bad engine.io OPEN packet: {frame[:80]!r}")
    return value
