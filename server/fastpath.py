"""The one packet shape a connected session sends all day, handled in one step.

Almost every packet a logged-in client sends is a socket.io EVENT on dino's namespace,
``2/chat,<ack id>["event",{...}]``. python-socketio takes it through four layers
(engine.io's event dispatch, ``Packet`` decoding with its own scan for binary data, the
event dispatch with a log call and a connected check, the namespace lookup) and then
encodes the reply a second time for the ack, although the namespace has just encoded the
same object for ``gn_<event>``. Here such a packet is parsed once and answered by the
namespace (``Answerer``), and the ack reuses the reply's JSON text.

Anything else (another namespace or packet type, an event named like one of socket.io's
reserved ones, JSON that is not an array starting with a string, a session that is not
connected to the namespace) returns None and goes the ordinary way, with the ordinary
behaviour, errors included.
"""

from __future__ import annotations

from typing import Any, Protocol

from .wire import NAMESPACE, Json

EVENT_PREFIX = "2" + NAMESPACE + ","
_DIGITS = frozenset("0123456789")
# Names python-socketio treats specially: leave them to it.
_RESERVED = frozenset(("connect", "disconnect", "connect_error"))


class Answerer(Protocol):
    async def answer(self, event: str, sid: str, payload: Any) -> str:
        """Handle ``event`` from ``sid`` (sending ``gn_<event>``); the reply's JSON."""
        ...


def parse_event(data: str) -> tuple[int | None, str, Any] | None:
    """``(ack id or None, event, payload)`` of a plain EVENT packet on dino's
    namespace, or None when the packet is of any other shape."""
    if not data.startswith(EVENT_PREFIX):
        return None
    start = end = len(EVENT_PREFIX)
    size = len(data)
    while end < size and data[end] in _DIGITS:
        end += 1
    if end == size or data[end] != "[" or end - start > 15:
        return None
    try:
        args = Json.loads(data[end:])
    except ValueError:
        return None
    if not isinstance(args, list) or not args:
        return None
    event = args[0]
    if not isinstance(event, str) or event in _RESERVED:
        return None
    ack = int(data[start:end]) if end > start else None
    return ack, event, args[1] if len(args) > 1 else None


def ack_packet(ack: int, reply_json: str) -> str:
    """The socket.io ACK packet text answering ``ack`` with one argument."""
    return f"3{NAMESPACE},{ack}[{reply_json}]"
