"""A real cluster, end to end: Redis, three dino nodes, and nginx running nginx.conf.example.

Clients connect through nginx only; which node serves a client is decided by nginx's
hash of the client address, so clients leave from different loopback addresses
(127.0.0.2, ...) and ``Cluster.routes`` asks nginx (GET /health from that address) where
each one goes. Every client sends an ``Origin`` naming nginx's host:port, so a config
that loses the port in the Host header fails every connection here, as in a browser.

The tests share one cluster (module scope) and each starts by restarting whatever an
earlier one killed. Leases are short (``--lease-ttl 4 --heartbeat-interval 1``);
``DINO_TEST_LEASE_TTL=8 DINO_TEST_HEARTBEAT_INTERVAL=2`` runs them with the defaults.
Run with ``-s`` to see the measured times.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import socketio.exceptions

from tests.cluster_fixtures import (
    NGINX_EXAMPLE,
    ChatClient,
    Cluster,
    render_nginx_example,
    wait_until,
)

LEASE_TTL = float(os.environ.get("DINO_TEST_LEASE_TTL", "4"))
HEARTBEAT_INTERVAL = float(os.environ.get("DINO_TEST_HEARTBEAT_INTERVAL", "1"))
LEAVE_BOUND = 15.0  # seconds from kill -9 to gn_user_left on the survivors

Connect = Callable[..., Awaitable[ChatClient]]


@pytest.fixture(scope="module")
def cluster() -> Any:
    c = Cluster(3, lease_ttl=LEASE_TTL, heartbeat_interval=HEARTBEAT_INTERVAL)
    try:
        c.start()
        yield c
    finally:
        c.close()


@pytest.fixture
def live(cluster: Cluster) -> Cluster:
    """The cluster with every process up (an earlier test may have killed one)."""
    cluster.ensure_up()
    return cluster


@pytest_asyncio.fixture
async def connect(live: Cluster) -> AsyncIterator[Connect]:
    """``await connect(user, source_ip, ...)``: a logged-in client through nginx."""
    made: list[ChatClient] = []

    async def make(user: str, source_ip: str, *, transports: tuple[str, ...] = ("websocket",),
                   reconnection: bool = True) -> ChatClient:
        client = ChatClient(user, source_ip, transports=transports, reconnection=reconnection)
        made.append(client)
        await client.connect(live.url, origin=live.url)
        await client.login()
        return client

    yield make
    await asyncio.gather(*(client.close() for client in made))


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in messages]


def received(client: ChatClient, room: str, seq: int) -> Callable[[], bool]:
    return lambda: seq in seqs(client.room_messages(room))


async def wait_for_sessions(cluster: Cluster, expected: dict[str, int], timeout: float = 5.0
                            ) -> None:
    """Until every node's /health counts the expected number of sessions."""

    def counts() -> dict[str, int]:
        return {name: node.health()["sessions"] for name, node in cluster.nodes.items()
                if node.alive}

    try:
        await wait_until(lambda: counts() == expected, timeout, f"sessions {expected}")
    except AssertionError:
        raise AssertionError(f"sessions per node {counts()}, expected {expected}") from None


# -- the example itself ---------------------------------------------------------------------


