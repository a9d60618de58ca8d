"""Several nodes on one Redis Cluster: cross-node fan-out, sharded pub/sub, a failover.

Real nodes (``server.lifecycle.serve`` in-process), the python-socketio client, and the
throwaway 3-master + 3-replica cluster of ``tests/redis_cluster_fixture.py``. The failover
test kills the master that owns a busy room's slot: a replica takes over, the nodes find
the room's channel on the new master and read back from the log what they missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis

from server.redis_clients import parse_cluster_nodes
from server.settings import Settings, parse_settings
from storage.keys import KeySchema
from tests.node_fixtures import ChatClient, RunningNode, start_node
from tests.redis_cluster_fixture import RedisClusterProcesses

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0


@pytest_asyncio.fixture
async def two_nodes(
    redis_cluster: RedisClusterProcesses, key_prefix: str, redis_cluster_client: object
) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    """Two nodes on the cluster, under the test's key prefix (deleted afterwards)."""
    common = {
        "host": "127.0.0.1",
        "port": 0,
        "redis_cluster_nodes": redis_cluster.nodes,
        "redis_prefix": key_prefix,
        # The failover test sends as fast as acks come back.
        "max_events_per_second": 10_000.0,
        "max_event_burst": 10_000,
    }
    async with (
        start_node(Settings(node_id="cluster-a", **common)) as a,
        start_node(Settings(node_id="cluster-b", **common)) as b,
    ):
        yield a, b


def room_seqs(client: ChatClient, room_id: str) -> list[int]:
    return [m["seq"] for m in client.events("message") if m["target"]["id"] == room_id]


