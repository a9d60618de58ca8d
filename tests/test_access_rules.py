"""Access rules per action (core.access) and durations (core.sanctions), without a node."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.access import admits, parse_rules, refusal
from core.errors import BadRequest
from core.sanctions import duration_seconds, time_left
from storage.base import Member, Room, Sanction


def rule(value: Any) -> str:
    return parse_rules({"send": value}, "rules")["send"]


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("a,b", "b", True),
        ("a,b", "c", False),
        ("18:", "18", True),
        ("18:", "17.5", False),
        (":35", "36", False),
        ({"in": ["x", 5]}, "5", True),
        ({"in": ["x"]}, "y", False),
        ({"min": 1.5}, "2", True),
        ({"min": 1.5, "max": 2}, "2.5", False),
        ({"max": 10}, "ten", False),
        ({"not": {"in": ["x"]}}, "y", True),
        ({"not": {"in": ["x"]}}, "x", False),
        ({"not": {"not": "x"}}, "x", True),
        ({"not": "18:"}, "17", True),
    ],
)
def test_conditions(condition: Any, value: str, expected: bool) -> None:
    assert admits(rule({"attr": condition}), {"attr": value}) is expected


def test_and_across_attributes_or_across_alternatives() -> None:
    both = rule({"age": "18:", "city": "Paris,Rome"})
    assert admits(both, {"age": "20", "city": "Rome"})
    assert not admits(both, {"age": "20", "city": "Oslo"})
    either = rule([{"age": "18:"}, {"vip": "yes"}])
    assert admits(either, {"age": "10", "vip": "yes"})
    assert admits(either, {"age": "30"})
    assert not admits(either, {"age": "10"})


def test_a_missing_attribute_fails_even_a_negation() -> None:
    assert not admits(rule({"city": {"not": "Paris"}}), {})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"kick": {"a": "b"}}, "unknown action 'kick'"),
        ({"send": "a,b"}, "rules.send must be an object"),
        ({"send": {}}, "rules.send must be an object"),
        ({"send": [{"a": "b"}] * 17}, "1 to 16 alternatives"),
        ({"send": {"a": {"in": []}}}, "rules.send.a.in must be a list of 1"),
        ({"send": {"a": {"in": [{"x": 1}]}}}, "rules.send.a.in[0]"),
        ({"send": {"a": {"min": True}}}, "rules.send.a.min must be a number"),
        ({"send": {"a": {"in": ["x"], "min": 1}}}, "rules.send.a: unknown condition"),
        ({"send": {"a": {"not": {"not": {"not": {"not": {"not": "x"}}}}}}}, "nests 'not'"),
        ({"send": {"a": ""}}, "an empty value list"),
        ({"send": {"a": 5}}, "rules.send.a must be a rule string"),
        ({"send": {" ": "x"}}, "empty or not printable"),
        ({"send": {f"a{i}": "x" for i in range(17)}}, "more than 16 attributes"),
    ],
)
def test_rules_that_cannot_be_used_are_400_naming_the_part(value: Any, fragment: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_rules(value, "rules")
    assert fragment in str(refused.value)


def test_the_simple_acl_still_guards_join_history_users_but_not_send() -> None:
    room = Room("r", "lobby", acl={"city": "Paris"})
    for action in ("join", "history", "users"):
        assert refusal(room, action, {"city": "Rome"}) is not None
        assert refusal(room, action, {"city": "Paris"}) is None
    assert refusal(room, "send", {"city": "Rome"}) is None
    assert refusal(room, "list", {"city": "Rome"}) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), (" 45 ", 45), (90, 90), (None, None)],
)
def test_durations(value: Any, seconds: int | None) -> None:
    assert duration_seconds(value, "duration") == seconds


@pytest.mark.parametrize("value", ["1w", "", "-1s", "1.5h", 0, -3, True, 4.5, [], "9" * 12])
def test_bad_durations(value: Any) -> None:
    with pytest.raises(BadRequest) as refused:
        duration_seconds(value, "object.duration")
    assert "object.duration" in str(refused.value)


def test_time_left_keeps_whole_days() -> None:
    soon = int(time.time() * 1000) + (9 * 86400 + 3 * 3600 + 5) * 1000 + 500
    text = time_left(Sanction(Member("u", "u"), "", "", soon))
    assert text in ("for 9d 3h 5s more", "for 9d 3h 6s more"), text
    assert time_left(Sanction(Member("u", "u"), "", "", None)) == "without end"
