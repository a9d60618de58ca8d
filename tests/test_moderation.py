"""Moderation end to end over socket.io: roles, per-action access rules, kick, ban, mute,
delete and edit, on both stores; across two nodes on the real Redis; ban expiry.

Admins are named through the HTTP API (``--auth open`` takes no global role from a
client) or by a JWT ``roles`` claim (``test_a_jwt_admin_bans_globally``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import aiohttp
import jwt
import pytest

from tests.node_fixtures import ChatClient, RunningNode
from tests.test_api import KEY, Api, http  # noqa: F401  (http is a fixture)

pytest_plugins = ["tests.node_fixtures"]

SECRET = "a-test-secret-of-at-least-32-bytes!"
ROLES = ("member", "moderator", "owner", "admin")
ATTRS = {"level": "1"}
PASSING = {"level": {"in": ["1", "2"]}}
FAILING = [{"level": {"min": 5}}, {"level": {"not": {"in": ["1"]}}}]  # neither holds


def ok(reply: dict[str, Any]) -> Any:
    assert reply["status_code"] == 200, reply
    return reply.get("data")


def status(reply: dict[str, Any]) -> int:
    code: int = reply["status_code"]
    return code


def left(text: str, head: str, *options: str) -> bool:
    """``text`` says ``head`` followed by one of ``options`` (the time left, which is a
    second less than the duration unless the check ran within the same millisecond)."""
    return any(head + option in text for option in options)


def room_req(room_id: str, **obj: Any) -> dict[str, Any]:
    return {"target": {"id": room_id}, "object": obj}


async def set_rules(client: ChatClient, room_id: str, rules: dict[str, Any]) -> dict[str, Any]:
    return await client.call("set_acl", {"target": {"id": room_id}, "object": {"rules": rules}})


class Cast:
    """One user per role in one room, on one node (the owner created it)."""

    def __init__(self, node: RunningNode, api: Api) -> None:
        self.node = node
        self.api = api
        self.clients: dict[str, ChatClient] = {}
        self.room = ""

    async def start(self) -> Cast:
        for role in ROLES:
            self.clients[role] = await self.node.client(user=role, attributes=ATTRS)
        self.room = await self.clients["owner"].create("stage")
        await self.api.call("PUT", "/users/admin/role", {"role": "admin"}, expect=200)
        reply = await self.owner.call(
            "set_role", room_req(self.room, id="moderator", content="moderator")
        )
        ok(reply)
        return self

    @property
    def owner(self) -> ChatClient:
        return self.clients["owner"]

    def __getitem__(self, role: str) -> ChatClient:
        return self.clients[role]


@pytest.fixture
async def cast(node_factory, http: aiohttp.ClientSession) -> Cast:  # noqa: F811
    node = await node_factory(api_keys=(KEY,))
    return await Cast(node, Api(node, http)).start()


# -- the matrix: roles x actions x rule outcomes -------------------------------------------


async def attempt(cast: Cast, role: str, action: str) -> int:
    """Try ``action`` as ``role``: the status code (for list: 200 if the room is listed,
    403 if it is hidden)."""
    client, room = cast[role], cast.room
    if action == "join":
        await client.leave(room)  # in or out (a tightened rule may have taken them out)
        code = status(await client.join(room))
        if code == 200:
            ok(await client.leave(room))
        return code
    if action == "send":
        return status(await client.say(room, f"hello from {role}"))
    if action == "history":
        return status(await client.history({"id": room}))
    if action == "users":
        return status(await client.call("users_in_room", {"target": {"id": room}}))
    listed = ok(await client.call("list_rooms", {}))["object"]["attachments"]
    return 200 if room in [r["id"] for r in listed] else 403


@pytest.mark.parametrize("action", ["join", "send", "history", "users", "list"])
async def test_roles_by_actions_by_rule_outcomes(cast: Cast, action: str):
    for role in ROLES:
        ok(await cast[role].join(cast.room))
    for outcome, rule in (("passes", PASSING), ("fails", FAILING)):
        ok(await set_rules(cast.owner, cast.room, {action: rule}))
        if action != "join":  # members a join rule removed are back for the others
            for role in ROLES:
                await cast[role].join(cast.room)
        for role in ROLES:
            expected = 200 if outcome == "passes" or role != "member" else 403
            got = await attempt(cast, role, action)
            assert got == expected, (action, outcome, role, got)


@pytest.mark.parametrize(
    ("event", "minimum"),
    [
        ("set_role", "owner"),
        ("set_acl", "owner"),
        ("rename_room", "owner"),
        ("kick", "moderator"),
        ("ban", "moderator"),
        ("mute", "moderator"),
        ("list_bans", "moderator"),
        ("unban", "moderator"),
        ("global_ban", "admin"),
    ],
)
async def test_who_may_moderate(cast: Cast, event: str, minimum: str):
    """Each role either may (200) or is refused (403 with a reason naming the role)."""
    victim = await cast.node.client(user="victim", attributes=ATTRS)
    for role in ROLES:
        if event == "kick":
            ok(await victim.join(cast.room))
        if event == "unban":
            await cast.api.call("PUT", f"/rooms/{cast.room}/bans/victim", {}, expect=200)
        request: dict[str, Any] = room_req(cast.room, id="victim", content="because")
        name = event
        if event == "set_role":
            request = room_req(cast.room, id="victim", content="none")
        elif event == "set_acl":
            request = {"target": {"id": cast.room}, "object": {"rules": {"send": PASSING}}}
        elif event == "rename_room":
            request = {"target": {"id": cast.room, "displayName": f"stage by {role}"}}
        elif event == "global_ban":
            name = "ban"
            request = {"target": {"objectType": "global"}, "object": {"id": "victim"}}
        reply = await cast[role].call(name, request)
        allowed = ROLES.index(role) >= ROLES.index(minimum)
        assert status(reply) == (200 if allowed else 403), (event, role, reply)
        if not allowed:
            assert minimum in reply["data"] or "admin" in reply["data"], reply
        if event == "global_ban" and allowed:
            await cast.api.call("DELETE", "/bans/victim", expect=200)
        if event == "ban" and allowed:
            await cast.api.call("DELETE", f"/rooms/{cast.room}/bans/victim", expect=200)


async def test_nobody_acts_on_an_equal_or_higher_role(cast: Cast):
    for actor, target in [("moderator", "owner"), ("moderator", "admin"), ("owner", "admin")]:
        ok(await cast[target].join(cast.room))
        for event in ("kick", "ban", "mute"):
            reply = await cast[actor].call(event, room_req(cast.room, id=target))
            assert status(reply) == 403, (actor, event, target, reply)
            assert "not below yours" in reply["data"]
    reply = await cast["moderator"].call("kick", room_req(cast.room, id="moderator"))
    assert status(reply) == 400 and "yourself" in reply["data"]


# -- roles -------------------------------------------------------------------------------


async def test_set_role_shows_in_join_and_gives_rights(cast: Cast):
    joined = ok(await cast["member"].join(cast.room))
    parts = {a["objectType"]: a["attachments"] for a in joined["object"]["attachments"]}
    assert parts["owner"] == [{"id": "owner", "content": "owner"}]
    assert parts["moderator"] == [{"id": "moderator", "content": "moderator"}]
    ok(await cast.owner.call("set_role", room_req(cast.room, id="member", content="owner")))
    # The new owner may now name moderators; the old moderator loses the role.
    ok(await cast["member"].call("set_role", room_req(cast.room, id="moderator", content="none")))
    reply = await cast["moderator"].call("kick", room_req(cast.room, id="admin"))
    assert status(reply) == 403
    room = ok(await cast["admin"].join(cast.room))
    parts = {a["objectType"]: a["attachments"] for a in room["object"]["attachments"]}
    assert [o["id"] for o in parts["owner"]] == ["member", "owner"]
    assert parts["moderator"] == []


# -- kick, ban, mute on one node ---------------------------------------------------------


async def test_kick_takes_every_session_out_and_they_may_come_back(cast: Cast):
    second = await cast.node.client("polling", user="member", attributes=ATTRS)
    for client in (cast["member"], second, cast["admin"]):
        ok(await client.join(cast.room))
    reply = ok(
        await cast["moderator"].call("kick", room_req(cast.room, id="member", content="calm down"))
    )
    assert reply["object"] == {"id": "member", "summary": "member", "content": "calm down"}
    for client in (cast["member"], second):
        [kicked] = await client.wait_for("gn_kicked")
        assert (kicked["target"]["id"], kicked["object"]["content"]) == (cast.room, "calm down")
        assert kicked["actor"]["id"] == "moderator"
        assert status(await client.say(cast.room, "still here?")) == 400
    [seen] = await cast["admin"].wait_for("gn_user_kicked")
    assert seen["object"]["id"] == "member"
    users = ok(await cast["admin"].call("users_in_room", {"target": {"id": cast.room}}))
    assert "member" not in [u["id"] for u in users["object"]["attachments"]]
    ok(await cast["member"].join(cast.room))
    reply = await cast["moderator"].call("kick", room_req(cast.room, id="nobody"))
    assert status(reply) == 400 and "not in room" in reply["data"]


async def test_room_ban_refuses_join_with_time_left_until_unbanned(cast: Cast):
    ok(await cast["member"].join(cast.room))
    banned = ok(
        await cast["moderator"].call(
            "ban", room_req(cast.room, id="member", content="spam", duration="2h")
        )
    )
    expires = datetime.fromisoformat(banned["object"]["expires"])
    assert abs(expires.timestamp() - (time.time() + 7200)) < 60
    [pushed] = await cast["member"].wait_for("gn_banned")
    assert pushed["object"]["expires"] == banned["object"]["expires"]
    assert pushed["object"]["content"] == "spam"
    reply = await cast["member"].join(cast.room)
    assert status(reply) == 403
    assert left(reply["data"], "banned from room 'stage' for ", "1h 59m", "2h")
    assert "(spam)" in reply["data"]
    listed = ok(await cast["moderator"].call("list_bans", {"target": {"id": cast.room}}))
    assert [b["id"] for b in listed["object"]["attachments"]] == ["member"]
    assert status(await cast["member"].call("list_bans", {"target": {"id": cast.room}})) == 403
    ok(await cast["moderator"].call("unban", room_req(cast.room, id="member")))
    ok(await cast["member"].join(cast.room))
    reply = await cast["moderator"].call("unban", room_req(cast.room, id="member"))
    assert status(reply) == 400 and "not banned" in reply["data"]


async def test_a_multi_day_ban_keeps_its_days(cast: Cast):
    ok(await cast["moderator"].call("ban", room_req(cast.room, id="member", duration="3d")))
    reply = await cast["member"].join(cast.room)
    assert status(reply) == 403
    assert left(reply["data"], "for ", "2d 23h 59m", "3d"), reply
    seconds = ok(
        await cast["moderator"].call("ban", room_req(cast.room, id="member", duration=900_000))
    )
    expires = datetime.fromisoformat(seconds["object"]["expires"])
    assert abs(expires.timestamp() - (time.time() + 900_000)) < 60
    reply = await cast["member"].join(cast.room)
    assert left(reply["data"], "for ", "10d 9h 59m", "10d 10h"), reply


async def test_a_short_ban_really_expires(cast: Cast):
    ok(await cast["moderator"].call("ban", room_req(cast.room, id="member", duration="4s")))
    assert status(await cast["member"].join(cast.room)) == 403
    # Polled with a generous bound rather than timed: the ban ends by itself.
    for _ in range(40):
        await asyncio.sleep(0.5)
        if status(await cast["member"].join(cast.room)) == 200:
            break
    else:
        raise AssertionError("the 4 s ban did not end within 20 s")
    listed = ok(await cast["moderator"].call("list_bans", {"target": {"id": cast.room}}))
    assert listed["object"]["attachments"] == []


async def test_a_permanent_ban_has_no_expiry(cast: Cast):
    banned = ok(
        await cast["moderator"].call("ban", room_req(cast.room, id="member", duration=None))
    )
    assert banned["object"]["expires"] is None
    reply = await cast["member"].join(cast.room)
    assert status(reply) == 403 and "without end" in reply["data"]


async def test_global_ban_closes_sessions_and_refuses_login(cast: Cast):
    other = await cast.node.client("polling", user="member")
    reply = ok(
        await cast["admin"].call(
            "ban",
            {"target": {"objectType": "global"}, "object": {"id": "member", "duration": "1d"}},
        )
    )
    assert reply["target"] == {"objectType": "global"}
    for client in (cast["member"], other):
        [banned] = await client.wait_for("gn_banned")
        assert banned["target"] == {"objectType": "global"}
        await asyncio.wait_for(client.disconnected.wait(), 10)
    fresh = await cast.node.client()
    reply = await fresh.login("member")
    assert status(reply) == 403 and left(reply["data"], "banned for ", "23h 59m", "1d"), reply
    listed = ok(await cast["admin"].call("list_bans", {"target": {"objectType": "global"}}))
    assert [b["id"] for b in listed["object"]["attachments"]] == ["member"]
    ok(
        await cast["admin"].call(
            "unban", {"target": {"objectType": "global"}, "object": {"id": "member"}}
        )
    )
    ok(await fresh.login("member"))


async def test_a_jwt_admin_bans_globally(node_factory):
    node = await node_factory(auth="jwt", jwt_secret=SECRET)

    def token(user: str, roles: list[str]) -> str:
        claims = {"sub": user, "roles": roles, "exp": int(time.time()) + 3600}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    boss = await node.client(auth={"token": token("boss", ["admin"])})
    ok(await boss.login("boss"))
    pleb = await node.client(auth={"token": token("pleb", [])})
    ok(await pleb.login("pleb"))
    request = {"target": {"objectType": "global"}, "object": {"id": "boss"}}
    assert status(await pleb.call("ban", request)) == 403
    ok(await boss.call("ban", {"target": {"objectType": "global"}, "object": {"id": "pleb"}}))
    await asyncio.wait_for(pleb.disconnected.wait(), 10)
    again = await node.client(auth={"token": token("pleb", [])})
    assert status(await again.login("pleb")) == 403
    # The admin can run any room, without being its owner.
    carol = await node.client(auth={"token": token("carol", [])})
    ok(await carol.login("carol"))
    room = await carol.create("carols")
    ok(await boss.call("rename_room", {"target": {"id": room, "displayName": "boss room"}}))


async def test_mute_refuses_sending_but_not_reading(cast: Cast):
    ok(await cast["member"].join(cast.room))
    muted = ok(
        await cast["moderator"].call("mute", room_req(cast.room, id="member", duration="15m"))
    )
    assert muted["verb"] == "mute"
    [pushed] = await cast["member"].wait_for("gn_muted")
    assert pushed["object"]["expires"] == muted["object"]["expires"]
    reply = await cast["member"].say(cast.room, "can I talk?")
    assert status(reply) == 403
    assert left(reply["data"], "muted in room 'stage' for ", "14m", "15m")
    ok(await cast["moderator"].join(cast.room))
    ok(await cast["moderator"].say(cast.room, "you can read this"))
    await cast["member"].wait_for(
        "message", lambda m: m["object"]["content"] == "you can read this"
    )
    ok(await cast["member"].history({"id": cast.room}))
    ok(await cast["moderator"].call("unmute", room_req(cast.room, id="member")))
    ok(await cast["member"].say(cast.room, "thanks"))


# -- delete and edit ---------------------------------------------------------------------


def history_of(reply: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = ok(reply)["object"]["attachments"]
    return entries


async def test_delete_and_edit_show_in_history_and_pushes(cast: Cast):
    member, mod = cast["member"], cast["moderator"]
    for client in (member, mod):
        ok(await client.join(cast.room))
    first = ok(await member.say(cast.room, "first"))
    second = ok(await member.say(cast.room, "secnod"))
    edited = ok(
        await member.call("edit_message", room_req(cast.room, id=second["id"], content="second"))
    )
    assert edited["verb"] == "edit" and edited["seq"] == second["seq"] + 1
    assert edited["object"] == {"id": second["id"], "seq": second["seq"], "content": "second"}
    [seen] = await mod.wait_for("gn_message_edited")
    assert seen == edited
    deleted = ok(await mod.call("delete_message", room_req(cast.room, id=first["id"])))
    assert deleted["verb"] == "delete" and deleted["seq"] == edited["seq"] + 1
    [seen] = await member.wait_for("gn_message_deleted")
    assert seen == deleted
    entries = history_of(await member.history({"id": cast.room}))
    by_id = {e["id"]: e for e in entries}
    assert by_id[first["id"]]["content"] is None and "deleted" in by_id[first["id"]]
    assert by_id[second["id"]]["content"] == "second" and "updated" in by_id[second["id"]]
    assert [e.get("verb") for e in entries] == [None, None, "edit", "delete"]
    # Join history shows the same.
    joined = ok(await cast["admin"].join(cast.room))
    [hist] = [a for a in joined["object"]["attachments"] if a["objectType"] == "history"]
    assert hist["attachments"][0]["content"] is None
    # Twice, or a message that is not there: 400 naming it.
    reply = await mod.call("delete_message", room_req(cast.room, id=first["id"]))
    assert status(reply) == 400 and "deleted already" in reply["data"]
    reply = await mod.call("edit_message", room_req(cast.room, id="nope", content="x"))
    assert status(reply) == 400 and "no message 'nope'" in reply["data"]


async def test_only_the_sender_edits_and_moderators_delete(cast: Cast):
    member, other = cast["member"], cast["admin"]
    ok(await member.join(cast.room))
    ok(await other.join(cast.room))
    sent = ok(await member.say(cast.room, "mine"))
    reply = await other.call("edit_message", room_req(cast.room, id=sent["id"], content="yours"))
    assert status(reply) == 403 and "only its sender" in reply["data"]
    theirs = ok(await other.say(cast.room, "theirs"))
    reply = await member.call("delete_message", room_req(cast.room, id=theirs["id"]))
    assert status(reply) == 403
    ok(await member.call("delete_message", room_req(cast.room, id=sent["id"])))


async def test_the_edit_window_binds_senders_not_moderators(node_factory, http):  # noqa: F811
    node = await node_factory(api_keys=(KEY,), edit_window=1)
    cast = await Cast(node, Api(node, http)).start()
    member = cast["member"]
    ok(await member.join(cast.room))
    late = ok(await member.say(cast.room, "soon too late"))
    also = ok(await member.say(cast.room, "also"))
    await asyncio.sleep(1.5)
    reply = await member.call("edit_message", room_req(cast.room, id=late["id"], content="x"))
    assert status(reply) == 403 and "within 1 seconds" in reply["data"]
    reply = await member.call("delete_message", room_req(cast.room, id=late["id"]))
    assert status(reply) == 403
    ok(await cast["moderator"].call("delete_message", room_req(cast.room, id=also["id"])))


async def test_each_party_deletes_their_own_direct_messages(cast: Cast):
    member, admin = cast["member"], cast["admin"]
    mine = ok(await member.tell("admin", "psst"))
    theirs = ok(await admin.tell("member", "what"))
    target = {"id": "admin", "objectType": "user"}
    reply = await member.call("delete_message", {"target": target, "object": {"id": mine["id"]}})
    deleted = ok(reply)
    [seen] = await admin.wait_for("gn_message_deleted")
    assert seen == deleted
    reply = await member.call("delete_message", {"target": target, "object": {"id": theirs["id"]}})
    assert status(reply) == 403
    entries = history_of(await admin.history({"id": "member", "objectType": "user"}))
    assert entries[0]["content"] is None and entries[1]["content"] == "what"


# -- access rules ------------------------------------------------------------------------


async def test_tightening_the_join_rule_removes_who_no_longer_qualifies(cast: Cast):
    senior = await cast.node.client(user="senior", attributes={"level": "9"})
    for client in (cast["member"], senior, cast["moderator"]):
        ok(await client.join(cast.room))
    ok(await set_rules(cast.owner, cast.room, {"join": {"level": {"min": 5}}}))
    [kicked] = await cast["member"].wait_for("gn_kicked")
    assert kicked["object"]["content"] == "access rules changed"
    [seen] = await senior.wait_for("gn_user_kicked")
    assert seen["object"]["id"] == "member"
    await cast["moderator"].settle()
    assert "gn_kicked" not in cast["moderator"].names()  # moderators are not held to rules
    assert "gn_kicked" not in senior.names()
    assert status(await cast["member"].join(cast.room)) == 403
    # The simple set_acl form tightens the same way.
    ok(
        await cast.owner.call(
            "set_acl",
            {
                "target": {"id": cast.room},
                "object": {"attachments": [{"objectType": "level", "content": "10:"}]},
            },
        )
    )
    [kicked] = await senior.wait_for("gn_kicked")
    assert kicked["object"]["content"] == "access rules changed"


async def test_get_acl_returns_both_forms(cast: Cast):
    ok(
        await cast.owner.call(
            "set_acl",
            {
                "target": {"id": cast.room},
                "object": {
                    "attachments": [{"objectType": "city", "content": "Berlin,Paris"}],
                    "rules": {"send": [{"age": "18:"}, {"vip": {"in": ["yes"]}}]},
                },
            },
        )
    )
    got = ok(await cast["member"].call("get_acl", {"target": {"id": cast.room}}))
    assert got["object"]["attachments"] == [{"objectType": "city", "content": "Berlin,Paris"}]
    assert got["object"]["rules"] == {"send": [{"age": "18:"}, {"vip": {"in": ["yes"]}}]}
    # Rules alone leave the simple ACL; null removes one action's rule.
    ok(await set_rules(cast.owner, cast.room, {"send": None, "list": {"vip": "yes"}}))
    got = ok(await cast["member"].call("get_acl", {"target": {"id": cast.room}}))
    assert got["object"]["attachments"] == [{"objectType": "city", "content": "Berlin,Paris"}]
    assert got["object"]["rules"] == {"list": [{"vip": "yes"}]}  # one alternative: a list


# -- bad input -----------------------------------------------------------------------------

R = "ROOM"  # replaced by the cast's room id

BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("set_role", {"object": {"id": "x", "content": "owner"}}, "target is required"),
    ("set_role", {"target": {"id": R}, "object": {"id": "x"}}, "object.content is required"),
    ("set_role", {"target": {"id": R}, "object": {"id": "x", "content": "king"}}, "object.content"),
    ("set_role", {"target": {"id": R}, "object": {"content": "owner"}}, "object.id is required"),
    ("kick", {"target": {"id": R}}, "object is required"),
    ("kick", {"target": {"id": R}, "object": {"id": 5.5}}, "object.id must be a string"),
    ("kick", {"target": {"id": R}, "object": {"id": "member", "content": ["x"]}}, "object.content"),
    (
        "ban",
        {"target": {"id": R}, "object": {"id": "member", "duration": "5 weeks"}},
        "object.duration must be like",
    ),
    (
        "ban",
        {"target": {"id": R}, "object": {"id": "member", "duration": 0}},
        "object.duration must be between",
    ),
    ("ban", {"target": {"id": R}, "object": {"id": "member", "duration": True}}, "object.duration"),
    (
        "ban",
        {"target": {"objectType": "planet", "id": R}, "object": {"id": "member"}},
        "target.objectType",
    ),
    ("ban", {"target": {}, "object": {"id": "member"}}, "target.id is required"),
    ("unban", {"target": {"id": R}, "object": {}}, "object.id is required"),
    ("list_bans", {}, "target is required"),
    (
        "mute",
        {"target": {"id": R}, "object": {"id": "member", "duration": "-5m"}},
        "object.duration",
    ),
    ("unmute", {"target": {"id": R}}, "object is required"),
    ("get_acl", {"target": {"id": "no-such-room"}}, "no room with id"),
    ("delete_message", {"target": {"id": R}}, "object is required"),
    (
        "delete_message",
        {"target": {"id": R, "objectType": "group"}, "object": {"id": "m"}},
        "target.objectType",
    ),
    ("edit_message", {"target": {"id": R}, "object": {"id": "m"}}, "object.content"),
    (
        "edit_message",
        {"target": {"id": R}, "object": {"id": "m", "content": "  "}},
        "object.content must not be empty",
    ),
    (
        "set_acl",
        {"target": {"id": R}, "object": {"rules": {"dance": {"a": "b"}}}},
        "unknown action 'dance'",
    ),
    (
        "set_acl",
        {"target": {"id": R}, "object": {"rules": {"send": {"age": {"min": "x"}}}}},
        "object.rules.send.age.min must be a number",
    ),
    (
        "set_acl",
        {"target": {"id": R}, "object": {"rules": {"send": {"age": {"between": 1}}}}},
        "unknown condition (between)",
    ),
    (
        "set_acl",
        {"target": {"id": R}, "object": {"rules": {"send": []}}},
        "object.rules.send must have 1 to",
    ),
    (
        "set_acl",
        {"target": {"id": R}, "object": {"rules": {"send": [{"a": "1:x"}]}}},
        "object.rules.send[0].a",
    ),
    (
        "set_acl",
        {"target": {"id": R}, "object": {"rules": {"send": {"a": {"min": 5, "max": 1}}}}},
        "min is greater than max",
    ),
    (
        "set_acl",
        {"target": {"id": R}, "object": {"rules": ["join"]}},
        "object.rules must be an object",
    ),
]


def with_room(value: Any, room_id: str) -> Any:
    """``value`` with every ``R`` replaced by ``room_id``."""
    if value == R:
        return room_id
    if isinstance(value, dict):
        return {k: with_room(v, room_id) for k, v in value.items()}
    if isinstance(value, list):
        return [with_room(v, room_id) for v in value]
    return value


async def test_bad_input_for_every_new_event_is_400_naming_the_field(cast: Cast):
    for event, payload, fragment in BAD_REQUESTS:
        request = with_room(payload, cast.room)
        reply = await cast.owner.call(event, request)
        assert status(reply) == 400, (event, payload, reply)
        assert fragment in reply["data"], (event, payload, reply)
