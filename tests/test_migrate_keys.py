"""``python -m storage.migrate_keys``: a Redis written by dino 0.1 serves the new layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis.asyncio

from storage.base import Member, RoomSummary
from storage.keys import KeySchema
from storage.redis_store import RedisStore

REPO = Path(__file__).resolve().parent.parent


async def test_old_rooms_and_logs_move_and_presence_goes(
    redis_client: redis.asyncio.Redis, redis_url: str, key_prefix: str
) -> None:
    p = key_prefix
    # What dino 0.1 left behind: one room with history, a conversation, stale presence.
    await redis_client.hset(p + "rooms", "r:1", "lobby")
    await redis_client.hset(p + "room_names", "lobby", "r:1")
    await redis_client.hset(p + "room:r:1:info", mapping={"name": "lobby", "created": "1"})
    await redis_client.hset(p + "room:r:1:owners", "alice", "Alice")
    await redis_client.hset(p + "room:r:1:acl", "age", "18:")
    await redis_client.hset(p + "room:r:1:users", "bob", "Bob")
    await redis_client.hset(p + "session:s1:info", mapping={"uid": "bob", "node": "n1"})
    await redis_client.zadd(p + "nodes", {"n1": 1})
    for log in ("room:r:1", "dm:1:a:b"):
        for seq in (1, 2):
            await redis_client.zadd(p + f"log:{log}:entries", {json.dumps({"seq": seq}): seq})
        await redis_client.set(p + f"log:{log}:seq", 2)
    await redis_client.set(p + "log:room:r:1:dedupe:" + "0" * 64, '{"seq":2}')
    await redis_client.set(p + "unrelated", "x")

    command = [sys.executable, "-m", "storage.migrate_keys", "--redis-url", redis_url]
    done = subprocess.run(
        [*command, "--redis-prefix", p], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "moved 10 keys, deleted 3" in done.stdout

    store = RedisStore(redis_client, KeySchema(p), history_size=10)
    room = await store.get_room("r:1")
    assert room is not None and (room.name, dict(room.owners), dict(room.acl)) == (
        "lobby",
        {"alice": "Alice"},
        {"age": "18:"},
    )
    assert await store.list_rooms() == [RoomSummary("r:1", "lobby", 0)]  # no ghost
    for log in ("room:r:1", "dm:1:a:b"):
        assert await store.append(log, "}") == 3  # the seq carries on
    assert await redis_client.exists(KeySchema(p).log_dedupe("room:r:1", "0" * 64))
    await store.register_session("s2", Member("carol", "Carol"), "n2")
    assert await store.join_room("r:1", "s2") is True

    again = subprocess.run(
        [*command, "--redis-prefix", p], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "moved 0 keys, deleted 0" in again.stdout  # a second run finds nothing
    assert await redis_client.get(p + "unrelated") == "x"
