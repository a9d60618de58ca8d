"""The chaos run: does any client lose, repeat or reorder a message while nodes and
Redis die under it?

Starts redis-server (AOF, ``appendfsync always``), three dino nodes and nginx in front
(``tests/cluster_fixtures.py``), connects ``--clients`` socket.io clients through nginx
(websocket, from 80 loopback source addresses, so nginx spreads them over the nodes),
each in two of ``--rooms`` rooms and in a direct conversation with the next client.
Every client sends a message every ``--interval`` seconds on average (two in three to a
room, one to its direct partner), each with a client id (``object.id``) and retried with
the same id until acknowledged. During ``--duration`` seconds one node is killed with
SIGKILL (and started again), then redis-server is killed with SIGKILL and started again,
then another node is killed (and started again). Clients reconnect by themselves
(socket.io) and log in with every log they show (``resume`` inside ``login``).

After the senders stop and deliveries settle, every client's view of every log it takes
part in is compared with the log in Redis: *lost* (in the log, never received and not
inside a reported ``gn_gap``), *duplicated* (received twice), *reordered* (received
after a newer one of the same log), *gaps* (reported by the server), *resets*, and
acknowledged sends missing from the log. Exits 1 if anything was lost, duplicated or
reordered without being reported, 0 otherwise.

    python benchmarks/chaos.py [--clients 300] [--rooms 30] [--duration 60] [--interval 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis
import socketio
import ujson

from core.names import conversation_log, room_log
from storage.keys import KeySchema
from storage.redis_store import RedisStore
from tests.cluster_fixtures import (
    NAMESPACE,
    SOURCE_ADDRESSES,
    Cluster,
    bound_session_factory,
)

LogKey = tuple[str, str]  # ("room", room id) or ("user", the other user's id)


@dataclass
class LogView:
    """What one client received of one log."""

    epoch: str | None = None  # the epoch it shows now
    seen: set[tuple[str, int]] = field(default_factory=set)  # (epoch, seq)
    newest: dict[str, int] = field(default_factory=dict)  # epoch -> newest seq received
    duplicated: int = 0
    reordered: int = 0
    gaps: list[tuple[str | None, int, int]] = field(default_factory=list)  # reported
    resets: int = 0

    @property
    def last(self) -> int:
        return self.newest.get(self.epoch or "", 0)

    def receive(self, epoch: str, seq: int) -> None:
        if self.epoch is None:
            self.epoch = epoch
        if (epoch, seq) in self.seen:
            self.duplicated += 1
            return
        if seq < self.newest.get(epoch, 0):
            self.reordered += 1
        self.seen.add((epoch, seq))
        self.newest[epoch] = max(seq, self.newest.get(epoch, 0))


@dataclass
class Sent:
    key: LogKey
    client_id: str
    epoch: str
    seq: int
    message_id: str


class ChaosClient:
    def __init__(
        self, user: str, source_ip: str, url: str, rooms: list[str], dm_from: str, dm_to: str
    ) -> None:
        self.user = user
        self.url = url
        self.dm_to = dm_to
        self.rooms = rooms
        self.views: dict[LogKey, LogView] = {("room", r): LogView() for r in rooms}
        self.views[("user", dm_from)] = LogView()
        self.sent: list[Sent] = []
        self.retries = 0
        self.connects = 0
        self.outcomes: dict[str, int] = {}
        self.replayed = 0
        self.ready = asyncio.Event()
        self.last_arrival = time.monotonic()
        self.lost_at: float | None = None  # when the connection last dropped
        self.connected_at: float | None = None  # when the namespace last connected
        self.ready_at: float | None = None  # when the last login (with resume) answered 200
        self._sending = 0
        self._login_task: asyncio.Task[None] | None = None
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=0.3,
            reconnection_delay_max=2.0,
            randomization_factor=0.5,
            handle_sigint=False,
            http_session=bound_session_factory(source_ip),
        )
        sio = self.sio
        sio.on("connect", self._on_connect, namespace=NAMESPACE)
        sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        sio.on("message", self._on_message, namespace=NAMESPACE)
        sio.on("gn_gap", self._on_gap, namespace=NAMESPACE)
        sio.on("gn_resume", self._on_resume, namespace=NAMESPACE)

    # -- connection --------------------------------------------------------------------

    async def start(self) -> None:
        await self.sio.connect(
            self.url, transports=["websocket"], namespaces=[NAMESPACE], wait_timeout=20
        )

    async def _on_connect(self) -> None:
        self.connected_at = time.monotonic()
        self.connects += 1
        # Not awaited here: a call from inside the handler would wait for itself.
        self._login_task = asyncio.create_task(self._login())

    async def _on_disconnect(self, *_: Any) -> None:
        self.lost_at = time.monotonic()
        self.ready.clear()

    async def _login(self) -> None:
        logs = []
        for (kind, log_id), view in self.views.items():
            item: dict[str, Any] = {"objectType": kind, "id": log_id, "seq": view.last}
            if view.epoch is not None:
                item["epoch"] = view.epoch
            logs.append(item)
        request = {"verb": "login", "actor": {"id": self.user}, "object": {"attachments": logs}}
        try:
            reply = await self.sio.call("login", request, namespace=NAMESPACE, timeout=30)
        except (socketio.exceptions.SocketIOError, TimeoutError):
            return  # disconnected meanwhile: the next connect logs in again
        if reply.get("status_code") == 200:
            # The replay of what this client missed arrived before this reply.
            self.ready_at = time.monotonic()
            self.ready.set()
        else:  # storage down for a moment: try again on this connection
            await asyncio.sleep(0.5)
            if self.sio.connected:
                self._login_task = asyncio.create_task(self._login())

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.shutdown(), timeout=5)
        if self.sio.eio.http is not None and not self.sio.eio.http.closed:
            await self.sio.eio.http.close()

    # -- what arrives ------------------------------------------------------------------

    def _key_of(self, message: dict[str, Any]) -> LogKey | None:
        target = message.get("target", {})
        if target.get("objectType") == "room":
            return ("room", target.get("id"))
        sender = message.get("actor", {}).get("id")
        return None if sender == self.user else ("user", sender)

    async def _on_message(self, message: dict[str, Any]) -> None:
        self.last_arrival = time.monotonic()
        key = self._key_of(message)
        view = self.views.get(key) if key is not None else None
        if view is not None:
            view.receive(message["epoch"], message["seq"])

    async def _on_gap(self, gap: dict[str, Any]) -> None:
        target = gap["target"]
        view = self.views.get((target["objectType"], target["id"]))
        if view is not None:
            view.gaps.append((gap.get("epoch"), gap["from"], gap["to"]))

    async def _on_resume(self, reply: dict[str, Any]) -> None:
        for outcome in reply.get("data", {}).get("object", {}).get("attachments", []):
            status = outcome["status"]
            self.outcomes[status] = self.outcomes.get(status, 0) + 1
            self.replayed += outcome.get("replayed", 0)
            view = self.views.get((outcome["objectType"], outcome["id"]))
            if view is not None and status == "reset":
                view.resets += 1
                view.epoch = outcome["epoch"]

    # -- sending -----------------------------------------------------------------------

    async def send_forever(self, interval: float, stop: asyncio.Event) -> None:
        rng = random.Random(self.user)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval * rng.uniform(0.5, 1.5))
            if stop.is_set():
                return
            if rng.random() < 2 / 3:
                key: LogKey = ("room", rng.choice(self.rooms))
            else:
                key = ("user", self.dm_to)
            await self.send_one(key, stop)

    async def send_one(self, key: LogKey, stop: asyncio.Event) -> None:
        self._sending += 1
        client_id = f"{self.user}-{self._sending}"
        payload = {
            "verb": "send",
            "target": {"objectType": key[0], "id": key[1]},
            "object": {"content": f"{client_id} says hi", "id": client_id},
        }
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.ready.wait(), 5)
                reply = await self.sio.call("message", payload, namespace=NAMESPACE, timeout=10)
            except (socketio.exceptions.SocketIOError, TimeoutError):
                reply = {}
            if reply.get("status_code") == 200:
                data = reply["data"]
                self.sent.append(Sent(key, client_id, data["epoch"], data["seq"], data["id"]))
                return
            self.retries += 1  # same client id: stored at most once
            await asyncio.sleep(0.3)


@dataclass
class Counts:
    clients: int = 0
    logs: int = 0
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    gaps: int = 0
    in_gaps: int = 0
    resets: int = 0
    sent: int = 0
    retries: int = 0
    acked_missing: int = 0
    reconnects: int = 0
    replayed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.duplicated or self.reordered or self.acked_missing)


async def read_log(store: RedisStore, log: str) -> tuple[str | None, dict[int, str]]:
    """The log's epoch and its entries' message ids by seq."""
    [head] = await store.log_heads([log])
    entries: dict[int, str] = {}
    since = 0
    while True:
        page = await store.history(log, before=None, since=since, limit=500)
        if not page:
            break
        for text in page:
            entry = ujson.loads(text)
            entries[entry["seq"]] = entry["id"]
        since = max(entries)
    return head.epoch, entries


async def settle(clients: list[ChaosClient], timeout: float = 90.0) -> None:
    """Wait until everyone is logged in again and nothing arrived for 3 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        quiet = time.monotonic() - max(c.last_arrival for c in clients) > 3
        if quiet and all(c.ready.is_set() for c in clients):
            return
        await asyncio.sleep(0.5)


