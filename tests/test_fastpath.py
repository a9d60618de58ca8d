"""The parser of server/fastpath.py: which packets take the short path (the rest go
through python-socketio unchanged; tests/test_protocol.py covers both end to end)."""

from __future__ import annotations

import pytest

from server.fastpath import ack_packet, parse_event


def test_event_with_ack() -> None:
    assert parse_event('2/chat,12["message",{"a":1}]') == (12, "message", {"a": 1})


def test_event_without_ack_or_payload() -> None:
    assert parse_event('2/chat,["list_rooms"]') == (None, "list_rooms", None)


def test_extra_arguments_are_ignored_like_the_namespace_does() -> None:
    assert parse_event('2/chat,3["join",{"r":1},"x"]') == (3, "join", {"r": 1})


@pytest.mark.parametrize(
    "packet",
    [
        '2["message",{}]',  # default namespace
        '2/other,["message",{}]',
        '3/chat,1[{"status_code":200}]',  # an ACK, not an EVENT
        '2/chat,1["message",{}',  # broken JSON
        '2/chat,1{"message":1}',  # not an array
        "2/chat,1[]",
        "2/chat,1[7]",  # event name not a string
        '2/chat,1["connect",{}]',  # reserved names stay with python-socketio
        '2/chat,1["disconnect"]',
        '2/chat,1x["message"]',
        '2/chat,1234567890123456["message"]',  # absurd ack id
        "2/chat,",
    ],
)
def test_other_shapes_take_the_ordinary_path(packet: str) -> None:
    assert parse_event(packet) is None


def test_ack_packet_reuses_the_reply_text() -> None:
    assert ack_packet(7, '{"status_code":200}') == '3/chat,7[{"status_code":200}]'
