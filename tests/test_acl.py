"""Unit tests of handlers/acl.py: room ACL rules, their validation and who they admit."""

from __future__ import annotations

import pytest

from core.acl import check_rule, refusal
from storage.base import Room


def room(acl: dict[str, str], owners: dict[str, str] | None = None) -> Room:
    return Room(id="r1", name="club", owners=owners or {"owner": "Owner"}, acl=acl)


def admitted(acl: dict[str, str], attributes: dict[str, str], user: str = "guest") -> bool:
    return refusal(room(acl), user, attributes) is None


# -- check_rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "Shanghai",
        "Shanghai,Beijing",
        " Shanghai , Beijing ",
        "Shanghai,,Beijing",  # an empty item among others is ignored
        "18:35",
        "18:",
        ":35",
        "-5:5",
        "0.5:1.5",
        " 18 : 35 ",
        "1e3:",
    ],
)
def test_well_formed_rules(rule: str):
    assert check_rule(rule) is None


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("", "an empty value list"),
        (",", "an empty value list"),
        (" , ,", "an empty value list"),
        ("a:b", "'a:b' is neither a value list nor a numeric range min:max"),
        ("18:x", "'18:x' is neither a value list nor a numeric range min:max"),
        ("x:35", "'x:35' is neither a value list nor a numeric range min:max"),
        (
            "Shanghai:Beijing",  # a colon makes a range
            "'Shanghai:Beijing' is neither a value list nor a numeric range min:max",
        ),
    ],
)
def test_malformed_rules(rule: str, problem: str):
    assert check_rule(rule) == problem


def test_a_range_with_three_parts_is_malformed():
    assert check_rule("1:2:3") is not None


# -- value lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("Shanghai", True),
        ("Beijing", True),
        (" Beijing ", True),
        ("shanghai", False),  # exact, case-sensitive
        ("Shang", False),
        ("Shanghai,Beijing", False),  # the whole rule is not a value
        ("", False),
    ],
)
def test_value_list(value: str, ok: bool):
    assert admitted({"city": "Shanghai, Beijing"}, {"city": value}) is ok


# -- ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "ok"),
    [
        ("18:35", "18", True),
        ("18:35", "35", True),
        ("18:35", "26.5", True),
        ("18:35", "17.99", False),
        ("18:35", "35.01", False),
        ("18:", "1000", True),
        ("18:", "17", False),
        (":35", "-3", True),
        (":35", "36", False),
        ("-5:5", "-5", True),
        ("-5:5", "-6", False),
        ("18:35", "thirty", False),
        ("18:35", "", False),
        ("18:35", "nan", False),
        (":", "42", True),  # both sides open: any number
        (":", "many", False),
    ],
)
def test_range(rule: str, value: str, ok: bool):
    assert admitted({"age": rule}, {"age": value}) is ok


# -- refusal -------------------------------------------------------------------------------


def test_no_acl_admits_everyone():
    assert refusal(room({}), "guest", {}) is None


def test_every_rule_must_admit():
    acl = {"city": "Shanghai,Beijing", "age": "18:35"}
    assert admitted(acl, {"city": "Shanghai", "age": "20"})
    assert not admitted(acl, {"city": "Shanghai", "age": "40"})
    assert not admitted(acl, {"city": "Paris", "age": "20"})


def test_attributes_without_a_rule_do_not_matter():
    assert admitted({"age": "18:"}, {"age": "30", "city": "anywhere", "role": "x"})


def test_a_missing_attribute_refuses_with_a_reason():
    reason = refusal(room({"age": "18:35"}), "guest", {"city": "Shanghai"})
    assert reason == "room 'club' admits only users with a 'age' attribute (18:35)"


def test_a_mismatch_names_the_rule():
    reason = refusal(room({"city": "Shanghai"}), "guest", {"city": "Paris"})
    assert reason == "room 'club' admits only users whose 'city' matches Shanghai"


def test_rules_are_checked_in_name_order():
    acl = {"zone": "A", "age": "18:"}
    reason = refusal(room(acl), "guest", {})
    assert reason is not None and "'age'" in reason


def test_owners_are_always_admitted():
    acl = {"city": "Shanghai", "age": "18:35"}
    owners = {"alice": "Alice", "bob": "Bob"}
    for owner in owners:
        assert refusal(room(acl, owners), owner, {}) is None
        assert refusal(room(acl, owners), owner, {"city": "Paris", "age": "99"}) is None
    assert refusal(room(acl, owners), "carol", {}) is not None
