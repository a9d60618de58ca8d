"""Access rules per action: who may join a room, send to it, read its history, see it
listed, see its users.

A room's rules map an action to a rule on the user's attributes::

    {"send": [{"age": {"min": 18}, "country": {"in": ["se", "no"]}},
              {"staff": "yes"}],
     "list": {"region": {"not": {"in": ["eu"]}}}}

A rule is one alternative or a list of them (OR); an alternative maps attributes to
conditions (AND); a condition is the simple ACL form (a value list "a,b" or a numeric
range "min:max", see ``core.acl``), ``{"in": [values]}``, ``{"min": n, "max": n}`` (either
side may be left out), or ``{"not": condition}``. A user without the attribute fails its
condition, negated or not. Rules are checked when set, so a stored rule always parses.

The room's simple ACL (``Room.acl``) still applies to join, history and users, as it
always did; an action's rule applies on top of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ujson

from storage.base import Room

from . import acl
from .errors import BadRequest

ACTIONS = ("join", "send", "history", "list", "users")
SIMPLE_ACL_ACTIONS = ("join", "history", "users")  # what Room.acl has always guarded

MAX_ALTERNATIVES = 16
MAX_ATTRIBUTES = 16
MAX_VALUES = 100
MAX_NESTING = 4
MAX_NAME_CHARS = 128

Condition = Any  # str | {"in": [...]} | {"min": n, "max": n} | {"not": Condition}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{where} must be a number")
    return float(value)


def _check_condition(condition: Condition, where: str, depth: int = 0) -> None:
    if isinstance(condition, str):
        problem = acl.check_rule(condition) if condition.strip() else "an empty value list"
        if problem is not None:
            raise BadRequest(f"{where}: {problem}")
        return
    if not isinstance(condition, dict) or not condition:
        raise BadRequest(
            f"{where} must be a rule string or an object with 'in', 'min'/'max' or 'not'"
        )
    keys = set(condition)
    if keys == {"not"}:
        if depth >= MAX_NESTING:
            raise BadRequest(f"{where} nests 'not' more than {MAX_NESTING} deep")
        _check_condition(condition["not"], f"{where}.not", depth + 1)
    elif keys == {"in"}:
        values = condition["in"]
        if not isinstance(values, list) or not values or len(values) > MAX_VALUES:
            raise BadRequest(f"{where}.in must be a list of 1 to {MAX_VALUES} values")
        for index, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise BadRequest(f"{where}.in[{index}] must be a string or a number")
    elif keys and keys <= {"min", "max"}:
        bounds = {side: _number(condition[side], f"{where}.{side}") for side in keys}
        if len(bounds) == 2 and bounds["min"] > bounds["max"]:
            raise BadRequest(f"{where}: min is greater than max")
    else:
        unknown = ", ".join(sorted(keys - {"in", "min", "max", "not"})) or "a mix"
        raise BadRequest(
            f"{where}: unknown condition ({unknown}); use 'in', 'min'/'max' or 'not' alone"
        )


def _alternatives(rule: Any, where: str) -> list[dict[str, Condition]]:
    alternatives = rule if isinstance(rule, list) else [rule]
    if not alternatives or len(alternatives) > MAX_ALTERNATIVES:
        raise BadRequest(f"{where} must have 1 to {MAX_ALTERNATIVES} alternatives")
    for index, alternative in enumerate(alternatives):
        at = f"{where}[{index}]" if isinstance(rule, list) else where
        if not isinstance(alternative, dict) or not alternative:
            raise BadRequest(f"{at} must be an object of attribute: condition")
        if len(alternative) > MAX_ATTRIBUTES:
            raise BadRequest(f"{at} has more than {MAX_ATTRIBUTES} attributes")
        for name, condition in alternative.items():
            if not name.strip() or len(name) > MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
                raise BadRequest(f"{at} has an attribute name that is empty or not printable")
            _check_condition(condition, f"{at}.{name}")
    return alternatives


def parse_rules(value: Any, where: str) -> dict[str, str]:
    """Checked rules per action, as stored: action -> JSON text. BadRequest names the
    unknown action or the part of a rule that cannot be used."""
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object of action: rule")
    rules = {}
    for action, rule in value.items():
        if action not in ACTIONS:
            raise BadRequest(f"{where}: unknown action '{action}'; one of {', '.join(ACTIONS)}")
        if rule is None:
            continue  # null: no rule for this action
        rules[action] = ujson.dumps(_alternatives(rule, f"{where}.{action}"), ensure_ascii=False)
    return rules


def rules_json(room: Room) -> dict[str, Any]:
    """The room's rules as objects, for replies."""
    return {action: ujson.loads(text) for action, text in sorted(room.rules.items())}


def _holds(condition: Condition, value: str | None) -> bool:
    if value is None:
        return False
    if isinstance(condition, str):
        return acl.admits(condition, value)
    if "not" in condition:
        return not _holds(condition["not"], value)
    if "in" in condition:
        return value.strip() in {str(v).strip() for v in condition["in"]}
    try:
        number = float(value)
    except ValueError:
        return False
    low, high = condition.get("min"), condition.get("max")
    return (low is None or number >= low) and (high is None or number <= high)


def admits(rule_text: str, attributes: Mapping[str, str]) -> bool:
    """Whether a stored rule admits a user with ``attributes``."""
    alternatives: list[dict[str, Condition]] = ujson.loads(rule_text)
    return any(
        all(_holds(condition, attributes.get(name)) for name, condition in alt.items())
        for alt in alternatives
    )


def refusal(room: Room, action: str, attributes: Mapping[str, str]) -> str | None:
    """Why a (non-privileged) user with ``attributes`` may not ``action`` in ``room``."""
    if action in SIMPLE_ACL_ACTIONS:
        reason = acl.attribute_refusal(room, attributes)
        if reason is not None:
            return reason
    rule = room.rules.get(action)
    if rule is not None and not admits(rule, attributes):
        return f"room '{room.name}' does not allow you to {action}: its access rule refuses you"
    return None
