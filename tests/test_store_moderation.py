# ruff: noqa: F811  (pytest fixtures imported from the contract suite)
"""The Store contract for moderation: roles, access rules, admins, bans and mutes,
removing a user from a room, revising a log entry. Runs on both stores (the harness of
``tests/test_store_contract.py``)."""

from __future__ import annotations

import json

import pytest

from storage.base import Fanout, Member, Sanction, SendCheck, Store
from tests.test_store_contract import (  # noqa: F401  (fixtures)
    ALICE,
    BOB,
    CAROL,
    Harness,
    harness,
    joined,
    new_room,
    seq_of,
    store,
    text_tail,
)


async def test_roles_move_a_user_between_owner_moderator_and_none(store: Store) -> None:
    room_id = await new_room(store)
    assert await store.set_role(room_id, BOB, "moderator")
    room = await store.get_room(room_id)
    assert room is not None
    assert (dict(room.owners), dict(room.moderators)) == ({"alice": "Alice"}, {"bob": "Bob"})
    assert await store.set_role(room_id, BOB, "owner")  # one role at a time
    room = await store.get_room(room_id)
    assert room is not None
    assert (dict(room.owners), dict(room.moderators)) == (
        {"alice": "Alice", "bob": "Bob"},
        {},
    )
    assert await store.set_role(room_id, ALICE, None)
    room = await store.get_room(room_id)
    assert room is not None and dict(room.owners) == {"bob": "Bob"}


async def test_role_in_an_unknown_room_or_an_unknown_role(store: Store) -> None:
    assert not await store.set_role("ghost", BOB, "owner")
    assert await store.get_room("ghost") is None
    room_id = await new_room(store)
    with pytest.raises(ValueError):
        await store.set_role(room_id, BOB, "king")


async def test_rules_are_replaced_as_a_whole_and_listed(store: Store) -> None:
    room_id = await new_room(store)
    await store.set_rules(room_id, {"send": '[{"a":"1"}]', "list": '[{"b":"2"}]'})
    room = await store.get_room(room_id)
    assert room is not None and dict(room.rules) == {
        "send": '[{"a":"1"}]',
        "list": '[{"b":"2"}]',
    }
    [summary] = [r for r in await store.list_rooms() if r.id == room_id]
    assert summary.list_rule == '[{"b":"2"}]'
    await store.set_rules(room_id, {"join": '[{"c":"3"}]'})
    room = await store.get_room(room_id)
    assert room is not None and dict(room.rules) == {"join": '[{"c":"3"}]'}
    [summary] = [r for r in await store.list_rooms() if r.id == room_id]
    assert summary.list_rule is None
    await store.set_rules("ghost", {"join": "[]"})
    assert await store.get_room("ghost") is None


async def test_admins(store: Store) -> None:
    assert not await store.is_admin("alice")
    await store.set_admin(ALICE, True)
    await store.set_admin(BOB, True)
    assert await store.is_admin("alice")
    assert await store.admins() == [ALICE, BOB]
    await store.set_admin(ALICE, False)
    assert not await store.is_admin("alice")
    assert await store.admins() == [BOB]


async def test_sanctions_per_kind_and_scope(store: Store) -> None:
    room_id = await new_room(store)
    other_room = await new_room(store, "other")
    ban = Sanction(BOB, "spam", "alice", 1_900_000_000_000)
    mute = Sanction(BOB, "shouting", "", None)
    await store.impose("ban", room_id, ban)
    await store.impose("mute", other_room, mute)
    assert await store.sanction("ban", room_id, "bob") == ban
    assert await store.sanction("mute", room_id, "bob") is None
    assert await store.sanction("ban", other_room, "bob") is None
    assert await store.sanction("mute", other_room, "bob") == mute
    assert await store.sanction("ban", None, "bob") is None
    global_ban = Sanction(CAROL, "", "root", None)
    await store.impose("ban", None, global_ban)
    assert await store.sanctions("ban", None) == [global_ban]
    # Banning again replaces.
    longer = Sanction(BOB, "spam again", "alice", 1_990_000_000_000)
    await store.impose("ban", room_id, longer)
    await store.impose("ban", room_id, Sanction(ALICE, "", "", None))
    assert await store.sanctions("ban", room_id) == [Sanction(ALICE, "", "", None), longer]
    assert await store.lift("ban", room_id, "bob")
    assert not await store.lift("ban", room_id, "bob")
    assert await store.sanction("ban", room_id, "bob") is None
    with pytest.raises(ValueError):
        await store.impose("mute", None, mute)
    with pytest.raises(ValueError):
        await store.sanction("jail", room_id, "bob")


