"""Unit tests of handlers/validation.py: how client payloads are read and refused."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.validation import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    BadRequest,
    attribute_pairs,
    optional_int,
    optional_object,
    optional_string,
    request_object,
    required_object,
    required_string,
    utf8_size,
)

NOT_OBJECTS = [
    ("text", "a string"),
    ("", "a string"),
    ([], "a list"),
    ([{"a": 1}], "a list"),
    (0, "a number"),
    (4.5, "a number"),
    (True, "a boolean"),
    (False, "a boolean"),
]


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(BadRequest) as info:
        call(*args, **kwargs)
    return str(info.value)


# -- request_object ------------------------------------------------------------------------


def test_request_object_accepts_an_object_as_is():
    payload = {"verb": "list", "nested": {"x": [1]}}
    assert request_object(payload) is payload
    assert request_object({}) == {}


def test_request_object_treats_a_missing_payload_as_empty():
    assert request_object(None) == {}


@pytest.mark.parametrize(("payload", "kind"), NOT_OBJECTS, ids=repr)
def test_request_object_refuses_anything_else(payload: Any, kind: str):
    assert refused(request_object, payload) == f"the request must be a JSON object, got {kind}"


# -- objects -------------------------------------------------------------------------------


def test_optional_object():
    inner = {"id": "r"}
    assert optional_object({"target": inner}, "target") is inner
    assert optional_object({}, "target") == {}
    assert optional_object({"target": None}, "target") == {}


@pytest.mark.parametrize(("value", "kind"), NOT_OBJECTS, ids=repr)
def test_optional_object_names_the_field_and_the_type(value: Any, kind: str):
    message = refused(optional_object, {"target": value}, "target", "outer.")
    assert message == f"outer.target must be an object, got {kind}"


def test_required_object():
    assert required_object({"target": {"id": "r"}}, "target") == {"id": "r"}
    assert required_object({"target": {}}, "target") == {}
    assert refused(required_object, {}, "target") == "target is required"
    assert refused(required_object, {"target": None}, "target", "a.") == "a.target is required"
    assert "must be an object" in refused(required_object, {"target": "r"}, "target")


# -- strings -------------------------------------------------------------------------------


def test_optional_string_strips_and_keeps_unicode():
    assert optional_string({"name": "  lobby  "}, "name") == "lobby"
    assert optional_string({"name": "Zürich 🏔"}, "name") == "Zürich 🏔"
    assert optional_string({}, "name") is None
    assert optional_string({"name": None}, "name") is None


def test_optional_string_takes_an_integer_as_its_text():
    # Seed clients send numeric user ids; they are read as their decimal text.
    assert optional_string({"id": 42}, "id") == "42"
    assert optional_string({"id": 0}, "id") == "0"


@pytest.mark.parametrize(
    ("value", "kind"),
    [([], "a list"), ({}, "an object"), (True, "a boolean"), (1.5, "a number")],
    ids=repr,
)
def test_optional_string_refuses_other_types(value: Any, kind: str):
    assert refused(optional_string, {"id": value}, "id", "actor.") == (
        f"actor.id must be a string, got {kind}"
    )


@pytest.mark.parametrize("value", ["", " ", "\t \n"], ids=repr)
def test_optional_string_refuses_blank_text(value: str):
    assert refused(optional_string, {"id": value}, "id", "actor.") == "actor.id must not be empty"


def test_optional_string_length_is_counted_after_stripping():
    assert optional_string({"n": " " + "x" * MAX_NAME_CHARS + " "}, "n") == "x" * MAX_NAME_CHARS
    message = refused(optional_string, {"n": "x" * (MAX_NAME_CHARS + 1)}, "n")
    assert message == f"n is longer than {MAX_NAME_CHARS} characters"


def test_optional_string_length_is_in_characters_not_bytes():
    assert optional_string({"n": "é" * MAX_NAME_CHARS}, "n") == "é" * MAX_NAME_CHARS


def test_optional_string_max_chars_is_configurable():
    assert optional_string({"c": "x" * 4096}, "c", max_chars=4096) == "x" * 4096
    assert "longer than 10" in refused(optional_string, {"c": "x" * 11}, "c", max_chars=10)
    assert MAX_ID_CHARS == 128


@pytest.mark.parametrize("value", ["a\nb", "a\x00b", "a\x1fb", "tab\tinside"], ids=repr)
def test_optional_string_refuses_control_characters(value: str):
    message = refused(optional_string, {"n": value}, "n", "target.")
    assert message == "target.n must not contain control characters"


def test_optional_string_refuses_a_lone_surrogate():
    message = refused(optional_string, {"n": "a\ud800b"}, "n", "target.")
    assert message == "target.n is not valid Unicode text (it has a lone surrogate)"
    # A proper pair (what JSON's "\ud83d\ude42" decodes to) is one character: fine.
    assert optional_string({"n": "\U0001f642"}, "n") == "🙂"


def test_required_string():
    assert required_string({"id": " r1 "}, "id") == "r1"
    assert refused(required_string, {}, "id", "target.") == "target.id is required"
    assert refused(required_string, {"id": None}, "id") == "id is required"
    assert "must not be empty" in refused(required_string, {"id": "  "}, "id")


def test_utf8_size_counts_bytes():
    assert utf8_size("", "x") == 0
    assert utf8_size("abc", "x") == 3
    assert utf8_size("é", "x") == 2
    assert utf8_size("€", "x") == 3
    assert utf8_size("🙂", "x") == 4
    assert refused(utf8_size, "\udc00", "object.content") == (
        "object.content is not valid Unicode text (it has a lone surrogate)"
    )


# -- integers ------------------------------------------------------------------------------


def test_optional_int_within_bounds():
    assert optional_int({"limit": 1}, "limit", minimum=1, maximum=500) == 1
    assert optional_int({"limit": 500}, "limit", minimum=1, maximum=500) == 500
    assert optional_int({"since": 10**12}, "since", minimum=0) == 10**12
    assert optional_int({}, "limit", minimum=1) is None
    assert optional_int({"limit": None}, "limit", minimum=1) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "limit must be between 1 and 500, got 0"),
        (501, "limit must be between 1 and 500, got 501"),
        (-1, "limit must be between 1 and 500, got -1"),
        ("5", "limit must be an integer, got a string"),
        (2.0, "limit must be an integer, got a number"),
        (True, "limit must be an integer, got a boolean"),
        ([5], "limit must be an integer, got a list"),
        ({}, "limit must be an integer, got an object"),
    ],
    ids=repr,
)
def test_optional_int_refuses(value: Any, expected: str):
    assert refused(optional_int, {"limit": value}, "limit", minimum=1, maximum=500) == expected


def test_optional_int_without_a_maximum():
    assert refused(optional_int, {"before": 0}, "before", minimum=1) == (
        "before must be between 1, got 0"
    )


# -- attribute pairs -----------------------------------------------------------------------


def test_attribute_pairs_in_order():
    parent = {
        "attachments": [
            {"objectType": "city", "content": " Shanghai "},
            {"objectType": "age", "content": 31},
            {"objectType": "city", "content": "Beijing", "extra": "ignored"},
        ]
    }
    assert attribute_pairs(parent, "attachments", "actor.") == [
        ("city", "Shanghai"),
        ("age", "31"),
        ("city", "Beijing"),
    ]
    assert attribute_pairs({}, "attachments", "actor.") == []
    assert attribute_pairs({"attachments": None}, "attachments", "actor.") == []
    assert attribute_pairs({"attachments": []}, "attachments", "actor.") == []


def test_attribute_content_may_be_long_as_a_token():
    token = "t" * 4096
    pairs = attribute_pairs(
        {"a": [{"objectType": "token", "content": token}]}, "a", "actor."
    )
    assert pairs == [("token", token)]
    assert "longer than 4096" in refused(
        attribute_pairs, {"a": [{"objectType": "token", "content": token + "t"}]}, "a", ""
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("city", "actor.attachments must be a list, got a string"),
        ({"objectType": "city"}, "actor.attachments must be a list, got an object"),
        (["city"], "actor.attachments[0] must be an object, got a string"),
        ([{"objectType": "a", "content": "b"}, 7],
         "actor.attachments[1] must be an object, got a number"),
        ([{"content": "b"}], "actor.attachments[0].objectType is required"),
        ([{"objectType": "a"}], "actor.attachments[0].content is required"),
        ([{"objectType": "", "content": "b"}], "actor.attachments[0].objectType must not be empty"),
        ([{"objectType": "a", "content": [1]}],
         "actor.attachments[0].content must be a string, got a list"),
    ],
    ids=repr,
)
def test_attribute_pairs_refuses(value: Any, expected: str):
    assert refused(attribute_pairs, {"attachments": value}, "attachments", "actor.") == expected