async def verify(cluster: Cluster, clients: list[ChaosClient], counts: Counts) -> None:
    client = aioredis.Redis.from_url(cluster.redis.url, decode_responses=True)
    store = RedisStore(client, KeySchema(cluster.prefix), history_size=1000)
    logs: dict[str, tuple[str | None, dict[int, str]]] = {}
    try:
        for c in clients:
            for key, view in c.views.items():
                name = room_log(key[1]) if key[0] == "room" else conversation_log(c.user, key[1])
                if name not in logs:
                    logs[name] = await read_log(store, name)
                epoch, entries = logs[name]
                counts.logs += 1
                counts.expected += len(entries)
                covered = {
                    seq for e, a, b in view.gaps if e in (None, epoch) for seq in range(a, b + 1)
                }
                received = {seq for e, seq in view.seen if e == epoch}
                counts.received += len(received)
                counts.lost += len(set(entries) - received - covered)
                counts.in_gaps += len(set(entries) & covered - received)
                counts.duplicated += view.duplicated
                counts.reordered += view.reordered
                counts.gaps += len(view.gaps)
                counts.resets += view.resets
            for sent in c.sent:
                name = (
                    room_log(sent.key[1])
                    if sent.key[0] == "room"
                    else conversation_log(c.user, sent.key[1])
                )
                if name not in logs:
                    logs[name] = await read_log(store, name)
                epoch, entries = logs[name]
                if epoch != sent.epoch or entries.get(sent.seq) != sent.message_id:
                    counts.acked_missing += 1
            counts.sent += len(c.sent)
            counts.retries += c.retries
            counts.reconnects += c.connects - 1
            counts.replayed += c.replayed
            for status, n in c.outcomes.items():
                counts.outcomes[status] = counts.outcomes.get(status, 0) + n
    finally:
        await store.close()