async def wait_until(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


async def test_rooms_fan_out_across_nodes_once_and_in_order(
    two_nodes: tuple[RunningNode, RunningNode],
) -> None:
    a, b = two_nodes
    alice = await a.client(user="alice")
    bob = await b.client(user="bob")
    rooms = [await alice.create(f"room {i}") for i in range(6)]  # spread over the shards
    for room in rooms:
        for client in (alice, bob):
            assert (await client.join(room))["status_code"] == 200

    async def burst(sender: ChatClient, room: str) -> None:
        for i in range(10):
            assert (await sender.say(room, f"{sender.user} {i}"))["status_code"] == 200

    await asyncio.gather(*(burst(s, r) for r in rooms for s in (alice, bob)))
    for client in (alice, bob):
        for room in rooms:
            await wait_until(lambda: len(room_seqs(client, room)) >= 20, "20 messages")  # noqa: B023
    await bob.settle()
    await alice.settle()
    for client in (alice, bob):
        for room in rooms:
            assert room_seqs(client, room) == list(range(1, 21))


async def test_users_and_direct_messages_across_nodes(
    two_nodes: tuple[RunningNode, RunningNode],
) -> None:
    a, b = two_nodes
    alice = await a.client(user="alice")
    bob = await b.client(user="bob")
    bob_tab = await a.client(user="bob")
    room = await alice.create("lobby")
    for client in (alice, bob, bob_tab):
        await client.join(room)
    members = await alice.call("users_in_room", {"verb": "list", "target": {"id": room}})
    ids = [u["id"] for u in members["data"]["object"]["attachments"]]
    assert ids == ["alice", "bob"]
    for i in range(5):
        assert (await alice.tell("bob", f"hi {i}"))["status_code"] == 200
    for client in (bob, bob_tab):
        await wait_until(lambda: len(client.events("message")) >= 5, "5 direct messages")  # noqa: B023
        assert [m["object"]["content"] for m in client.events("message")] == [
            f"hi {i}" for i in range(5)
        ]
    await bob_tab.disconnect()
    await bob.disconnect()
    left = await alice.wait_for("gn_user_left")
    assert left[0]["actor"]["id"] == "bob"


async def test_a_room_channel_lives_only_on_its_shard(
    redis_cluster: RedisClusterProcesses,
    two_nodes: tuple[RunningNode, RunningNode],
    key_prefix: str,
) -> None:
    """Sharded pub/sub: a room's channel is subscribed on its own master, nowhere else,
    and only by the nodes that have members in the room."""
    a, _ = two_nodes
    alice = await a.client(user="alice")
    room = await alice.create("only on a")
    await alice.join(room)
    channel = KeySchema(key_prefix).channel("room:" + room)
    owner = redis_cluster.master_of(channel)
    for port in redis_cluster.ports:
        client = redis.Redis(port=port, decode_responses=True)
        subscribed = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        expected = 1 if port == owner else 0  # node a only: b has no member there
        assert subscribed == [channel, expected], f"port {port}"
        client.close()


async def test_a_master_failover_loses_and_repeats_no_acknowledged_message(
    redis_cluster: RedisClusterProcesses,
    two_nodes: tuple[RunningNode, RunningNode],
    key_prefix: str,
) -> None:
    a, b = two_nodes
    sender = await a.client(user="sender")
    members = [await a.client(user="m1"), await b.client(user="m2")]
    room = await sender.create("busy")
    for client in (sender, *members):
        assert (await client.join(room))["status_code"] == 200
    master = redis_cluster.master_of(KeySchema(key_prefix).log("room:" + room))
    acked: list[int] = []
    killed = asyncio.Event()

    async def send_all() -> None:
        i = 0
        while len(acked) < 150:
            reply = await sender.say(room, f"m {i}")
            i += 1
            if reply["status_code"] == 200:
                acked.append(reply["data"]["seq"])
            else:  # the shard is changing hands: 500, storage unavailable; retry
                assert reply["status_code"] == 500, reply
                await asyncio.sleep(0.05)
            if len(acked) == 50 and not killed.is_set():
                redis_cluster.kill(master)
                killed.set()

    await asyncio.wait_for(send_all(), 120)
    assert killed.is_set()
    assert redis_cluster.master_of(KeySchema(key_prefix).log("room:" + room)) != master
    # Every acknowledged message reaches every member once, in seq order.
    for client in members:
        await wait_until(
            lambda: set(acked) <= set(room_seqs(client, room)),  # noqa: B023
            f"every acknowledged message on {client.user}",
        )
        got = room_seqs(client, room)
        assert got == sorted(set(got)), f"{client.user}: duplicates or out of order"
    # The killed master comes back as a replica of the one that took over.
    redis_cluster.start(master)
    redis_cluster.wait_healthy()


async def test_a_resharded_room_keeps_its_order(
    redis_cluster: RedisClusterProcesses,
    two_nodes: tuple[RunningNode, RunningNode],
    key_prefix: str,
) -> None:
    """Moving a room's slot to another master (resharding) unsubscribes the nodes from
    its channel; they subscribe on the new master and carry on, nothing lost or repeated."""
    a, b = two_nodes
    sender = await a.client(user="sender")
    members = [await a.client(user="m1"), await b.client(user="m2")]
    room = await sender.create("moving")
    for client in (sender, *members):
        assert (await client.join(room))["status_code"] == 200
    keys = KeySchema(key_prefix)

    async def send(count: int) -> None:
        for i in range(count):
            reply = await sender.say(room, f"m {i}")
            assert reply["status_code"] == 200, reply

    await send(20)
    source = redis_cluster.master_of(keys.log("room:" + room))
    target = next(port for port in redis_cluster.masters() if port != source)
    redis_cluster.move_slot_of(keys.log("room:" + room), target)
    assert redis_cluster.master_of(keys.channel("room:" + room)) == target
    await send(20)
    for client in members:
        await wait_until(lambda: len(room_seqs(client, room)) >= 40, "40 messages")  # noqa: B023
        await client.settle()
        assert room_seqs(client, room) == list(range(1, 41)), client.user


def test_run_py_serves_on_a_redis_cluster(
    redis_cluster: RedisClusterProcesses, key_prefix: str
) -> None:
    """The command line: --redis-cluster-nodes; /health names the backend."""
    args = [sys.executable, "run.py", "--host", "127.0.0.1", "--port", "0"]
    args += ["--redis-cluster-nodes", redis_cluster.nodes, "--redis-prefix", key_prefix]
    process = subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "listening on" in line:
                assert "redis-cluster backend" in line
                break
        else:
            pytest.fail("run.py exited before listening")
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        if process.poll() is None:
            process.kill()
            process.wait()


# -- settings ---------------------------------------------------------------------------


def test_cluster_settings_and_their_errors(capsys: pytest.CaptureFixture[str]) -> None:
    flags = parse_settings(["--redis-cluster-nodes", "10.0.0.1:7000, 10.0.0.2:7001"], {})
    assert flags.backend == "redis-cluster"
    env = parse_settings([], {"DINO_REDIS_CLUSTER_NODES": "10.0.0.1:7000"})
    assert (env.backend, env.redis_cluster_nodes) == ("redis-cluster", "10.0.0.1:7000")
    url = parse_settings([], {"DINO_REDIS_URL": "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"})
    assert url.backend == "redis-cluster"
    assert parse_cluster_nodes("redis+cluster://h1:7000,h2:7001/") == [("h1", 7000), ("h2", 7001)]
    bad = [
        (["--redis-cluster-nodes", "h1"], "expected host:port"),
        (["--redis-cluster-nodes", "h1:99999"], "expected host:port"),
        (["--redis-url", "redis+cluster://h1:x"], "expected host:port"),
        (["--redis-url", "redis://h", "--redis-cluster-nodes", "h:1"], "not both"),
        (["--redis-prefix", "a{b}:"], "must not contain"),
    ]
    for argv, message in bad:
        with pytest.raises(SystemExit):
            parse_settings(argv, {})
        assert message in capsys.readouterr().err
