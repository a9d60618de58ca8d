"""Reading client payloads: every accessor names the field and what was wrong with it.

A handler never indexes a payload directly; it asks here, and a bad value becomes a
``BadRequest`` whose text goes back to the client as the 400 ``data`` string.
"""

from __future__ import annotations

from typing import Any

from core.errors import BadRequest
from core.text import CONTROL_CHARACTERS, MAX_ID_CHARS

# The error every reader here raises, and the id length: entry points import them here.
__all__ = ["MAX_ID_CHARS", "BadRequest"]

MAX_NAME_CHARS = 128


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def request_object(payload: Any) -> dict[str, Any]:
    """The request itself: must be a JSON object (a missing payload counts as {})."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise BadRequest(f"the request must be a JSON object, got {_type_name(payload)}")
    return payload


def optional_object(parent: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    """``parent[key]`` as an object; absent or null gives {}."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}{key} must be an object, got {_type_name(value)}")
    return value


def required_object(parent: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    if parent.get(key) is None:
        raise BadRequest(f"{where}{key} is required")
    return optional_object(parent, key, where)


def optional_string(
    parent: dict[str, Any], key: str, where: str = "", *, max_chars: int = MAX_NAME_CHARS
) -> str | None:
    """``parent[key]`` as a stripped, non-empty string of at most ``max_chars``; or None."""
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"{where}{key} must be a string, got {_type_name(value)}")
    text = str(value).strip()
    if not text:
        raise BadRequest(f"{where}{key} must not be empty")
    if len(text) > max_chars:
        raise BadRequest(f"{where}{key} is longer than {max_chars} characters")
    # Control characters (core/text.py) are checked before str.strip() would drop the
    # C1 line break U+0085 at either end.
    if CONTROL_CHARACTERS.search(str(value).strip(" \t\n\r\f\v")):
        raise BadRequest(f"{where}{key} must not contain control characters")
    utf8_size(text, f"{where}{key}")
    return text


def encodable(text: str) -> str:
    """``text`` with lone surrogates escaped: safe to echo back in a reply."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def utf8_size(text: str, what: str) -> int:
    """The UTF-8 size of ``text``; a lone surrogate (JSON allows "\\ud800") is refused.

    Such a string cannot be encoded for any client: stored, it would break every reply
    and delivery that carries it (the room's history, the list of rooms)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest(f"{what} is not valid Unicode text (it has a lone surrogate)") from None


def required_string(
    parent: dict[str, Any], key: str, where: str = "", *, max_chars: int = MAX_NAME_CHARS
) -> str:
    text = optional_string(parent, key, where, max_chars=max_chars)
    if text is None:
        raise BadRequest(f"{where}{key} is required")
    return text


def optional_int(
    parent: dict[str, Any], key: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be an integer, got {_type_name(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise BadRequest(f"{key} must be between {minimum}{upper}, got {value}")
    return value


def attribute_pairs(parent: dict[str, Any], key: str, where: str) -> list[tuple[str, str]]:
    """A list of ``{objectType, content}`` objects, as (objectType, content) pairs."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where}{key} must be a list, got {_type_name(value)}")
    pairs = []
    for index, item in enumerate(value):
        label = f"{where}{key}[{index}]."
        if not isinstance(item, dict):
            raise BadRequest(f"{where}{key}[{index}] must be an object, got {_type_name(item)}")
        kind = required_string(item, "objectType", label)
        content = required_string(item, "content", label, max_chars=4096)
        pairs.append((kind, content))
    return pairs


def message_content(obj: dict[str, Any]) -> str:
    """``object.content`` of a message: a string with something in it, valid Unicode."""
    text = obj.get("content")
    if not isinstance(text, str):
        raise BadRequest("object.content must be a string")
    if not text.strip():
        raise BadRequest("object.content must not be empty")
    utf8_size(text, "object.content")
    return text