def _directive(text: str, name: str) -> list[str]:
    """Arguments of every uncommented ``name`` directive in ``text``."""
    return [m.group(1).strip() for m in re.finditer(rf"^\s*{name}\s+([^;{{}}]*);", text, re.M)]


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def test_example_is_correct_for_websockets_and_polling() -> None:
    example = NGINX_EXAMPLE.read_text()
    rendered = render_nginx_example(example, ["127.0.0.1:1", "127.0.0.1:2"], "127.0.0.1:3")
    # Only the server and listen lines change: the test runs the example, not a copy.
    changed = set(rendered.splitlines()) ^ set(example.splitlines())
    assert all(re.match(r"\s*(server|listen)\s", line) for line in changed), changed
    assert _directive(rendered, "listen") == ["127.0.0.1:3"]

    assert _directive(example, "hash") == ["$remote_addr consistent"]
    assert _directive(example, "ip_hash") == [], "ip_hash groups a whole /24 on one node"
    assert "# ip_hash;" in example  # kept as the documented alternative
    servers = _directive(example, "server")
    assert servers and all("max_fails=" in s and "fail_timeout=" in s for s in servers)

    assert re.search(r"^map \$http_upgrade \$connection_upgrade \{\s*default\s+upgrade;"
                     r"\s*''\s+close;\s*\}", example, re.M)
    headers = dict(h.split(None, 1) for h in _directive(example, "proxy_set_header"))
    assert headers["Connection"] == "$connection_upgrade"
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Host"] == "$http_host", "$host drops the port; the origin check needs it"
    assert {"X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto"} <= headers.keys()
    assert _directive(example, "proxy_http_version") == ["1.1"]
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        (value,) = _directive(example, timeout)
        assert _seconds(value) >= 2 * (25 + 20), f"{timeout} {value}: socket.io ping 25 s + 20 s"
    assert _directive(example, "proxy_buffering") == ["off"]
    (next_upstream,) = _directive(example, "proxy_next_upstream")
    assert {"error", "timeout", "http_502", "http_503"} <= set(next_upstream.split())


# -- routing through nginx ------------------------------------------------------------------