async def test_sanctions_of_an_unknown_or_removed_room(store: Store) -> None:
    await store.impose("ban", "ghost", Sanction(BOB, "", "", None))
    assert await store.sanction("ban", "ghost", "bob") is None
    room_id = await new_room(store)
    await store.impose("mute", room_id, Sanction(BOB, "", "", None))
    await store.set_role(room_id, BOB, "moderator")
    await store.set_rules(room_id, {"send": "[]"})
    await store.remove_room(room_id, "room:" + room_id)
    assert await store.sanctions("mute", room_id) == []


async def test_remove_from_room_takes_every_session_of_the_user(store: Store) -> None:
    room_id = await new_room(store)
    assert await joined(store, room_id, "b1", BOB)
    assert not await joined(store, room_id, "b2", BOB)
    assert await joined(store, room_id, "a1", ALICE)
    assert await store.remove_from_room(room_id, "bob") == ["b1", "b2"]
    assert await store.room_members(room_id) == [ALICE]
    assert await store.remove_from_room(room_id, "bob") == []
    # The sessions are not in the room any more: dropping them leaves nothing to announce.
    assert await store.drop_session("b1") == []
    presence = await store.user_presence("bob")
    assert presence is not None and presence.rooms == []
    # And the user may join again.
    assert await store.join_room(room_id, "b2")


async def test_revise_replaces_an_entry_and_appends_one(harness: Harness) -> None:
    store = harness.store
    inbox = await harness.listen("room:x")
    for i in range(3):
        await store.append("room:x", text_tail(f"m{i}"))
    [old] = await store.history("room:x", before=3, since=1, limit=1)
    new = old.replace('"m1"', '"(deleted)"')
    fanout = Fanout("room:x", "<", ">")
    seq = await store.revise("room:x", 2, old, new, ',"text":"tomb"}', [fanout])
    assert seq == 4
    entries = await store.history("room:x", before=None, since=None, limit=10)
    assert [json.loads(e)["text"] for e in entries] == ["m0", "(deleted)", "m2", "tomb"]
    assert [seq_of(e) for e in entries] == [1, 2, 3, 4]
    published = await inbox.take(4)
    assert published[-1] == "<" + entries[-1] + ">"
    # A second revision of the same old text finds it changed: nothing happens.
    assert await store.revise("room:x", 2, old, new, ',"text":"again"}') is None
    assert await store.revise("room:x", 99, old, new, ',"text":"again"}') is None
    assert len(await store.history("room:x", before=None, since=None, limit=10)) == 4


async def test_a_users_name_in_a_sanction(store: Store) -> None:
    room_id = await new_room(store)
    await store.impose("ban", room_id, Sanction(Member("dave", "Dave D"), "r", "x", 5))
    found = await store.sanction("ban", room_id, "dave")
    assert found is not None and found.user == Member("dave", "Dave D")


async def test_send_check_reads_the_send_rule_and_the_mute(store: Store) -> None:
    room_id = await new_room(store)
    assert await store.send_check(room_id, "bob") == SendCheck(None, None)
    mute = Sanction(BOB, "loud", "alice", None)
    await store.impose("mute", room_id, mute)
    await store.set_rules(room_id, {"send": '[{"a":"1"}]', "join": '[{"b":"2"}]'})
    assert await store.send_check(room_id, "bob") == SendCheck('[{"a":"1"}]', mute)
    assert await store.send_check(room_id, "carol") == SendCheck('[{"a":"1"}]', None)
    assert await store.send_check("ghost", "bob") == SendCheck(None, None)
