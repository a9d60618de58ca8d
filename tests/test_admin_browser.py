"""The admin page (static/admin/) in real headless Chromium against a real node process.

Users chat through python-socketio clients (in a thread of their own) while an operator
opens /admin/: without the key nothing is shown and the API refuses; with it the page
shows the node, its connections, live event rates, the busiest rooms, a user lookup, and
its moderation buttons work. A screenshot lands in tests/artifacts/admin.png (the one in
docs/ was taken from it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import socketio

from tests.browser_fixtures import (
    TIMEOUT_MS,
    Node,
    artifacts_dir,
    free_port,
    require_browser_tools,
)

pytest_plugins = ["tests.browser_fixtures"]  # the browser fixture

KEY = "admin-test-key"
NO_RATE_YET = "\u2013"  # what the page shows before it has two samples (an en dash)
USERS = ("alice", "bob", "carol")


class Chatters:
    """Three users in room 'lobby' (alice talks every 0.2 s) and an empty room 'quiet',
    on an event loop in a thread, so the synchronous playwright test can run beside it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.clients: dict[str, socketio.AsyncClient] = {}
        self.rooms: dict[str, str] = {}
        self.stop = asyncio.Event()
        self.talker: concurrent.futures.Future[None] | None = None

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        self.talker = asyncio.run_coroutine_threadsafe(self._talk(), self.loop)

    async def _call(self, user: str, event: str, payload: dict[str, Any]) -> Any:
        reply = await self.clients[user].call(event, payload, namespace="/chat", timeout=10)
        assert reply["status_code"] == 200, reply
        return reply.get("data")

    async def _start(self) -> None:
        for user in USERS:
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(self.url, namespaces=["/chat"], transports=["websocket"])
            self.clients[user] = client
            await self._call(user, "login", {"verb": "login", "actor": {"id": user}})
        for name in ("lobby", "quiet"):
            data = await self._call("alice", "create", {"verb": "create",
                                                        "target": {"displayName": name}})
            self.rooms[name] = data["target"]["id"]
        for user in USERS:
            await self._call(user, "join", {"verb": "join", "target": {"id": self.rooms["lobby"]}})

    async def _talk(self) -> None:
        number = 0
        while not self.stop.is_set():
            client = self.clients["alice"]
            if client.connected:
                await client.emit("message", {"verb": "send", "target": {"id": self.rooms["lobby"]},
                                              "object": {"content": f"hi {number}"}},
                                  namespace="/chat")  # fmt: skip
            number += 1
            await asyncio.sleep(0.2)

    def close(self) -> None:
        async def shut() -> None:
            self.stop.set()
            for client in self.clients.values():
                await client.shutdown()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(30)
        if self.talker is not None:
            self.talker.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def node() -> Iterator[Node]:
    require_browser_tools()
    n = Node(free_port(), ["--api-keys", KEY, "--heartbeat-interval", "0.5",
                           "--node-id", "admin-node"])  # fmt: skip
    n.start()
    try:
        yield n
    finally:
        n.stop()


def get_status(url: str, key: str | None) -> int:
    request = urllib.request.Request(url)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            json.loads(reply.read())
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_admin_page_needs_the_key_and_then_shows_the_cluster(
    browser: Any, node: Node
) -> None:
    from playwright.sync_api import expect

    stats = node.url + "/api/v1/admin/stats"
    assert get_status(stats, None) == 401
    assert get_status(stats, "wrong") == 401
    assert get_status(stats, KEY) == 200

    chatters = Chatters(node.url)
    chatters.start()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: None if req.url.startswith(node.url) or req.url.startswith(
        "data:") else foreign.append(req.url))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        page.goto(node.url + "/admin")  # redirected to /admin/
        expect(page.get_by_test_id("key-form")).to_be_visible()
        expect(page.get_by_test_id("status")).to_have_text("no API key")
        expect(page.get_by_test_id("nodes")).to_be_hidden()

        page.fill("#key", "not-the-key")
        page.click("#key-submit")
        expect(page.get_by_test_id("status")).to_have_text("API key refused")
        expect(page.get_by_test_id("notice")).to_contain_text("an API key is required")
        expect(page.get_by_test_id("nodes")).to_be_hidden()

        page.fill("#key", KEY)
        page.click("#key-submit")
        nodes = page.get_by_test_id("nodes")
        expect(nodes).to_be_visible()
        row = nodes.locator("tr[data-node='admin-node']")
        expect(row).to_contain_text("serving")
        # node | state | websocket | polling | sessions | users | local rooms | events/s
        expect(row.locator("td").nth(2)).to_have_text("3")
        expect(row.locator("td").nth(4)).to_have_text("3")
        expect(row.locator("td").nth(5)).to_have_text("3")
        expect(row.locator("td").nth(7)).not_to_have_text(NO_RATE_YET)

        lobby = page.get_by_test_id("rooms").locator(f"tr[data-room='{chatters.rooms['lobby']}']")
        expect(lobby.locator("td").nth(0)).to_have_text("lobby")
        expect(lobby.locator("td").nth(1)).to_have_text("3")
        expect(lobby.locator("td").nth(3)).not_to_have_text(NO_RATE_YET)
        # (The page's CSP forbids eval, so no wait_for_function: the chart says how many
        # points it drew.)
        expect(page.get_by_test_id("chart")).to_have_attribute(
            "data-points", re.compile(r"^([3-9]|[1-9]\d+)$"))
        expect(page.get_by_test_id("rate-now")).to_contain_text("messages/s")
        page.screenshot(path=str(artifacts_dir() / "admin.png"))

        # User lookup, then the moderation action: disconnect every session of bob.
        page.fill("#user-id", "bob")
        page.get_by_test_id("user-form").locator("button").click()
        expect(page.get_by_test_id("user-status")).to_have_text("online")
        expect(page.get_by_test_id("user-sessions")).to_have_text("1")
        expect(page.get_by_test_id("user-rooms")).to_contain_text(chatters.rooms["lobby"])
        page.get_by_test_id("user-disconnect").click()
        expect(page.get_by_test_id("user-status")).to_have_text("offline")
        expect(lobby.locator("td").nth(1)).to_have_text("2")

        # Removing a room (the confirm() dialog is accepted).
        quiet = page.get_by_test_id("rooms").locator(f"tr[data-room='{chatters.rooms['quiet']}']")
        expect(quiet).to_be_visible()
        quiet.get_by_role("button", name="Remove").click()
        expect(quiet).to_have_count(0)
        assert get_status(f"{node.url}/api/v1/rooms/{chatters.rooms['quiet']}", KEY) == 404

        page.click("#forget")
        expect(page.get_by_test_id("key-form")).to_be_visible()
        assert errors == []
        assert foreign == []
    finally:
        context.close()
        chatters.close()