async def test_websocket_and_polling_clients_stick_to_their_node(live: Cluster,
                                                                 connect: Connect) -> None:
    await wait_for_sessions(live, {name: 0 for name in live.nodes})
    by_node = await live.addresses_by_node(per_node=2)
    clients: list[ChatClient] = []
    for name in live.nodes:
        ws_ip, poll_ip = by_node[name]
        clients.append(await connect(f"ws-{name}", ws_ip))
        clients.append(await connect(f"poll-{name}", poll_ip, transports=("polling",)))
    assert [c.transport for c in clients] == ["websocket", "polling"] * 3
    # Each node holds exactly the two clients nginx was expected to send it.
    await wait_for_sessions(live, {name: 2 for name in live.nodes})

    room = await clients[0].create_room("sticky")
    for client in clients:
        await client.join(room)
    for client in clients:  # each polling client's POSTs and GETs must reach one node
        assert (await client.send(room, f"from {client.user}"))["status_code"] == 200
    await wait_until(lambda: all(len(c.room_messages(room)) == 6 for c in clients), 5,
                     "every client to receive all 6 messages")
    for client in clients:
        got = client.room_messages(room)
        assert seqs(got) == [1, 2, 3, 4, 5, 6], client.user
        assert [m["object"]["content"] for m in got] == [f"from {c.user}" for c in clients]
    # Long-polling survived many request/response rounds on its node.
    await wait_for_sessions(live, {name: 2 for name in live.nodes})


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_foreign_origin_is_refused_promptly(live: Cluster, transport: str) -> None:
    """A page on another origin is refused (the same check that needs Host with its port)."""
    client = ChatClient("mallory", "127.0.0.2", transports=(transport,), reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await asyncio.wait_for(client.connect(live.url, origin="http://evil.example"), 3)
    finally:
        await client.close()


async def test_messages_reach_every_node_once_and_in_order(live: Cluster,
                                                           connect: Connect) -> None:
    by_node = await live.addresses_by_node()
    a, b, c = (by_node[name][0] for name in ("nodeA", "nodeB", "nodeC"))
    alice = await connect("alice", a)
    bob = await connect("bob", b)
    carol = await connect("carol", c, transports=("polling",))
    room = await alice.create_room("fanout")
    for client in (alice, bob, carol):
        await client.join(room)

    async def burst(sender: ChatClient, count: int) -> list[int]:
        replies = [await sender.send(room, f"{sender.user} {i}") for i in range(count)]
        assert all(r["status_code"] == 200 for r in replies), replies
        return [r["data"]["seq"] for r in replies]

    # Two senders on two nodes at once: one log, one order, whichever node appended.
    sent_a, sent_b = await asyncio.gather(burst(alice, 25), burst(bob, 25))
    assert sorted(sent_a + sent_b) == list(range(1, 51))
    clients = (alice, bob, carol)
    await wait_until(lambda: all(len(x.room_messages(room)) >= 50 for x in clients), 10,
                     "50 messages on every client")
    await asyncio.sleep(0.2)  # a duplicate would arrive now
    for client in clients:
        got = client.room_messages(room)
        assert seqs(got) == list(range(1, 51)), f"{client.user}: {seqs(got)}"
        for sender in ("alice", "bob"):
            mine = [m["object"]["content"] for m in got if m["actor"]["id"] == sender]
            assert mine == [f"{sender} {i}" for i in range(25)]


async def test_users_in_room_agrees_on_every_node(live: Cluster, connect: Connect) -> None:
    by_node = await live.addresses_by_node()
    users = {"ann": "nodeA", "ben": "nodeB", "cid": "nodeC", "dot": "nodeA", "eve": "nodeC"}
    clients = {user: await connect(user, by_node[node][0]) for user, node in users.items()}
    room = await clients["ann"].create_room("presence")
    for client in clients.values():
        await client.join(room)

    async def views() -> dict[str, list[str]]:
        return {user: await client.users_in_room(room) for user, client in clients.items()
                if client.connected}

    assert set(map(tuple, (await views()).values())) == {tuple(sorted(users))}
    await clients["dot"].ok("leave", {"verb": "leave", "target": {"id": room}})
    await clients["eve"].close()  # disconnecting leaves every room
    expected = ["ann", "ben", "cid"]
    await wait_until(lambda: all(len(c.left(room, "eve")) == 1 for u, c in clients.items()
                                 if u in expected), 5, "gn_user_left for eve")
    seen = await views()
    assert all(v == expected for v in seen.values()), seen
    rooms = await clients["ben"].ok("list_rooms", {"verb": "list"})
    counts = {r["content"]: r["summary"] for r in rooms["object"]["attachments"]}
    assert counts["presence"] == 3


# -- Redis goes away under load -------------------------------------------------------------


async def test_redis_restart_under_load(live: Cluster, connect: Connect) -> None:
    by_node = await live.addresses_by_node()
    senders = [await connect("s1", by_node["nodeA"][0]), await connect("s2", by_node["nodeB"][0])]
    reader = await connect("reader", by_node["nodeC"][0])
    room = await senders[0].create_room("outage")
    for client in (*senders, reader):
        await client.join(room)

    replies: list[tuple[float, str, dict[str, Any]]] = []  # (time, content, reply)
    no_reply: list[str] = []
    stop = asyncio.Event()

    async def load(sender: ChatClient) -> None:
        for i in range(3000):  # bounded; normally ended by `stop` after a few seconds
            if stop.is_set():
                return
            content = f"{sender.user} {i}"
            try:
                reply = await sender.send(room, content, timeout=20)
            except socketio.exceptions.TimeoutError:
                no_reply.append(content)
                continue
            replies.append((time.monotonic(), content, reply))
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(load(s)) for s in senders]
    try:
        await asyncio.sleep(0.5)
        killed = time.monotonic()
        live.redis.kill()
        await asyncio.sleep(1.0)
        live.redis.start()  # same port, same directory: the AOF is replayed
        restarted = time.monotonic()

        def ok_since(t: float, user: str) -> int:
            return sum(1 for when, content, r in replies
                       if when > t and content.startswith(user) and r["status_code"] == 200)

        took = await wait_until(lambda: all(ok_since(restarted, s.user) >= 5 for s in senders),
                                20, "sends to succeed again after the restart")
        print(f"\n[redis restart] sends succeed again {took:.2f}s after redis-server was back")
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    assert all(node.alive for node in live.nodes.values()), live.logs()
    assert no_reply == [], f"requests without any reply: {no_reply[:5]}"
    statuses = [r["status_code"] for _, _, r in replies]
    assert set(statuses) <= {200, 500}, statuses
    failed = [r for when, _, r in replies if r["status_code"] == 500]
    assert failed, "no request failed while Redis was down: the outage was not exercised"
    late = [when - restarted for when, _, r in replies
            if r["status_code"] == 500 and not killed < when < restarted + 5]
    assert not late, f"500s outside the outage (s after the restart): {late}"
    assert all(isinstance(r["data"], str) and r["data"] and "Traceback" not in r["data"]
               for r in failed), failed
    print(f"[redis restart] {statuses.count(200)} sends acknowledged, {len(failed)} got 500 "
          f"({failed[0]['data']!r}); outage {restarted - killed:.2f}s")

    # Cross-node delivery works again: the reader's node resubscribed by itself.
    probe_started = time.monotonic()
    delivered_after = 0.0
    for i in range(40):
        reply = await senders[0].send(room, f"probe {i}")
        if reply["status_code"] == 200:
            try:
                await wait_until(received(reader, room, reply["data"]["seq"]), 0.5, "probe")
                delivered_after = time.monotonic() - probe_started
                break
            except AssertionError:
                continue
    else:
        pytest.fail(f"no message from nodeA reached nodeC after Redis came back:\n{live.logs()}")
    back_at = min((t for t, _ in reader.messages if t > restarted), default=restarted)
    print(f"[redis restart] first cross-node delivery {back_at - restarted:.2f}s after the "
          f"restart; probe delivered {delivered_after:.2f}s after the load ended")
    mark = len(reader.room_messages(room))
    for i in range(10):
        assert (await senders[1].send(room, f"after {i}"))["status_code"] == 200
    await wait_until(lambda: len(reader.room_messages(room)) >= mark + 10, 5,
                     "10 messages after recovery")
    got = seqs(reader.room_messages(room))
    assert got == sorted(set(got)), "live messages repeated or out of order"

    await wait_until(lambda: not any(n.health()["redis_down"] for n in live.nodes.values()),
                     10, "every node to report Redis reachable")
    # Nothing acknowledged was lost: AOF with fsync always, replayed on restart.
    history: list[dict[str, Any]] = []
    while True:
        page = await reader.history(room, since=history[-1]["seq"] if history else 0)
        if not page:
            break
        history += page
    stored = {entry["id"] for entry in history}
    acked = [r["data"]["id"] for _, _, r in replies if r["status_code"] == 200]
    missing = [i for i in acked if i not in stored]
    assert not missing, f"{len(missing)} acknowledged messages are not in history"
    assert seqs(history) == list(range(1, len(history) + 1))


