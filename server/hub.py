"""The hub: this node's connections, who they are, what they listen to, and the fan-out.

Routing is by *channel*: ``room:<id>`` for a room, ``user:<id>`` for all sessions of a
user. The broker tells the hub when something was published on a channel; the hub writes
it to the local sessions interested in that channel. It asks the broker to subscribe when
the first local session becomes interested in a channel and to unsubscribe after the last
one leaves, so a node only receives traffic for rooms and users it serves.

Fan-out cost is what the node's throughput is made of: one packet text and one websocket
frame per published message, then per recipient one dict lookup and one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter

from engineio import packet as eio_packet
from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError

from storage.base import Member

from .broker import Broker, MemoryBroker
from .ratelimit import TokenBucket
from .wire import CONTROL_MARK, engineio_message_frame, open_envelope

Control = Callable[[str, str, tuple[str, ...]], None]
"""``control(op, channel, sids)``: applies a ``wire.control_envelope``'s op to the local
listeners ``sids`` of ``channel``, after they received its packet."""


class Link:
    """The write side of one websocket, written directly rather than through a queue.

    engine.io queues outgoing packets and a writer task sends them; that costs a task
    switch per packet. A lean session (``lean.py``) writes everything here; an upgraded
    polling session writes its MESSAGE packets here once its queue has drained, so they
    cannot overtake older queued ones (``transport.DirectWebSocket``).
    """

    def __init__(self, stream: IOStream, on_overflow: Callable[[], None]) -> None:
        self.stream = stream
        self._on_overflow = on_overflow
        # A plain IOStream may be written with socket.send while its buffer is empty;
        # anything else (TLS) goes through IOStream.write.
        self._raw = type(stream) is IOStream

    def write(self, frame: bytes) -> None:
        stream = self.stream
        if stream.closed():
            return
        if self._raw and not stream.writing():
            try:
                sent = stream.socket.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the read side sees the broken connection and closes it
            if sent == len(frame):
                return
            frame = frame[sent:]
        try:
            stream.write(frame)
        except StreamBufferFullError:
            self._on_overflow()
        except StreamClosedError:
            pass


@dataclass(eq=False)
class Session:
    """One socket.io connection to the /chat namespace on this node."""

    sid: str
    eio_sid: str
    member: Member | None = None  # None until login
    token: str | None = None  # from the socket.io auth payload, for jwt login
    bucket: TokenBucket | None = None  # None: not rate limited
    attributes: dict[str, str] = field(default_factory=dict)
    rooms: set[str] = field(default_factory=set)
    may_be_invisible: bool = False  # from login (server/auth.py)
    expiry: asyncio.TimerHandle | None = None  # closes the session when its token expires
    # Conversation log -> the newest seq a resume wrote to this session, while late live
    # copies of those are skipped (core/resume.py).
    replayed: dict[str, int] = field(default_factory=dict)


@dataclass
class HubStats:
    published: int = 0  # messages received from the broker
    delivered: int = 0  # writes to recipients
    slow_consumers_dropped: int = 0


class Hub:
    def __init__(
        self, enqueue: Callable[[str, eio_packet.Packet], bool], links: dict[str, Link]
    ) -> None:
        """``enqueue(eio_sid, packet)`` queues a packet on engine.io's own path; ``links``
        are the direct writers of websocket connections, keyed by engine.io sid."""
        self._enqueue = enqueue
        self.links = links
        # One node needs no pub/sub: publishing is delivering. A cluster swaps in Redis.
        self.broker: Broker = MemoryBroker(self.deliver)
        self.sessions: dict[str, Session] = {}
        self._listeners: dict[str, set[str]] = {}  # channel -> sids
        self._subscribing: dict[str, asyncio.Future[None]] = {}  # channel -> in flight
        # channel -> sid -> payloads held back from that listener (``hold``).
        self._held: dict[str, dict[str, list[str]]] = {}
        # channel -> sid -> which payloads not to write to that listener (``skip_if``).
        self._skips: dict[str, dict[str, Callable[[str], bool]]] = {}
        self.stats = HubStats()
        # Told how long each fan-out took (server/metrics.py); None: not measured.
        self.observe_fanout: Callable[[float], None] | None = None
        self.on_control: Control = lambda op, channel, sids: None

    # -- sessions ----------------------------------------------------------------------

    def add_session(self, sid: str, eio_sid: str) -> Session:
        session = Session(sid, eio_sid)
        self.sessions[sid] = session
        return session

    def remove_session(self, sid: str) -> Session | None:
        return self.sessions.pop(sid, None)

    # -- interest ----------------------------------------------------------------------

    async def listen(self, channel: str, sid: str) -> None:
        """Route ``channel`` to session ``sid``; subscribes the node on first interest.

        Returns after the subscription is active, so nothing published afterwards is
        missed by this session (a second listener waits for the first one's subscribe)."""
        listeners = self._listeners.get(channel)
        if listeners is not None:
            listeners.add(sid)
            pending = self._subscribing.get(channel)
            if pending is not None:
                await asyncio.shield(pending)
            return
        self._listeners[channel] = {sid}
        pending = self._subscribing[channel] = asyncio.get_running_loop().create_future()
        try:
            await self.broker.subscribe(channel)
        except BaseException as exc:
            self.forget(channel, sid)
            pending.set_exception(exc)
            pending.exception()  # retrieved here, so an unawaited failure is not logged
            raise
        else:
            pending.set_result(None)
        finally:
            del self._subscribing[channel]

    async def unlisten(self, channel: str, sid: str) -> None:
        if self.forget(channel, sid):
            await self.broker.unsubscribe(channel)

    def forget(self, channel: str, sid: str) -> bool:
        """Drop ``sid`` from ``channel``; True if nobody local listens any more."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            return False
        listeners.discard(sid)
        skips = self._skips.get(channel)
        if skips is not None:
            skips.pop(sid, None)
            if not skips:
                del self._skips[channel]
        if listeners:
            return False
        del self._listeners[channel]
        return True

    def channels(self) -> list[str]:
        return list(self._listeners)

    # -- holding a listener back ---------------------------------------------------------

    def hold(self, channel: str, sid: str) -> None:
        """Keep what ``channel`` delivers to ``sid`` from now on until ``release``.

        A resuming session is held while its missed messages are read back and written,
        so that no newer live message of the same log can overtake them."""
        self._held.setdefault(channel, {}).setdefault(sid, [])

    def release(self, channel: str, sid: str) -> list[str]:
        """Stop holding ``channel`` for ``sid``; returns the held payloads, oldest first.
        The caller writes them (``write``) before it awaits anything, so that they go out
        before whatever ``deliver`` writes next."""
        held = self._held.get(channel)
        if held is None:
            return []
        payloads = held.pop(sid, [])
        if not held:
            del self._held[channel]
        return payloads

    def skip_if(self, channel: str, sid: str, test: Callable[[str], bool]) -> None:
        """From now on, and while ``sid`` listens to ``channel``, do not write it the
        payloads ``test`` accepts (a resume's replay wrote them already)."""
        self._skips.setdefault(channel, {})[sid] = test

    def write(self, session: Session, text: str) -> None:
        """Write one socket.io packet text to a session, on the path ``deliver`` uses."""
        link = self.links.get(session.eio_sid)
        if link is not None:
            link.write(engineio_message_frame(text))
        else:
            self._enqueue(session.eio_sid, eio_packet.Packet(eio_packet.MESSAGE, text))

    # -- fan-out -----------------------------------------------------------------------

    def deliver(self, channel: str, payload: str) -> None:
        """Write a published ``payload`` to the local listeners of ``channel``.

        ``payload`` is an ``envelope``: a sid to skip, and the socket.io packet text."""
        listeners = self._listeners.get(channel)
        self.stats.published += 1
        if not listeners:
            return
        observe = self.observe_fanout
        started = perf_counter() if observe is not None else 0.0
        skip, text = open_envelope(payload)
        control = skip[:1] == CONTROL_MARK
        if control:
            targets = tuple(listeners)
        frame: bytes | None = None
        sessions, links = self.sessions, self.links
        held = self._held.get(channel)
        skips = self._skips.get(channel)
        delivered = 0
        # A copy: a write may drop a slow consumer, which changes the set.
        for sid in tuple(listeners):
            if sid == skip:
                continue
            if held is not None and sid in held:
                held[sid].append(payload)
                continue
            if skips is not None and sid in skips and skips[sid](payload):
                continue
            session = sessions.get(sid)
            if session is None:
                continue
            link = links.get(session.eio_sid)
            if link is not None:
                if frame is None:
                    frame = engineio_message_frame(text)
                link.write(frame)
            else:
                self._enqueue(session.eio_sid, eio_packet.Packet(eio_packet.MESSAGE, text))
            delivered += 1
        self.stats.delivered += delivered
        if control:
            self.on_control(skip[1:], channel, targets)
        if observe is not None:
            observe(perf_counter() - started)
