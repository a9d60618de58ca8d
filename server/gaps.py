"""Exactly-once, in-order room messages across pub/sub hiccups.

Redis pub/sub is at-most-once: while a node's subscription connection is down (a Redis
restart, a network blip) publications are lost for it, although they are stored. Every
room message carries its log's ``seq``, so a node can tell: the guard sits between the
broker and the hub, remembers the last seq it passed on per room channel, and

- drops a message whose seq it has already passed on (a duplicate), and
- on a gap (seq > last + 1), or when the broker reconnects, holds the channel's later
  traffic, reads what was missed from the log, delivers it, then releases what it held.

Channels other than rooms (user channels carry several conversations, each with its own
seq) and packets without a seq (presence events) pass straight through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import ujson

from core.pushes import REVISION_EVENTS
from storage.base import StoreError

from .wire import envelope, event_packet_parts, open_envelope

log = logging.getLogger("dino.gaps")

ROOM_PREFIX = "room:"
_MESSAGE_HEAD, _MESSAGE_TAIL = event_packet_parts("message")
_SEQ_HEAD = _MESSAGE_HEAD + '{"seq":'
# Deletions and edits are log entries too, each with its own seq, pushed under their own
# event names (core.pushes.REVISION_EVENTS).
_REVISION_HEADS = {verb: event_packet_parts(event) for verb, event in REVISION_EVENTS.items()}
_REVISION_SEQ_HEADS = tuple(head + '{"seq":' for head, _ in _REVISION_HEADS.values())
MAX_REPAIR = 1000  # entries read back per repair; beyond that the client uses history

Deliver = Callable[[str, str], None]
ReadMissed = Callable[[str, int], Awaitable[list[str]]]  # (room channel, since) -> entries


def message_seq(payload: str) -> int | None:
    """The seq of a published room message (packet ``2/chat,["message",{"seq":N,...``)."""
    _, text = open_envelope(payload)
    if text.startswith(_SEQ_HEAD):
        start = end = len(_SEQ_HEAD)
    else:
        head = next((h for h in _REVISION_SEQ_HEADS if text.startswith(h)), None)
        if head is None:
            return None
        start = end = len(head)
    while end < len(text) and text[end].isdigit():
        end += 1
    return int(text[start:end]) if end > start else None


def packet_of_entry(entry: str) -> str:
    """The packet a stored log entry was delivered as: a message, or a revision."""
    head, tail = _MESSAGE_HEAD, _MESSAGE_TAIL
    if '"verb":"send"' not in entry:  # rare: parse only what may be a revision
        verb = ujson.loads(entry).get("verb")
        head, tail = _REVISION_HEADS.get(verb, (head, tail))
    return head + entry + tail


class SequenceGuard:
    def __init__(self, deliver: Deliver, read_missed: ReadMissed) -> None:
        self._deliver = deliver
        self._read_missed = read_missed
        self._last: dict[str, int] = {}  # room channel -> last seq passed on
        self._held: dict[str, list[str]] = {}  # room channel -> payloads held during repair
        self._repairs: set[asyncio.Task[None]] = set()
        self.repaired = 0  # messages recovered from logs, for /health

    def deliver(self, channel: str, payload: str) -> None:
        if not channel.startswith(ROOM_PREFIX):
            self._deliver(channel, payload)
            return
        held = self._held.get(channel)
        if held is not None:
            held.append(payload)
            return
        seq = message_seq(payload)
        if seq is None:
            self._deliver(channel, payload)
            return
        last = self._last.get(channel)
        if last is not None and seq <= last:
            return
        if last is not None and seq > last + 1:
            self._repair(channel, last, [payload])
            return
        self._last[channel] = seq
        self._deliver(channel, payload)

    def resubscribed(self, channel: str) -> None:
        """The subscription was down for a while: read back what the room missed."""
        last = self._last.get(channel)
        if last is not None and channel not in self._held:
            self._repair(channel, last, [])

    def forget(self, channel: str) -> None:
        """No local listener any more: a later subscription starts afresh."""
        self._last.pop(channel, None)

    def _repair(self, channel: str, last: int, held: list[str]) -> None:
        self._held[channel] = held
        task = asyncio.create_task(self._read_back(channel, last))
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _read_back(self, channel: str, last: int) -> None:
        entries: list[str] = []
        try:
            entries = await self._read_missed(channel, last)
        except StoreError as exc:
            log.warning("cannot read back missed messages of %s: %s", channel, exc)
        held = self._held.pop(channel, [])
        if channel not in self._last:
            return  # forgotten meanwhile: nobody here listens to the room any more
        if not entries and held:
            # Nothing to fill the gap with (trimmed, or Redis is down): accept it rather
            # than hold the room forever; clients see the gap in seq and ask history.
            first = message_seq(held[0])
            if first is not None:
                self._last[channel] = first - 1
        self.repaired += len(entries)
        for entry in entries:
            self.deliver(channel, envelope("", packet_of_entry(entry)))
        for payload in held:
            self.deliver(channel, payload)
