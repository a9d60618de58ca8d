"""/ready and the graceful drain, on a node whose parts the test can see.

The node here is assembled from the same pieces ``server.lifecycle.serve`` uses
(``create_node``, ``Cluster``, ``make_app``, ``drain``), so a test can hold the drain at
its goodbye and look at the node while it drains. Clients are python-socketio's own, with
reconnection on, as an application would use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from server.app import make_app
from server.cluster import Cluster
from server.drain import drain
from server.node import Node, create_node
from server.settings import Settings
from tests.cluster_fixtures import RedisServer, wait_until
from tests.node_fixtures import STATIC_DIR, store_settings
from tests.test_metrics import Scrape

pytest_plugins = ["tests.node_fixtures"]

NAMESPACE = "/chat"
TIMEOUT = 15.0


@dataclasses.dataclass
class Served:
    node: Node
    cluster: Cluster
    server: HTTPServer
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http, http.get(self.url + path) as reply:
            body = await reply.json() if reply.content_type == "application/json" else (
                await reply.text()
            )
            return reply.status, body


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Served]:
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    port = sockets[0].getsockname()[1]
    node = await create_node(settings, settings.node_id or f"drain-{port}")
    cluster = Cluster(node)
    await cluster.start()
    server = HTTPServer(make_app(node, STATIC_DIR))
    server.add_sockets(sockets)
    try:
        yield Served(node, cluster, server, port)
    finally:
        if not node.status.draining:
            await drain(node, cluster.stop, 5.0)
        server.stop()
        await node.close()


class Client:
    """A python-socketio client that logs in and joins again after every reconnect."""

    def __init__(self, user: str, transports: list[str]) -> None:
        self.user = user
        self.transports = transports
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.1,
                                        reconnection_delay_max=0.5, handle_sigint=False)
        self.disconnected = asyncio.Event()
        self.sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

    def _on_disconnect(self, *_: Any) -> None:
        self.disconnected.set()

    async def connect(self, url: str) -> None:
        await self.sio.connect(url, namespaces=[NAMESPACE], transports=self.transports,
                               wait_timeout=TIMEOUT)

    async def call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = await self.sio.call(event, payload, namespace=NAMESPACE,
                                                    timeout=TIMEOUT)
        return reply

    async def ok(self, event: str, payload: dict[str, Any]) -> Any:
        reply = await self.call(event, payload)
        assert reply["status_code"] == 200, reply
        return reply.get("data")

    async def login(self) -> None:
        await self.ok("login", {"verb": "login", "actor": {"id": self.user}})

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.shutdown(), TIMEOUT)
        if self.sio.eio.http is not None and not self.sio.eio.http.closed:
            await self.sio.eio.http.close()


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    return Settings(host="127.0.0.1", port=0, heartbeat_interval=0.2, lease_ttl=2.0,
                    **store_settings(backend, request))


@contextlib.asynccontextmanager
async def clients(url: str, *specs: tuple[str, list[str]]) -> AsyncIterator[list[Client]]:
    made = [Client(user, transports) for user, transports in specs]
    try:
        for client in made:
            await client.connect(url)
            await client.login()
        yield made
    finally:
        for client in made:
            await client.close()


async def test_ready_when_serving(settings: Settings) -> None:
    async with served(settings) as s:
        status, body = await s.get("/ready")
        assert status == 200
        assert body == {"node": s.node.node_id, "ready": True, "reasons": []}
        status, body = await s.get("/health")  # alive, as before
        assert status == 200 and body["node"] == s.node.node_id


async def test_drain_moves_every_client_and_releases_presence_and_lease(
    settings: Settings,
) -> None:
    async with served(settings) as s, clients(
        s.url, ("ws", ["websocket"]), ("poll", ["polling"]), ("up", ["polling", "websocket"])
    ) as (ws, poll, up):
        room_id = (await ws.ok("create", {"verb": "create", "target": {"displayName": "r"}}))[
            "target"]["id"]
        for client in (ws, poll, up):
            await client.ok("join", {"verb": "join", "target": {"id": room_id}})
        assert len(await s.node.store.room_members(room_id)) == 3

        goodbye_reached, release = asyncio.Event(), asyncio.Event()

        async def held_goodbye() -> None:
            goodbye_reached.set()
            await release.wait()
            await s.cluster.stop()

        draining = asyncio.create_task(drain(s.node, held_goodbye, TIMEOUT))
        await asyncio.wait_for(goodbye_reached.wait(), TIMEOUT)
        # Every client was told to go, as a dropped transport: each one reconnects.
        for client in (ws, poll, up):
            await asyncio.wait_for(client.disconnected.wait(), TIMEOUT)
            assert client.sio._reconnect_task is not None, f"{client.user} gave up"
        # Presence is released at once, not after a lease expires.
        assert await s.node.store.room_members(room_id) == []
        # Not ready, and new handshakes go elsewhere (nginx retries a 503 on the next node).
        status, body = await s.get("/ready")
        assert status == 503 and "draining" in body["reasons"]
        status, text = await s.get("/socket.io/?EIO=4&transport=polling")
        assert status == 503 and "draining" in text
        assert Scrape(await _metrics(s)).value("dino_draining") == 1
        release.set()
        await asyncio.wait_for(draining, TIMEOUT)
        assert s.node.node_id not in await s.node.store.live_nodes()  # the lease is gone
        status, body = await s.get("/ready")
        assert status == 503 and "lease not held" in body["reasons"]


async def test_a_request_in_flight_is_answered_before_its_connection_closes(
    settings: Settings,
) -> None:
    async with served(settings) as s, clients(s.url, ("writer", ["websocket"])) as (writer,):
        room_id = (await writer.ok("create", {"verb": "create", "target": {"displayName": "r"}}))[
            "target"]["id"]
        await writer.ok("join", {"verb": "join", "target": {"id": room_id}})
        # Hold the store's append so that the message is in flight when the drain starts.
        gate, entered = asyncio.Event(), asyncio.Event()
        append = s.node.store.append_entry  # what sending a message calls

        async def slow_append(*args: Any, **kwargs: Any) -> Any:
            entered.set()
            await gate.wait()
            return await append(*args, **kwargs)

        s.node.store.append_entry = slow_append  # type: ignore[method-assign]
        sending = asyncio.create_task(writer.call("message", {
            "verb": "send", "target": {"id": room_id}, "object": {"content": "in flight"}}))
        await asyncio.wait_for(entered.wait(), TIMEOUT)
        draining = asyncio.create_task(drain(s.node, s.cluster.stop, TIMEOUT))
        await asyncio.sleep(0.3)  # several drain rounds: the busy connection stays open
        assert not writer.disconnected.is_set()
        gate.set()
        reply = await asyncio.wait_for(sending, TIMEOUT)
        assert reply["status_code"] == 200  # acknowledged ...
        await asyncio.wait_for(writer.disconnected.wait(), TIMEOUT)
        await asyncio.wait_for(draining, TIMEOUT)
        s.node.store.append_entry = append  # type: ignore[method-assign]
        entries = await s.node.store.history(f"room:{room_id}", before=None, since=0, limit=10)
        assert len(entries) == 1 and "in flight" in entries[0]  # ... and stored, once


async def test_drain_gives_up_at_its_timeout(settings: Settings) -> None:
    """A request that never finishes cannot hold the node: it stops at --drain-timeout."""
    async with served(settings) as s, clients(s.url, ("stuck", ["websocket"])) as (stuck,):
        never = asyncio.Event()
        list_rooms = s.node.store.list_rooms

        async def hanging(*_: Any) -> Any:
            await never.wait()
            return await list_rooms()

        s.node.store.list_rooms = hanging  # type: ignore[method-assign]
        call = asyncio.create_task(stuck.call("list_rooms", {"verb": "list"}))
        await wait_until(lambda: bool(s.node.status.busy), TIMEOUT, "the request to start")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(drain(s.node, s.cluster.stop, 0.5), TIMEOUT)
        # Bounded, with a generous margin: only the goodbye may run past the timeout.
        assert loop.time() - started < TIMEOUT
        assert s.node.node_id not in await s.node.store.live_nodes()
        never.set()
        call.cancel()
        with contextlib.suppress(BaseException):
            await call


async def test_ready_flips_during_a_redis_outage() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp), fsync="everysec")
        redis_server.start()
        try:
            settings = Settings(host="127.0.0.1", port=0, redis_url=redis_server.url,
                                heartbeat_interval=0.2, lease_ttl=2.0)
            async with served(settings) as s:
                assert (await s.get("/ready"))[0] == 200
                redis_server.kill()

                async def not_ready() -> list[str]:
                    status, body = await s.get("/ready")
                    return body["reasons"] if status == 503 else []

                await _until(not_ready, "storage unreachable")
                await wait_until(lambda: s.node.outage.down, TIMEOUT, "the outage to be seen")
                page = Scrape(await _metrics(s))
                assert page.value("dino_redis_up") == 0
                assert page.value("dino_redis_outages_total") == 1
                assert page.value("dino_redis_errors_total") >= 1
                redis_server.start()

                async def ready() -> bool:
                    return (await s.get("/ready"))[0] == 200

                await _until_true(ready)
                assert Scrape(await _metrics(s)).value("dino_redis_up") == 1
        finally:
            redis_server.stop()


async def _until(reasons: Callable[[], Awaitable[list[str]]], reason: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while reason not in await reasons():
        assert loop.time() < deadline, f"/ready never said {reason!r}"
        await asyncio.sleep(0.1)


async def _until_true(check: Callable[[], Awaitable[bool]]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not await check():
        assert loop.time() < deadline, "/ready did not come back"
        await asyncio.sleep(0.1)


async def _metrics(s: Served) -> str:
    status, text = await s.get("/metrics")
    assert status == 200
    return str(text)
