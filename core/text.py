"""Text rules shared by every way an id enters the node: a request (handlers/validation.py
reads requests field by field) or a signed token (server/auth.py).

Control characters (Unicode category Cc: C0, DEL and C1) are refused in ids and names:
they break log lines, terminals and other clients' displays; U+0085 is even a line break.
"""

from __future__ import annotations

import re

from .errors import BadRequest

MAX_ID_CHARS = 128
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def checked_id(value: object, what: str) -> str:
    """``value`` as a user id: a non-empty string of at most 128 characters, no control
    characters, valid Unicode (no lone surrogates)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{what} must be a non-empty string")
    if CONTROL_CHARACTERS.search(value):
        raise BadRequest(f"{what} must not contain control characters")
    text = value.strip()
    if len(text) > MAX_ID_CHARS:
        raise BadRequest(f"{what} is longer than {MAX_ID_CHARS} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} is not valid Unicode text (it has a lone surrogate)") from None
    return text
