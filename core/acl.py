"""Room ACLs: rules on user attributes that decide who may join and read a room.

A rule is either a comma-separated list of allowed values ("Shanghai,Beijing") or a
numeric range "min:max" where either side may be empty ("18:", ":35").
"""

from __future__ import annotations

from collections.abc import Mapping

from storage.base import Room


def admits(rule: str, value: str) -> bool:
    """Whether ``value`` matches a value list or a numeric range."""
    if ":" in rule:
        low, _, high = rule.partition(":")
        try:
            number = float(value)
            return (not low or number >= float(low)) and (not high or number <= float(high))
        except ValueError:
            return False
    return value.strip() in {v.strip() for v in rule.split(",")}


def check_rule(rule: str) -> str | None:
    """Why ``rule`` is malformed, or None if it is fine."""
    if ":" not in rule:
        return None if any(v.strip() for v in rule.split(",")) else "an empty value list"
    low, _, high = rule.partition(":")
    try:
        [float(side) for side in (low, high) if side]
    except ValueError:
        return f"'{rule}' is neither a value list nor a numeric range min:max"
    return None


def refusal(room: Room, user_id: str, attributes: Mapping[str, str]) -> str | None:
    """Why the user may not enter ``room``, or None if they may."""
    if user_id in room.owners:
        return None
    return attribute_refusal(room, attributes)


def attribute_refusal(room: Room, attributes: Mapping[str, str]) -> str | None:
    """Why ``attributes`` do not meet the room's ACL, whoever has them; None if they do."""
    for kind, rule in sorted(room.acl.items()):
        value = attributes.get(kind)
        if value is None:
            return f"room '{room.name}' admits only users with a '{kind}' attribute ({rule})"
        if not admits(rule, value):
            return f"room '{room.name}' admits only users whose '{kind}' matches {rule}"
    return None
