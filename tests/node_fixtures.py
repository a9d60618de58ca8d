"""A real dino node for end-to-end tests, and a socket.io client that records everything.

``start_node`` runs ``server.lifecycle.serve`` in-process, on the test's own event loop,
listening on an ephemeral port of 127.0.0.1; the port is read from the node's "listening
on" log line. It is stopped with the same ``asyncio.Event`` that ``run.py`` sets on
SIGTERM, so the node leaves exactly as it does in production (goodbye, store closed).

Fixtures (load them with ``pytest_plugins = ["tests.node_fixtures"]`` in a test module):

* ``backend``: ``"memory"``, ``"redis"`` or ``"cluster"`` (a throwaway 3+3 Redis Cluster,
  ``tests/redis_cluster_fixture.py``); parametrized: every test runs on each, except that
  on the cluster only over websocket (see ``tests/conftest.py``);
* ``transport``: ``"websocket"`` (a websocket from the start: the node's lean session),
  ``"polling"``, or ``"upgrade"`` (polling, then upgraded to a websocket: engine.io's
  queue until the node switches it to direct writes); parametrized where requested;
* ``node``: a node on ``backend`` with default settings; on Redis its keys live under the
  test's private prefix and are deleted afterwards (``tests/redis_fixture.py``);
* ``node_factory``: ``await node_factory(**settings_overrides)`` for a node with other
  settings (JWT auth, a small message limit, ...), on the same backend, stopped at teardown.

``ChatClient`` wraps python-socketio's ``AsyncClient`` on namespace ``/chat``: every event
it receives is recorded in arrival order (``received``); ``call(event, data)`` emits with an
ack and returns it, after checking that the same reply also arrived as ``gn_<event>``;
``settle()`` makes sure everything published so far has arrived, before a test asserts
that something did *not* arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import engineio.async_client
import engineio.payload
import pytest
import pytest_asyncio
import socketio

from server.lifecycle import serve
from server.settings import Settings

REPO = Path(__file__).resolve().parent.parent
STATIC_DIR = REPO / "static" / "demo"
NAMESPACE = "/chat"
BACKENDS = ("memory", "redis", "cluster")
TRANSPORTS = ("websocket", "polling", "upgrade")
TIMEOUT = 10.0  # only ever reached when something is broken

# The user that ``ChatClient.settle`` sends its markers from; its messages are left out
# of ``events()`` so tests never see them unless they look at ``received``.
PROBE_USER = "~probe"
_PROBE_PREFIX = "~settle:"

_LISTENING = re.compile(r"dino node (\S+) listening on http://([^:/]+):(\d+)/")

NULL = object()  # ``call(event, NULL)`` sends an explicit JSON null as the payload
_NO_PAYLOAD = object()


class _ClientPayload(engineio.payload.Payload):
    max_decode_packets = 1_000_000


# python-engineio's client drops the connection when one poll response carries more than
# 16 packets (its Payload.max_decode_packets); socket.io's JS clients take any number,
# and a room message burst to a polling member easily exceeds 16. Lifted here for the
# test client only: the server decodes with ``engineio.async_socket``'s own reference,
# which keeps the stock limit, so the node under test is exactly what production runs.
engineio.async_client.payload = types.SimpleNamespace(Payload=_ClientPayload)  # type: ignore[attr-defined]


class NodeFailed(Exception):
    """The node under test stopped or never started listening."""


class _ListeningWatcher(logging.Handler):
    """Resolves a future with the port when the node ``node_id`` logs "listening on"."""

    def __init__(self, node_id: str, found: asyncio.Future[int]) -> None:
        super().__init__(logging.INFO)
        self.node_id = node_id
        self.found = found

    def emit(self, record: logging.LogRecord) -> None:
        match = _LISTENING.search(record.getMessage())
        if match and match.group(1) == self.node_id and not self.found.done():
            self.found.set_result(int(match.group(3)))


@dataclasses.dataclass
class RunningNode:
    settings: Settings
    port: int
    task: asyncio.Task[None]
    clients: list[ChatClient] = dataclasses.field(default_factory=list)
    _probe: ChatClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def client(
        self,
        transport: str = "websocket",
        *,
        user: str | None = None,
        name: str | None = None,
        attributes: dict[str, str] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> ChatClient:
        """A connected client; logged in as ``user`` (with ``name``/``attributes``) if given."""
        client = ChatClient(self, transport)
        self.clients.append(client)
        await client.connect(auth=auth)
        if user is not None:
            reply = await client.login(user, name=name, attributes=attributes)
            assert reply["status_code"] == 200, reply
        return client

    async def probe(self) -> ChatClient:
        if self._probe is None:
            self._probe = await self.client("websocket", user=PROBE_USER)
        return self._probe

    async def close_clients(self) -> None:
        for client in self.clients:
            await client.disconnect()


class ChatClient:
    """One socket.io connection to ``/chat``; records every event it receives."""

    def __init__(self, node: RunningNode, transport: str) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        self.node = node
        self.transport = transport
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []
        self.user: str | None = None
        self.disconnected = asyncio.Event()
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self.sio.on("*", self._record, namespace=NAMESPACE)
        self.sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

    # -- connection --------------------------------------------------------------------

    async def connect(self, auth: dict[str, Any] | None = None) -> None:
        await self.sio.connect(
            self.node.url,
            namespaces=[NAMESPACE],
            transports=["polling", "websocket"]
            if self.transport == "upgrade"
            else [self.transport],
            auth=auth,
            wait_timeout=TIMEOUT,
        )
        # python-engineio's client upgrades within connect(), when the server offers it.
        if self.transport == "upgrade":
            assert self.sio.transport() == "websocket", "the upgrade did not happen"

    async def disconnect(self) -> None:
        """Leave as a browser does: DISCONNECT and CLOSE reach the server, then return.

        Over websocket python-socketio's own disconnect does just that. Over polling it
        would then wait for its pending long-poll GET, which python-engineio's server
        answers only at the next ping (``ping_interval`` later), so here the GET is
        abandoned once the server has acknowledged the POST carrying the CLOSE (the
        server handles the packets, and so runs the disconnect, before answering it)."""
        if not self.sio.connected:
            return
        if self.transport != "polling":
            await self.sio.disconnect()
            return
        eio = self.sio.eio
        # Anything still being posted first: the write loop stops once the state leaves
        # "connected", so a packet queued behind an in-flight POST would never be sent.
        await self.flush()
        reader = eio.read_loop_task
        closing = asyncio.create_task(self.sio.disconnect())
        await asyncio.wait_for(eio.queue.join(), TIMEOUT)  # DISCONNECT + CLOSE posted
        if reader is not None:
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(closing, TIMEOUT)
        if eio.http is not None and not eio.http.closed:
            await eio.http.close()
        eio.http = None
        eio.state = "disconnected"

    def _on_disconnect(self, *_: Any) -> None:
        self.disconnected.set()

    def _record(self, event: str, *args: Any) -> None:
        # Must not await: engine.io dispatches each packet in its own task, and these
        # tasks run in arrival order only as long as none of them suspends first.
        data = args[0] if len(args) == 1 else (list(args) if args else None)
        self.received.append((event, data))
        self._changed.set()

    # -- requests ----------------------------------------------------------------------

    async def emit(self, event: str, data: Any = _NO_PAYLOAD) -> None:
        """Send without waiting for anything (the reply still arrives as ``gn_<event>``)."""
        await self.sio.emit(event, _payload(data), namespace=NAMESPACE)

    async def send_raw(self, text: str) -> None:
        """Send ``text`` as a socket.io packet as is (an engine.io MESSAGE)."""
        await self.sio.eio.send(text)

    async def call_raw(self, event: str, payload_json: str) -> dict[str, Any]:
        """Send ``payload_json`` (JSON text, as is) as ``event``; return ``gn_<event>``.

        For payloads python-socketio's client cannot send itself, such as a lone
        surrogate written as a JSON escape."""
        async with self._lock:
            start = len(self.received)
            await self.send_raw(f'2{NAMESPACE},["{event}",{payload_json}]')
            [reply] = await self.wait_for("gn_" + event, after=start, include_probe=True)
        assert isinstance(reply, dict), reply
        return reply

    async def flush(self) -> None:
        """Return once everything emitted so far has been written (polling: posted)."""
        await asyncio.wait_for(self.sio.eio.queue.join(), TIMEOUT)

    async def call(self, event: str, data: Any = _NO_PAYLOAD) -> dict[str, Any]:
        """Emit ``event`` asking for an ack; return the ack.

        Also checks the envelope rule: the same reply arrives as event ``gn_<event>``."""
        async with self._lock:
            start = len(self.received)
            ack = await self.sio.call(event, _payload(data), namespace=NAMESPACE, timeout=TIMEOUT)
            replies = await self.wait_for("gn_" + event, after=start, include_probe=True)
        assert replies[0] == ack, f"gn_{event} {replies[0]!r} differs from the ack {ack!r}"
        assert isinstance(ack, dict) and ack.get("status_code") in (200, 400, 403, 500), ack
        return ack

    async def login(
        self,
        user: str,
        *,
        name: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        actor: dict[str, Any] = {"id": user}
        if name is not None:
            actor["summary"] = name
        if attributes:
            actor["attachments"] = [
                {"objectType": kind, "content": value} for kind, value in attributes.items()
            ]
        reply = await self.call("login", {"verb": "login", "actor": actor})
        if reply["status_code"] == 200:
            self.user = reply["data"]["actor"]["id"]
        return reply

    # -- common requests, returning the reply ------------------------------------------

    async def create(self, name: str) -> str:
        """Create room ``name`` (must succeed); returns its id."""
        reply = await self.call("create", {"verb": "create", "target": {"displayName": name}})
        assert reply["status_code"] == 200, reply
        room_id: str = reply["data"]["target"]["id"]
        return room_id

    async def join(self, room_id: str) -> dict[str, Any]:
        return await self.call("join", {"verb": "join", "target": {"id": room_id}})

    async def leave(self, room_id: str) -> dict[str, Any]:
        return await self.call("leave", {"verb": "leave", "target": {"id": room_id}})

    async def say(self, room_id: str, content: str) -> dict[str, Any]:
        return await self.call(
            "message",
            {
                "verb": "send",
                "target": {"id": room_id},
                "object": {"content": content, "objectType": "group"},
            },
        )

    async def tell(self, user_id: str, content: str) -> dict[str, Any]:
        return await self.call(
            "message",
            {
                "verb": "send",
                "target": {"objectType": "user", "id": user_id},
                "object": {"content": content},
            },
        )

    async def history(self, target: dict[str, Any], **options: Any) -> dict[str, Any]:
        return await self.call("history", {"verb": "list", "target": target, **options})

    # -- what arrived ------------------------------------------------------------------

    def events(self, name: str, *, include_probe: bool = False) -> list[Any]:
        """Payloads of every ``name`` event received so far, in arrival order."""
        return [
            data
            for event, data in self.received
            if event == name and (include_probe or not _is_probe(data))
        ]

    def names(self) -> list[str]:
        """Names of the events received so far (the settle markers left out)."""
        return [event for event, data in self.received if not _is_probe(data)]

    async def wait_for(
        self,
        name: str,
        match: Callable[[Any], bool] = lambda _: True,
        *,
        count: int = 1,
        after: int = 0,
        include_probe: bool = False,
    ) -> list[Any]:
        """The first ``count`` ``name`` events (from index ``after``) that ``match``."""

        def found() -> list[Any]:
            return [
                data
                for event, data in self.received[after:]
                if event == name and (include_probe or not _is_probe(data)) and match(data)
            ]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while len(hits := found()) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.user or 'client'} ({self.transport}) got {len(hits)} of {count} "
                    f"'{name}' events; received: {self.names()}"
                )
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return hits[:count]

    async def settle(self) -> None:
        """Return once everything published before this call has reached this client.

        A marker is sent to this client's user from a probe user on the same node, after
        whatever the test did; the node delivers it after anything published earlier
        (in memory synchronously, on Redis through the same ordered subscription), so
        once it is here an event that has not arrived will not arrive. Used before
        asserting that something was *not* received."""
        assert self.user is not None, "settle() needs a logged-in client"
        probe = await self.node.probe()
        marker = _PROBE_PREFIX + uuid.uuid4().hex
        reply = await probe.tell(self.user, marker)
        assert reply["status_code"] == 200, reply
        await self.wait_for(
            "message",
            lambda m: m["object"]["content"] == marker,
            include_probe=True,
        )


def _payload(data: Any) -> Any:
    if data is _NO_PAYLOAD:
        return None  # python-socketio sends no argument at all
    if data is NULL:
        return (None,)  # a one-element tuple is sent as one argument: null
    if isinstance(data, tuple):
        return (data,)  # never spread a tuple into several arguments
    return data


def _is_probe(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    actor, obj = data.get("actor"), data.get("object")
    content = obj.get("content") if isinstance(obj, dict) else None
    return (
        isinstance(actor, dict)
        and actor.get("id") == PROBE_USER
        and isinstance(content, str)
        and content.startswith(_PROBE_PREFIX)
    )


# -- running a node ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def start_node(settings: Settings) -> AsyncIterator[RunningNode]:
    """Run a node with ``settings`` (its port is ignored: it gets an ephemeral one)."""
    node_id = settings.node_id or f"test-{uuid.uuid4().hex[:12]}"
    settings = dataclasses.replace(settings, host="127.0.0.1", port=0, node_id=node_id)
    loop = asyncio.get_running_loop()
    found: asyncio.Future[int] = loop.create_future()
    logger = logging.getLogger("dino")
    watcher = _ListeningWatcher(node_id, found)
    previous_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(watcher)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, STATIC_DIR, stop), name=f"node {node_id}")
    try:
        done, _ = await asyncio.wait({task, found}, timeout=TIMEOUT, return_when="FIRST_COMPLETED")
        if found not in done:
            if task.done():
                raise NodeFailed(f"node {node_id} exited before listening") from task.exception()
            raise NodeFailed(f"node {node_id} did not log 'listening on' in {TIMEOUT}s")
    except BaseException:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, TIMEOUT)
        logger.removeHandler(watcher)
        logger.setLevel(previous_level)
        raise
    node = RunningNode(settings=settings, port=found.result(), task=task)
    try:
        yield node
    finally:
        await node.close_clients()
        stop.set()
        try:
            await asyncio.wait_for(task, TIMEOUT)
        finally:
            logger.removeHandler(watcher)
            logger.setLevel(previous_level)


def store_settings(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for ``backend``; for Redis, the test's private key prefix (cleaned after).

    Call it from a synchronous fixture: it sets up the Redis fixtures on demand."""
    if backend == "memory":
        return {}
    if backend == "redis":
        request.getfixturevalue("redis_client")  # deletes the prefix's keys at teardown
        return {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": request.getfixturevalue("key_prefix"),
        }
    if backend == "cluster":
        request.getfixturevalue("redis_cluster_client")  # deletes the keys at teardown
        return {
            "redis_cluster_nodes": request.getfixturevalue("redis_cluster").nodes,
            "redis_prefix": request.getfixturevalue("key_prefix"),
        }
    raise ValueError(f"unknown backend {backend!r}")


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


NodeFactory = Callable[..., Awaitable[RunningNode]]


@pytest.fixture
def backend_store(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings that put a node on ``backend`` (Redis: URL and private prefix)."""
    return store_settings(backend, request)


@pytest_asyncio.fixture
async def node_factory(backend_store: dict[str, Any]) -> AsyncIterator[NodeFactory]:
    """``await node_factory(**overrides)``: a node on ``backend``, stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> RunningNode:
            settings = Settings(**{**backend_store, **overrides})
            return await stack.enter_async_context(start_node(settings))

        yield make


@pytest_asyncio.fixture
async def node(node_factory: NodeFactory) -> RunningNode:
    """A node with default settings on ``backend``."""
    return await node_factory()