# -- nodes die --------------------------------------------------------------------------------


async def test_restarted_node_leaves_no_ghosts(live: Cluster, connect: Connect) -> None:
    by_node = await live.addresses_by_node()
    watcher = await connect("watcher", by_node["nodeA"][0])
    ghosts = [await connect(f"ghost{i}", by_node["nodeB"][0], reconnection=False)
              for i in range(2)]
    room = await watcher.create_room("ghosts")
    for client in (watcher, *ghosts):
        await client.join(room)
    assert await watcher.users_in_room(room) == ["ghost0", "ghost1", "watcher"]

    node_b = live.nodes["nodeB"]
    killed = time.monotonic()
    node_b.kill()
    node_b.start()  # same --node-id; serving once /health answers
    restarted = time.monotonic() - killed
    assert restarted < LEASE_TTL - HEARTBEAT_INTERVAL, (
        f"the restart took {restarted:.1f}s: the survivors may have purged nodeB first")
    # Right after the restart: the previous incarnation's users are gone everywhere.
    assert await watcher.users_in_room(room) == ["watcher"]
    await wait_until(lambda: all(len(watcher.left(room, g.user)) == 1 for g in ghosts), 2,
                     "gn_user_left for the ghosts")
    newest_start = node_b.log_text().rsplit("==== start", 1)[-1]
    assert "dropped 2 sessions of node nodeB" in newest_start, node_b.log_tail()
    print(f"\n[restart] nodeB back in {restarted:.2f}s, no ghosts")


