"""Encoding: JSON, socket.io event packets and websocket frames, each built once.

A room message goes to hundreds of recipients; everything here exists so that the text
and the frame bytes are computed once per message, not once per recipient.
"""

from __future__ import annotations

import struct
from typing import Any

import ujson

NAMESPACE = "/chat"


class Json:
    """The json module socket.io uses: ujson, compact, no needless escaping."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return ujson.dumps(obj, ensure_ascii=False, escape_forward_slashes=False)

    @staticmethod
    def loads(text: str | bytes, **_: Any) -> Any:
        return ujson.loads(text)


def event_packet(event: str, data_json: str) -> str:
    """The socket.io EVENT packet text (without the engine.io type) for ``event``.

    The name is JSON-encoded: a reply's name is ``gn_`` + the client's event name, which
    may hold ``"`` or end in a backslash."""
    return f"2{NAMESPACE},[{Json.dumps(event)},{data_json}]"


def event_packet_parts(event: str) -> tuple[str, str]:
    """``event_packet`` split around its data, to splice in text built elsewhere."""
    return f"2{NAMESPACE},[{Json.dumps(event)},", "]"


def envelope(skip_sid: str, packet_text: str) -> str:
    """What travels on a channel: the session not to deliver to ("" for none: a sender's
    own session gets its reply instead) and the socket.io packet text for the others."""
    return skip_sid + "\n" + packet_text


CONTROL_MARK = "!"  # never the first character of a socket.io sid (base64url)


def control_envelope(op: str, packet_text: str) -> str:
    """An envelope that every listener receives, after which each node applies ``op`` to
    its own listeners of the channel (for example, make them leave a removed room)."""
    return CONTROL_MARK + op + "\n" + packet_text


def open_envelope(payload: str) -> tuple[str, str]:
    """``(skip_sid, packet_text)`` of an ``envelope``; for a ``control_envelope`` the
    first is ``CONTROL_MARK + op``."""
    skip_sid, _, packet_text = payload.partition("\n")
    return skip_sid, packet_text


def websocket_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (server to client, RFC 6455 section 5.2)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


def engineio_message_frame(socketio_packet: str) -> bytes:
    """The websocket frame carrying ``socketio_packet`` as an engine.io MESSAGE ("4")."""
    return websocket_frame(("4" + socketio_packet).encode())


def activity_tail(activity: dict[str, Any]) -> str:
    """The JSON of ``activity`` minus its opening brace: the store prepends ``{"seq":N``."""
    text = Json.dumps(activity)
    return "," + text[1:] if len(text) > 2 else "}"
