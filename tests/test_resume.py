"""resume (event, and inside login), gn_gap, epochs and idempotent sends, end to end on
both stores: a real node and the python-socketio client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.register_assert_rewrite("tests.node_fixtures")
from tests.node_fixtures import ChatClient, RunningNode  # noqa: E402

pytest_plugins = ["tests.node_fixtures"]


def ok(reply: dict[str, Any]) -> Any:
    assert reply["status_code"] == 200, reply
    return reply.get("data")


def log(kind: str, log_id: str, seq: int = 0, epoch: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"objectType": kind, "id": log_id, "seq": seq}
    if epoch is not None:
        item["epoch"] = epoch
    return item


async def resume(client: ChatClient, *logs: dict[str, Any]) -> list[dict[str, Any]]:
    data = ok(
        await client.call("resume", {"verb": "resume", "object": {"attachments": list(logs)}})
    )
    assert data["verb"] == "resume"
    outcomes: list[dict[str, Any]] = data["object"]["attachments"]
    return outcomes


def seqs_of(client: ChatClient, target_id: str) -> list[int]:
    """Seqs of the ``message`` events of a room (or from a user) in arrival order."""
    return [
        m["seq"]
        for m in client.events("message")
        if m["target"]["id"] == target_id or m["actor"]["id"] == target_id
    ]


async def test_resume_replays_exactly_what_was_missed_while_live_traffic_flows(
    node: RunningNode, transport: str
) -> None:
    alice = await node.client(transport, user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    bob = await node.client(transport, user="bob")
    ok(await bob.join(room_id))
    first = [ok(await alice.say(room_id, f"seen {i}")) for i in range(3)]
    await bob.wait_for("message", count=3)
    epoch = first[-1]["epoch"]
    await bob.disconnect()
    for i in range(20):
        ok(await alice.say(room_id, f"missed {i}"))

    again = await node.client(transport, user="bob")

    async def keep_talking() -> None:
        for i in range(20):
            ok(await alice.say(room_id, f"live {i}"))

    talking = asyncio.create_task(keep_talking())
    [outcome] = await resume(again, log("room", room_id, 3, epoch))
    await talking
    assert outcome["status"] == "ok" and outcome["epoch"] == epoch
    assert outcome["replayed"] >= 20
    await again.wait_for("message", lambda m: m["object"]["content"] == "live 19")
    assert seqs_of(again, room_id) == list(range(4, 44))  # no loss, no repeat, in order
    # The replayed messages came before the reply; the session is in the room again.
    assert again.names().index("gn_resume") > again.names().index("message")
    assert "bob" in [
        u["id"]
        for u in ok(await alice.call("users_in_room", {"verb": "list", "target": {"id": room_id}}))[
            "object"
        ]["attachments"]
    ]


async def test_login_with_logs_resumes_direct_conversations_exactly(
    node: RunningNode, transport: str
) -> None:
    alice = await node.client(transport, user="alice")
    seen = [ok(await alice.tell("bob", f"seen {i}")) for i in range(2)]
    for i in range(10):
        ok(await alice.tell("bob", f"missed {i}"))

    bob = await node.client(transport)

    async def keep_talking() -> None:
        for i in range(10):
            ok(await alice.tell("bob", f"live {i}"))

    talking = asyncio.create_task(keep_talking())
    request = {
        "verb": "login",
        "actor": {"id": "bob"},
        "object": {"attachments": [log("user", "alice", 2, seen[-1]["epoch"])]},
    }
    ok(await bob.call("login", request))
    bob.user = "bob"
    await talking
    await bob.wait_for("message", lambda m: m["object"]["content"] == "live 9")
    assert seqs_of(bob, "alice") == list(range(3, 23))
    [report] = bob.events("gn_resume")
    [outcome] = ok(report)["object"]["attachments"]
    assert (outcome["id"], outcome["objectType"], outcome["status"]) == ("alice", "user", "ok")
    assert outcome["replayed"] >= 10


async def test_a_trimmed_log_is_reported_as_a_gap(node_factory: Any) -> None:
    node = await node_factory(history_size=5)
    alice = await node.client(user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    sent = [ok(await alice.say(room_id, f"m{i}")) for i in range(10)]
    bob = await node.client(user="bob")
    [outcome] = await resume(bob, log("room", room_id, 2, sent[0]["epoch"]))
    assert outcome["status"] == "gap" and outcome["gap"] == {"from": 3, "to": 5}
    assert outcome["replayed"] == 5
    [gap] = bob.events("gn_gap")
    assert gap["target"] == {"id": room_id, "objectType": "room"}
    assert (gap["from"], gap["to"]) == (3, 5)
    assert seqs_of(bob, room_id) == [6, 7, 8, 9, 10]
    names = bob.names()
    assert names.index("gn_gap") < names.index("message")


async def test_another_epoch_resets_the_log(node: RunningNode) -> None:
    alice = await node.client(user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    sent = [ok(await alice.say(room_id, f"m{i}")) for i in range(3)]
    bob = await node.client(user="bob")
    [outcome] = await resume(bob, log("room", room_id, 2, "an-epoch-of-another-life"))
    assert (outcome["status"], outcome["epoch"], outcome["seq"]) == ("reset", sent[0]["epoch"], 3)
    assert seqs_of(bob, room_id) == [1, 2, 3]  # the log from its start
    # A seq beyond the log's head means the same, even without an epoch.
    carol = await node.client(user="carol")
    [outcome] = await resume(carol, log("room", room_id, 99))
    assert outcome["status"] == "reset" and seqs_of(carol, room_id) == [1, 2, 3]


async def test_rooms_gone_or_refused_are_reported_and_not_joined(node: RunningNode) -> None:
    alice = await node.client(user="alice")
    closed = await alice.create("closed")
    ok(
        await alice.call(
            "set_acl",
            {
                "verb": "update",
                "target": {"id": closed},
                "object": {"attachments": [{"objectType": "city", "content": "Paris"}]},
            },
        )
    )
    ok(await alice.tell("bob", "hi"))
    bob = await node.client(user="bob")
    gone, refused, dm = await resume(
        bob, log("room", "no-such-room"), log("room", closed), log("user", "alice")
    )
    assert gone["status"] == "gone" and "no-such-room" in gone["error"]
    assert refused["status"] == "refused" and refused["error"]
    assert (dm["status"], dm["replayed"], dm["seq"]) == ("ok", 1, 1)
    not_in = await bob.call("leave", {"verb": "leave", "target": {"id": closed}})
    assert not_in["status_code"] == 400
    await bob.settle()
    assert seqs_of(bob, closed) == []


async def test_resume_requests_are_checked(node: RunningNode) -> None:
    bob = await node.client(user="bob")
    cases = [
        ({}, "object"),
        ({"object": {"attachments": "x"}}, "at most 500"),
        ({"object": {"attachments": [log("room", f"r{i}") for i in range(501)]}}, "500"),
        ({"object": {"attachments": [{"id": "r", "seq": -1}]}}, "seq"),
        ({"object": {"attachments": [{"id": "r", "seq": "3"}]}}, "seq"),
        ({"object": {"attachments": [{"id": "r", "objectType": "chan"}]}}, "objectType"),
        ({"object": {"attachments": [log("room", "r"), log("room", "r")]}}, "twice"),
        ({"object": {"attachments": [{"seq": 1}]}}, "id"),
    ]
    for request, words in cases:
        reply = await bob.call("resume", request)
        assert reply["status_code"] == 400 and words in reply["data"], (request, reply)
    reply = await bob.call("login", {"actor": {"id": "bob"}, "object": {"attachments": 5}})
    assert reply["status_code"] == 400


async def test_a_retried_send_with_the_same_client_id_is_stored_once(
    node: RunningNode, transport: str
) -> None:
    alice = await node.client(transport, user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    request = {
        "verb": "send",
        "target": {"id": room_id},
        "object": {"content": "once", "id": "client-msg-1"},
    }
    first = ok(await alice.call("message", request))
    retry = ok(
        await alice.call(
            "message", {**request, "object": {"content": "again", "id": "client-msg-1"}}
        )
    )
    assert retry == first
    other = ok(
        await alice.call("message", {**request, "object": {"content": "x", "id": "client-msg-2"}})
    )
    assert other["seq"] == first["seq"] + 1
    history = ok(await alice.history({"id": room_id}))["object"]["attachments"]
    assert [e["content"] for e in history] == ["once", "x"]
    # The same client id to a user is another log: stored there once as well.
    dm = {
        "verb": "send",
        "target": {"objectType": "user", "id": "bob"},
        "object": {"content": "psst", "id": "client-msg-1"},
    }
    assert ok(await alice.call("message", dm)) == ok(await alice.call("message", dm))
    bad = await alice.call("message", {**request, "object": {"content": "y", "id": "x" * 201}})
    assert bad["status_code"] == 400 and "object.id" in bad["data"]


@pytest.mark.parametrize("backend", ["redis"])
async def test_resume_on_another_node_replays_in_order(node_factory: Any) -> None:
    first, second = await node_factory(), await node_factory()
    alice = await first.client(user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    sent = [ok(await alice.say(room_id, f"m{i}")) for i in range(15)]
    dms = [ok(await alice.tell("bob", f"d{i}")) for i in range(5)]
    bob = await second.client()

    async def keep_talking() -> None:
        for i in range(15):
            ok(await alice.say(room_id, f"live {i}"))
            ok(await alice.tell("bob", f"live dm {i}"))

    talking = asyncio.create_task(keep_talking())
    logs = [log("room", room_id, 5, sent[0]["epoch"]), log("user", "alice", 1, dms[0]["epoch"])]
    request = {"actor": {"id": "bob"}, "object": {"attachments": logs}}
    ok(await bob.call("login", request))
    bob.user = "bob"
    await talking
    await bob.wait_for("message", lambda m: m["object"]["content"] == "live dm 14")
    await bob.wait_for("message", lambda m: m["object"]["content"] == "live 14")
    room_seqs = [m["seq"] for m in bob.events("message") if m["target"]["id"] == room_id]
    dm_seqs = [m["seq"] for m in bob.events("message") if m["target"]["id"] == "bob"]
    assert room_seqs == list(range(6, 31))
    assert dm_seqs == list(range(2, 21))


@pytest.mark.parametrize("backend", ["memory"])
async def test_a_restarted_memory_node_starts_new_epochs(node_factory: Any) -> None:
    before = await node_factory()
    alice = await before.client(user="alice")
    old = ok(await alice.tell("bob", "before the restart"))
    after = await node_factory()  # another in-memory store: what a restart gives
    carol = await after.client(user="carol")
    new = ok(await carol.tell("bob", "after"))
    assert new["seq"] == old["seq"] == 1 and new["epoch"] != old["epoch"]
    bob = await after.client(user="bob")
    [outcome] = await resume(bob, log("user", "carol", 1, old["epoch"]))
    assert outcome["status"] == "reset" and outcome["epoch"] == new["epoch"]
    assert [m["object"]["content"] for m in bob.events("message")] == ["after"]


async def test_resume_replays_deletions_and_edits_as_they_were_pushed(node: RunningNode) -> None:
    alice = await node.client(user="alice")
    room_id = await alice.create("lobby")
    ok(await alice.join(room_id))
    first = ok(await alice.say(room_id, "oops"))
    ok(await alice.say(room_id, "fine"))
    deleted = ok(
        await alice.call(
            "delete_message",
            {
                "verb": "delete",
                "target": {"id": room_id},
                "object": {"id": first["id"]},
            },
        )
    )
    bob = await node.client(user="bob")
    [outcome] = await resume(bob, log("room", room_id, 1, first["epoch"]))
    assert (outcome["status"], outcome["replayed"]) == ("ok", 2)
    [removal] = await bob.wait_for("gn_message_deleted")
    assert removal["seq"] == deleted["seq"] == 3 and removal["epoch"] == first["epoch"]
    assert seqs_of(bob, room_id) == [2]
    names = [n for n in bob.names() if n in ("message", "gn_message_deleted")]
    assert names == ["message", "gn_message_deleted"]