async def test_node_back_from_a_pause_longer_than_its_lease_repairs_presence(
        live: Cluster, connect: Connect) -> None:
    by_node = await live.addresses_by_node()
    anna = await connect("anna", by_node["nodeA"][0])
    cleo = await connect("cleo", by_node["nodeC"][0])
    room = await anna.create_room("paused")
    for client in (anna, cleo):
        await client.join(room)
    node_c = live.nodes["nodeC"]
    node_c.pause()
    try:
        # The survivors cannot tell a pause from a death: they purge nodeC (correctly).
        await wait_until(lambda: bool(anna.left(room, "cleo")), LEAVE_BOUND,
                         "gn_user_left for the paused node's user")
    finally:
        node_c.resume()
    # nodeC is back and cleo's connection never broke (socket.io pings every 25 s). Either
    # nodeC puts its users back, or it drops their connections so that they log in again.
    deadline = time.monotonic() + 3 * HEARTBEAT_INTERVAL + 2
    while time.monotonic() < deadline:
        if not cleo.connected:
            return
        if await anna.users_in_room(room) == ["anna", "cleo"]:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"cleo is connected to nodeC but absent: {await anna.users_in_room(room)}")


async def test_killed_node_users_leave_and_clients_fail_over(live: Cluster,
                                                             connect: Connect) -> None:
    by_node = await live.addresses_by_node()
    anna = await connect("anna", by_node["nodeA"][0])
    carl = await connect("carl", by_node["nodeC"][0], transports=("polling",))
    gone = await connect("gone", by_node["nodeB"][0], reconnection=False)
    back = await connect("back", by_node["nodeB"][0])
    room = await anna.create_room("failover")
    for client in (anna, carl, gone, back):
        await client.join(room)
    for i in range(3):
        assert (await anna.send(room, f"before {i}"))["status_code"] == 200
    await wait_until(lambda: len(back.room_messages(room)) == 3, 5, "back to read 3 messages")
    last_seen = back.room_messages(room)[-1]["seq"]

    killed = time.monotonic()
    live.nodes["nodeB"].kill()
    missed = [await anna.send(room, f"missed {i}") for i in range(5)]
    assert all(r["status_code"] == 200 for r in missed)

    # The survivors see nodeB's users leave once its lease runs out.
    await wait_until(lambda: bool(anna.left(room, "gone") and carl.left(room, "gone")), LEAVE_BOUND,
                     "gn_user_left for the users of the killed node")
    leave_times = [c.left(room, "gone")[0] - killed for c in (anna, carl)]
    print(f"\n[kill -9] gn_user_left on survivors after {max(leave_times):.2f}s "
          f"(lease ttl {LEASE_TTL:g}s, heartbeat {HEARTBEAT_INTERVAL:g}s)")
    assert max(leave_times) < LEAVE_BOUND

    # `back` reconnected by itself, through nginx, to a surviving node.
    await wait_until(lambda: back.connected, LEAVE_BOUND, "back to reconnect")
    (new_node,) = (await live.routes([back.source_ip])).values()
    assert new_node != "nodeB"
    await back.login()
    await back.join(room)
    caught_up = await back.history(room, since=last_seen)
    assert [e["content"] for e in caught_up] == [f"missed {i}" for i in range(5)]
    assert seqs(caught_up) == list(range(last_seen + 1, last_seen + 6))
    print(f"[kill -9] back reconnected to {new_node} and read {len(caught_up)} missed messages")

    async def agree() -> bool:
        views = [await c.users_in_room(room) for c in (anna, carl, back)]
        return all(v == ["anna", "back", "carl"] for v in views)

    deadline = time.monotonic() + 5
    while not await agree():
        assert time.monotonic() < deadline, "users_in_room never agreed after the failover"
        await asyncio.sleep(0.1)
    mark = len(back.room_messages(room))
    assert (await carl.send(room, "welcome back"))["status_code"] == 200
    await wait_until(lambda: len(back.room_messages(room)) > mark, 5, "a live message")
    assert not gone.connected
