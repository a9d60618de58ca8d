"""Exactly-once, in-order room and direct messages across pub/sub hiccups.

Redis pub/sub is at-most-once: while a node's subscription connection is down (a Redis
restart, a network blip) publications are lost for it, although they are stored. Every
room message carries its log's ``seq``, so a node can tell: the guard sits between the
broker and the hub, remembers the last seq it passed on per room channel, and

- drops a message whose seq it has already passed on (a duplicate), and
- on a gap (seq > last + 1), or when the broker reconnects, holds the channel's later
  traffic, reads what was missed from the log, delivers it, then releases what it held.

A user channel carries several conversations, each with its own seq: the guard keeps
one stream per conversation there (parsing the direct message to name it). Other
channels and packets without a seq (presence events, receipts) pass straight through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import ujson

from core.names import conversation_log
from core.pushes import REVISION_EVENTS
from storage.base import StoreError

from .wire import envelope, event_packet_parts, open_envelope

log = logging.getLogger("dino.gaps")

ROOM_PREFIX = "room:"
USER_PREFIX = "user:"
_MESSAGE_HEAD, _MESSAGE_TAIL = event_packet_parts("message")
_SEQ_HEAD = _MESSAGE_HEAD + '{"seq":'
# Deletions and edits are log entries too, each with its own seq, pushed under their own
# event names (core.pushes.REVISION_EVENTS).
_REVISION_HEADS = {verb: event_packet_parts(event) for verb, event in REVISION_EVENTS.items()}
_REVISION_SEQ_HEADS = tuple(head + '{"seq":' for head, _ in _REVISION_HEADS.values())
MAX_REPAIR = 1000  # entries read back per repair; beyond that the client uses history

Deliver = Callable[[str, str], None]
ReadMissed = Callable[[str, int], Awaitable[list[str]]]  # (log name, since) -> entries


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
        # Per stream: a room channel, or one conversation on a user channel
        # (``<channel>\n<log>``): the last seq passed on, and payloads held during repair.
        self._last: dict[str, int] = {}
        self._held: dict[str, list[str]] = {}
        self._repairs: set[asyncio.Task[None]] = set()
        self.repaired = 0  # messages recovered from logs, for /health

    def deliver(self, channel: str, payload: str) -> None:
        if channel.startswith(ROOM_PREFIX):
            stream = log_name = channel  # a room's log has its channel's name
        elif channel.startswith(USER_PREFIX):
            conversation = conversation_of(payload)
            if conversation is None:
                self._deliver(channel, payload)
                return
            stream, log_name = channel + "\n" + conversation, conversation
        else:
            self._deliver(channel, payload)
            return
        held = self._held.get(stream)
        if held is not None:
            held.append(payload)
            return
        seq = message_seq(payload)
        if seq is None:
            self._deliver(channel, payload)
            return
        last = self._last.get(stream)
        if last is not None and seq <= last:
            return
        if last is not None and seq > last + 1:
            self._repair(stream, log_name, channel, last, [payload])
            return
        self._last[stream] = seq
        self._deliver(channel, payload)

    def resubscribed(self, channel: str) -> None:
        """The subscription was down for a while: read back what its streams missed."""
        for stream in self._streams_of(channel):
            last = self._last.get(stream)
            if last is not None and stream not in self._held:
                self._repair(stream, stream.partition("\n")[2] or stream, channel, last, [])

    def forget(self, channel: str) -> None:
        """No local listener any more: a later subscription starts afresh."""
        for stream in self._streams_of(channel):
            self._last.pop(stream, None)

    def _streams_of(self, channel: str) -> list[str]:
        if channel.startswith(ROOM_PREFIX):
            return [channel]
        prefix = channel + "\n"
        return [stream for stream in self._last if stream.startswith(prefix)]

    def _repair(self, stream: str, log: str, channel: str, last: int, held: list[str]) -> None:
        self._held[stream] = held
        task = asyncio.create_task(self._read_back(stream, log, channel, last))
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _read_back(self, stream: str, log_name: str, channel: str, last: int) -> None:
        entries: list[str] = []
        try:
            entries = await self._read_missed(log_name, last)
        except StoreError as exc:
            log.warning("cannot read back missed messages of %s: %s", log_name, exc)
        held = self._held.pop(stream, [])
        if stream not in self._last:
            return  # forgotten meanwhile: nobody here listens any more
        if not entries and held:
            # Nothing to fill the gap with (trimmed, or Redis is down): accept it rather
            # than hold the stream forever; clients see the gap in seq and resume.
            first = message_seq(held[0])
            if first is not None:
                self._last[stream] = first - 1
        self.repaired += len(entries)
        for entry in entries:
            self.deliver(channel, envelope("", packet_of_entry(entry)))
        for payload in held:
            self.deliver(channel, payload)


def conversation_of(payload: str) -> str | None:
    """The conversation log of a direct message (or a revision of one) on a user
    channel; None for anything else (a receipt, a control packet), or a revision by the
    backend (it names no actor)."""
    _, text = open_envelope(payload)
    if text.startswith(_SEQ_HEAD):
        body = text[len(_MESSAGE_HEAD) : -len(_MESSAGE_TAIL)]
    else:
        heads = (parts for parts in _REVISION_HEADS.values() if text.startswith(parts[0]))
        head, tail = next(heads, ("", ""))
        if not head:
            return None
        body = text[len(head) : -len(tail)]
    try:
        message = ujson.loads(body)
        return conversation_log(message["actor"]["id"], message["target"]["id"])
    except (ValueError, KeyError, TypeError):
        return None