async def chaos(cluster: Cluster, counts: Counts, options: argparse.Namespace) -> None:
    """Kill a node, restart it; kill Redis, restart it; kill another node, restart it."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    names = sorted(cluster.nodes)
    steps = [
        (0.2, "kill", names[1]),
        (0.45, "redis", ""),
        (0.7, "kill", names[2 % len(names)]),
    ]
    for fraction, what, name in steps:
        await asyncio.sleep(max(0.0, start + fraction * options.duration - loop.time()))
        at = loop.time() - start
        if what == "redis":
            cluster.redis.kill()
            counts.events.append(f"{at:5.1f}s kill -9 redis-server, start it again")
            await asyncio.to_thread(cluster.redis.start)
            continue
        node = cluster.nodes[name]
        node.kill()
        counts.events.append(f"{at:5.1f}s kill -9 {name}, start it again after 5 s")
        await asyncio.sleep(5)
        await asyncio.to_thread(node.start)


async def create_rooms(url: str, count: int, per_creator: int = 10) -> list[str]:
    """``count`` rooms, made by several users: a node lets one user create only a few
    an hour (``--max-rooms-per-user-per-hour``)."""
    rooms: list[str] = []
    for first in range(0, count, per_creator):
        creator = socketio.AsyncClient(handle_sigint=False)
        await creator.connect(url, transports=["websocket"], namespaces=[NAMESPACE])
        try:
            login = {"actor": {"id": f"chaos-creator-{first // per_creator}"}}
            await creator.call("login", login, namespace=NAMESPACE)
            for i in range(first, min(first + per_creator, count)):
                request = {"target": {"displayName": f"chaos {i}"}}
                reply = await creator.call("create", request, namespace=NAMESPACE)
                if reply.get("status_code") != 200:
                    raise RuntimeError(f"cannot create room 'chaos {i}': {reply}")
                rooms.append(reply["data"]["target"]["id"])
        finally:
            await creator.disconnect()
    return rooms


async def run(options: argparse.Namespace) -> Counts:
    counts = Counts(clients=options.clients)
    cluster = Cluster(3, lease_ttl=4, heartbeat_interval=1, redis_fsync="always")
    clients: list[ChaosClient] = []
    try:
        cluster.start()
        rooms = await create_rooms(cluster.url, options.rooms)
        n = options.clients
        users = [f"u{i:04d}" for i in range(n)]
        for i, user in enumerate(users):
            mine = sorted({rooms[i % len(rooms)], rooms[(i * 7 + 3) % len(rooms)]})
            ip = SOURCE_ADDRESSES[i % len(SOURCE_ADDRESSES)]
            clients.append(
                ChaosClient(user, ip, cluster.url, mine, users[(i - 1) % n], users[(i + 1) % n])
            )
        for batch in range(0, n, 25):
            await asyncio.gather(*(c.start() for c in clients[batch : batch + 25]))
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
        stop = asyncio.Event()
        senders = [asyncio.create_task(c.send_forever(options.interval, stop)) for c in clients]
        chaos_task = asyncio.create_task(chaos(cluster, counts, options))
        await asyncio.sleep(options.duration)
        await chaos_task
        stop.set()
        await asyncio.gather(*senders)
        await settle(clients)
        await verify(cluster, clients, counts)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        cluster.close()
    return counts


def count_lines(counts: Counts) -> list[str]:
    """What the clients sent and what they received, checked against the logs."""
    return [
        f"sends acknowledged: {counts.sent} (retries: {counts.retries}); "
        f"acknowledged but not in the log: {counts.acked_missing}",
        f"reconnects: {counts.reconnects}; resume outcomes: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.outcomes.items()))
        + f"; messages replayed: {counts.replayed}",
        f"client logs checked: {counts.logs}; messages expected: {counts.expected}, "
        f"received: {counts.received}",
        f"lost: {counts.lost}  duplicated: {counts.duplicated}  reordered: {counts.reordered}"
        f"  gaps reported: {counts.gaps} ({counts.in_gaps} messages)  resets: {counts.resets}",
    ]


def report(counts: Counts, options: argparse.Namespace) -> str:
    lines = [
        f"chaos run: {options.clients} clients through nginx onto 3 nodes, {options.rooms} rooms"
        f" + direct conversations, {options.duration:g} s, a message per client every "
        f"~{options.interval:g} s; Redis AOF appendfsync always",
        *(f"  {event}" for event in counts.events),
        *count_lines(counts),
        "RESULT: " + ("FAIL" if counts.failed else "OK"),
    ]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--rooms", type=int, default=30)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between sends")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    counts = asyncio.run(run(options))
    print(report(counts, options))
    return 1 if counts.failed else 0


if __name__ == "__main__":
    sys.exit(main())
