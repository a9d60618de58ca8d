"""SequenceGuard: room messages pass exactly once and in seq order, gaps are read back."""

from __future__ import annotations

import asyncio

from server.gaps import SequenceGuard, message_seq
from server.wire import event_packet, event_packet_parts
from storage.base import StoreUnavailable

HEAD, TAIL = event_packet_parts("message")


def published(seq: int, skip: str = "") -> str:
    return skip + "\n" + HEAD + f'{{"seq":{seq},"text":"m{seq}"}}' + TAIL


class Log:
    """A room log the guard reads missed entries from."""

    def __init__(self, upto: int) -> None:
        self.entries = [f'{{"seq":{n},"text":"m{n}"}}' for n in range(1, upto + 1)]
        self.reads: list[int] = []
        self.fail = False

    async def read_missed(self, channel: str, since: int) -> list[str]:
        self.reads.append(since)
        await asyncio.sleep(0)  # a real read yields; traffic may arrive meanwhile
        if self.fail:
            raise StoreUnavailable("down")
        return self.entries[since:]


def make_guard(log: Log) -> tuple[SequenceGuard, list[tuple[str, int | None]]]:
    out: list[tuple[str, int | None]] = []
    guard = SequenceGuard(lambda ch, p: out.append((ch, message_seq(p))), log.read_missed)
    return guard, out


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_message_seq_reads_the_published_seq() -> None:
    assert message_seq(published(42, skip="abc")) == 42
    assert message_seq("\n" + event_packet("gn_user_left", "{}")) is None


async def test_in_order_messages_pass_and_duplicates_drop() -> None:
    guard, out = make_guard(Log(3))
    for seq in (1, 2, 2, 3, 1):
        guard.deliver("room:r", published(seq))
    assert [seq for _, seq in out] == [1, 2, 3]


async def test_gap_is_read_back_and_later_traffic_waits_for_it() -> None:
    log = Log(6)
    guard, out = make_guard(log)
    guard.deliver("room:r", published(1))
    guard.deliver("room:r", published(4))  # 2 and 3 were lost
    guard.deliver("room:r", published(5))  # arrives while the repair reads
    await settle()
    guard.deliver("room:r", published(6))
    assert log.reads == [1]
    assert [seq for _, seq in out] == [1, 2, 3, 4, 5, 6]
    assert guard.repaired == 5  # 2..6 were in the log; 4..6 then dropped as duplicates


async def test_resubscribe_reads_back_what_was_published_meanwhile() -> None:
    log = Log(3)
    guard, out = make_guard(log)
    guard.deliver("room:r", published(1))
    guard.resubscribed("room:r")
    await settle()
    assert [seq for _, seq in out] == [1, 2, 3]


async def test_unreadable_gap_is_accepted_instead_of_blocking_the_room() -> None:
    log = Log(5)
    log.fail = True
    guard, out = make_guard(log)
    guard.deliver("room:r", published(1))
    guard.deliver("room:r", published(4))
    await settle()
    guard.deliver("room:r", published(5))
    assert [seq for _, seq in out] == [1, 4, 5]


async def test_other_channels_and_presence_pass_untouched() -> None:
    guard, out = make_guard(Log(0))
    guard.deliver("user:u", published(7))
    guard.deliver("user:u", published(7))
    guard.deliver("room:r", "\n" + event_packet("gn_user_joined", "{}"))
    assert out == [("user:u", 7), ("user:u", 7), ("room:r", None)]


async def test_forgotten_room_starts_afresh() -> None:
    log = Log(9)
    guard, out = make_guard(log)
    guard.deliver("room:r", published(1))
    guard.forget("room:r")
    guard.deliver("room:r", published(9))  # re-joined later: no gap to repair
    assert [seq for _, seq in out] == [1, 9]
    assert log.reads == []


def revision_packet(seq: int) -> str:
    head, tail = event_packet_parts("gn_message_deleted")
    return "\n" + head + f'{{"seq":{seq},"verb":"delete","object":{{"id":"m1"}}}}' + tail


def test_deletions_and_edits_carry_a_seq_too() -> None:
    assert message_seq(revision_packet(7)) == 7


async def test_a_revision_read_back_is_delivered_as_what_it_was() -> None:
    log = Log(1)
    log.entries.append('{"seq":2,"verb":"delete","object":{"id":"m1"}}')
    log.entries.append('{"seq":3,"id":"m3","verb":"send","text":"m3"}')
    delivered: list[str] = []
    guard = SequenceGuard(lambda ch, p: delivered.append(p), log.read_missed)
    guard.deliver("room:r", published(1))
    guard.deliver("room:r", published(4))  # 2 and 3 were missed: read back
    await settle()
    events = [p.split('["', 1)[1].split('"', 1)[0] for p in delivered]
    assert events == ["message", "gn_message_deleted", "message", "message"]
    assert [message_seq(p) for p in delivered] == [1, 2, 3, 4]


def direct(seq: int, sender: str, to: str) -> str:
    message = f'{{"seq":{seq},"actor":{{"id":"{sender}"}},"target":{{"id":"{to}"}}}}'
    return "\n" + HEAD + message + TAIL


async def test_each_conversation_on_a_user_channel_is_its_own_stream() -> None:
    reads: list[tuple[str, int]] = []

    async def read_missed(log_name: str, since: int) -> list[str]:
        reads.append((log_name, since))
        await asyncio.sleep(0)
        sender = "a" if log_name.endswith(":a:u") else "b"
        return [
            direct(n, sender, "u").split("\n", 1)[1][len(HEAD) : -len(TAIL)]
            for n in range(since + 1, 4)
        ]

    out: list[tuple[str, int | None]] = []
    guard = SequenceGuard(lambda ch, p: out.append((ch, message_seq(p))), read_missed)
    guard.deliver("user:u", direct(1, "a", "u"))
    guard.deliver("user:u", direct(1, "b", "u"))  # another conversation: seq 1 again
    guard.deliver("user:u", direct(1, "a", "u"))  # a duplicate
    guard.deliver("user:u", direct(3, "b", "u"))  # b's 2 was lost
    await settle()
    assert reads == [("dm:1:b:u", 1)]
    assert [seq for _, seq in out] == [1, 1, 2, 3]
    guard.resubscribed("user:u")  # both conversations are read back
    await settle()
    assert sorted(reads[1:]) == [("dm:1:a:u", 1), ("dm:1:b:u", 3)]
    assert [seq for _, seq in out] == [1, 1, 2, 3, 2, 3]  # a's 2 and 3 were missed
