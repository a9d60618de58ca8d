"""The demo page (static/demo/) in real headless Chromium against a real node process.

Two people in two browser contexts log in, create and join a room, chat, see each other
come and go, exchange a direct message, and see the server's error texts. Markup in a
message must arrive as text. Then the connection is dropped (the page must reconnect,
rejoin and catch up what it missed) and the node is killed and restarted (the page must
reconnect and say that the room is gone, since an in-memory node forgets its rooms).
Unread badges come from the server's conversations, read marks from receipts, and a
status dot shows each person's status.
Last, on a `--auth jwt` node, the token decides who logs in.

Screenshots land in tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser_fixtures import (
    TIMEOUT_MS,
    Node,
    artifacts_dir,
    free_port,
    require_browser_tools,
)

pytest_plugins = ["tests.browser_fixtures"]  # the browser fixture

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def node() -> Iterator[Node]:
    require_browser_tools()
    n = Node(free_port())
    n.start()
    try:
        yield n
    finally:
        n.stop()


class Person:
    """One browser context with the demo open; records what must never happen."""

    def __init__(self, browser: Any, node: Node, viewport: dict[str, int] | None = None) -> None:
        self.node = node
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page_errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        self.page.on("request", lambda req: self._check_url(req.url))
        self.websockets: list[str] = []
        self.page.on("websocket", self._on_websocket)
        self.failed: list[str] = []
        self.page.on("response", self._on_response)

    def _on_websocket(self, ws: Any) -> None:
        self._check_url(ws.url)
        self.websockets.append(ws.url)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _on_response(self, response: Any) -> None:
        # socket.io answers 400 to a polling request of a session that a restarted node
        # no longer knows; that is how the client learns to start over, so it is allowed.
        if response.status >= 400 and "/socket.io/" not in response.url:
            self.failed.append(f"{response.status} {response.url}")

    def _check_url(self, url: str) -> None:
        """The page may talk to its own node only: no CDN, no fonts, nothing outside."""
        host = f"127.0.0.1:{self.node.port}"
        if not (
            url.startswith(f"http://{host}/")
            or url.startswith(f"ws://{host}/")
            or url.startswith("data:")
        ):
            self.foreign.append(url)

    # -- actions -----------------------------------------------------------------

    def open(self) -> None:
        # "/" must redirect to the demo.
        self.page.goto(self.node.url + "/")
        assert self.page.url.rstrip("/").endswith("/demo"), self.page.url

    def login(self, user_id: str, name: str, city: str = "", age: str = "") -> None:
        from playwright.sync_api import expect

        page = self.page
        page.get_by_label("User id", exact=True).fill(user_id)
        page.get_by_label("Display name", exact=True).fill(name)
        page.get_by_label("City", exact=True).fill(city)
        page.get_by_label("Age", exact=True).fill(age)
        page.get_by_role("button", name="Log in", exact=True).click()
        expect(page.get_by_test_id("conn-status")).to_have_text("connected")
        expect(page.get_by_test_id("whoami")).to_have_text(f"{name} ({user_id})")

    def create_room(self, name: str) -> None:
        self.page.get_by_label("New room name").fill(name)
        self.page.get_by_role("button", name="Create", exact=True).click()

    def join(self, room: str) -> None:
        from playwright.sync_api import expect

        self.page.get_by_role("button", name=f"Join room {room}", exact=True).click()
        expect(self.page.get_by_test_id("conv-title")).to_have_text(f"# {room}")
        expect(
            self.page.get_by_role("button", name=f"Open room {room}", exact=True)
        ).to_be_visible()

    def send(self, text: str) -> None:
        self.page.get_by_test_id("composer-input").fill(text)
        self.page.get_by_role("button", name="Send", exact=True).click()

    # -- what is on screen ---------------------------------------------------------

    def shown_messages(self) -> Any:
        return self.page.locator(
            '[data-testid="message-list"]:not([hidden]) [data-testid="message"]'
        )

    def message(self, text: str) -> Any:
        """The visible message whose text is exactly `text`."""
        return self.shown_messages().filter(
            has=self.page.get_by_test_id("message-text").get_by_text(text, exact=True)
        )

    def expect_message(self, sender: str, text: str) -> None:
        from playwright.sync_api import expect

        msg = self.message(text)
        expect(msg).to_have_count(1)
        expect(msg.get_by_test_id("message-sender")).to_have_text(sender)
        # The time is shown next to the name (hh:mm in the browser's locale).
        expect(msg.locator("time")).to_have_text(re.compile(r"\d"))

    def expect_members(self, names: list[str]) -> None:
        from playwright.sync_api import expect

        expect(self.page.get_by_test_id("member").locator(".member-name")).to_have_text(
            sorted(names)
        )
        expect(self.page.get_by_test_id("member-count")).to_have_text(str(len(names)))

    def expect_status(self, pattern: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.get_by_test_id("conn-status")).to_have_text(re.compile(pattern))

    def room_count(self, room: str) -> Any:
        item = self.page.get_by_test_id("room-item").filter(
            has=self.page.get_by_test_id("room-name").get_by_text(room, exact=True)
        )
        return item.get_by_test_id("room-count")

    def check_clean(self) -> None:
        assert self.dialogs == [], f"a dialog fired: {self.dialogs}"
        assert self.page_errors == [], f"script errors: {self.page_errors}"
        assert self.foreign == [], f"requests outside the node: {self.foreign}"
        assert self.failed == [], f"failed requests: {self.failed}"

    def close(self) -> None:
        self.context.close()


def test_two_people_chat(browser: Any, node: Node) -> None:
    from playwright.sync_api import expect

    out = artifacts_dir()
    alice, bob = Person(browser, node), Person(browser, node)
    for person in (alice, bob):
        person.open()
    alice.login("alice", "Alice", city="Shanghai", age="31")
    bob.login("bob", "Bob", city="Beijing", age="27")

    room = "Lobby"
    alice.create_room(room)
    expect(alice.page.get_by_role("button", name=f"Join room {room}", exact=True)).to_be_focused()
    expect(alice.room_count(room)).to_have_text("0")

    alice.join(room)
    alice.expect_members(["Alice"])
    bob.page.get_by_role("button", name="Refresh the room list").click()
    bob.join(room)
    bob.expect_members(["Alice", "Bob"])
    # Alice's list grows from gn_user_joined, and the room list shows the count.
    alice.expect_members(["Alice", "Bob"])
    expect(alice.room_count(room)).to_have_text("2")

    alice.send("Hello Bob!")
    bob.expect_message("Alice", "Hello Bob!")
    alice.expect_message("Alice", "Hello Bob!")  # once: the ack and the echo are merged
    bob.send("Hi Alice, how is Shanghai?")
    alice.expect_message("Bob", "Hi Alice, how is Shanghai?")
    alice.send("Sunny and warm. Open the demo on your phone, it fits a narrow screen too.")
    bob.expect_message(
        "Alice", "Sunny and warm. Open the demo on your phone, it fits a narrow screen too."
    )
    alice.page.screenshot(path=str(out / "demo-chat.png"))

    # Markup in a message is shown literally and runs nothing.
    bob.send(XSS)
    alice.expect_message("Bob", XSS)
    bob.expect_message("Bob", XSS)
    for person in (alice, bob):
        expect(person.page.locator('[data-testid="message-list"] img')).to_have_count(0)

    # Typing on while a message is on its way loses nothing, and order holds.
    burst = ["one", "two", "three", "four"]
    for text in burst:
        bob.send(text)
    for text in burst:
        alice.expect_message("Bob", text)
    texts = alice.shown_messages().get_by_test_id("message-text").all_inner_texts()
    assert texts[-len(burst) :] == burst, texts

    # A third person, on a phone-sized window, with markup in her display name, gets
    # the history on join.
    carol_name = "Carol <b>C</b>"
    carol = Person(browser, node, viewport={"width": 390, "height": 844})
    carol.open()
    carol.page.screenshot(path=str(out / "demo-login-phone.png"), full_page=True)
    carol.login("carol", carol_name)
    carol.join(room)
    carol.expect_message("Alice", "Hello Bob!")
    carol.expect_message("Bob", XSS)
    expect(carol.page.locator('[data-testid="message-list"] img')).to_have_count(0)
    carol.expect_members(["Alice", "Bob", carol_name])
    alice.expect_members(["Alice", "Bob", carol_name])
    carol.send("Hi both, from my phone")
    alice.expect_message(carol_name, "Hi both, from my phone")
    for person in (alice, carol):
        expect(person.page.locator("#member-list b, .msg-sender b, #whoami b")).to_have_count(0)
    carol.page.screenshot(path=str(out / "demo-chat-phone.png"), full_page=True)
    carol.check_clean()
    carol.close()  # closing the tab disconnects: the others see her leave
    alice.expect_members(["Alice", "Bob"])
    expect(alice.page.get_by_text(f"{carol_name} left", exact=True)).to_be_visible()

    # Markup in a room name is text as well.
    alice.create_room("<i>markup</i> room")
    expect(
        alice.page.get_by_test_id("room-name").get_by_text("<i>markup</i> room", exact=True)
    ).to_be_visible()
    expect(alice.page.locator("#room-list i")).to_have_count(0)

    # A direct message, opened from the member list.
    alice.page.get_by_role("button", name="Send a direct message to Bob", exact=True).click()
    expect(alice.page.get_by_test_id("conv-title")).to_have_text("Direct: Bob")
    alice.send("psst, a secret")
    alice.expect_message("Alice", "psst, a secret")
    bob_dm = bob.page.locator('[data-testid="conv-item"][data-conv="user:alice"]')
    expect(bob_dm).to_contain_text("@ Alice")
    expect(bob_dm.locator(".badge-unread")).to_have_text("1")
    bob_dm.get_by_role("button").click()
    bob.expect_message("Alice", "psst, a secret")
    bob.send("got it")
    alice.expect_message("Bob", "got it")
    expect(
        bob.page.locator('[data-testid="conv-item"][data-conv="user:alice"] .badge-unread')
    ).to_have_count(0)

    # The server's 400 texts reach the person.
    alice.create_room(room)
    expect(alice.page.get_by_test_id("notice")).to_be_visible()
    # "Could not create the room: " followed by the server's own reason.
    expect(alice.page.get_by_test_id("notice-text")).to_have_text(
        re.compile(r"^Could not create the room: \S")
    )
    alice.page.get_by_role("button", name="Dismiss message").click()
    expect(alice.page.get_by_test_id("notice")).to_be_hidden()
    alice.page.get_by_role("button", name=f"Open room {room}", exact=True).click()
    too_long = "x" * 10_241
    alice.send(too_long)
    expect(alice.page.get_by_test_id("notice-text")).to_have_text(
        re.compile(r"^Message not sent: \S")
    )
    expect(alice.page.get_by_test_id("composer-input")).to_have_value(too_long)  # kept for a retry
    alice.page.get_by_test_id("composer-input").fill("")

    # Leaving: Bob's room closes, Alice's member list shrinks, the count follows.
    bob.page.get_by_role("button", name=f"Open room {room}", exact=True).click()
    bob.page.get_by_test_id("leave-room").click()
    expect(bob.page.get_by_role("button", name=f"Join room {room}", exact=True)).to_be_visible()
    alice.expect_members(["Alice"])
    expect(alice.page.get_by_text("Bob left", exact=True)).to_be_visible()
    expect(alice.room_count(room)).to_have_text("1")

    for person in (alice, bob):
        person.check_clean()
        person.close()


@pytest.fixture
def quick_ping_node() -> Iterator[Node]:
    """A node that notices a silent client within 3 s. An offline browser context may
    never deliver the websocket's close frame; on the default 25 s ping the server would
    then keep the session longer than the test waits for the member list to change."""
    require_browser_tools()
    n = Node(free_port(), ["--ping-interval", "1", "--ping-timeout", "2"])
    n.start()
    try:
        yield n
    finally:
        n.stop()


def test_reconnect_after_lost_connection(browser: Any, quick_ping_node: Node) -> None:
    """Drop Alice's connection and keep her offline while Bob talks; she must come back,
    rejoin, and show exactly what she missed, once."""
    from playwright.sync_api import expect

    node = quick_ping_node
    alice, bob = Person(browser, node), Person(browser, node)
    for person in (alice, bob):
        person.open()
    alice.login("alice", "Alice")
    bob.login("bob", "Bob")
    alice.create_room("ops")
    alice.join("ops")
    bob.page.get_by_role("button", name="Refresh the room list").click()
    bob.join("ops")
    alice.send("before the outage")
    bob.expect_message("Alice", "before the outage")

    # Offline blocks the reconnect attempts; closing the engine drops the live link.
    alice.context.set_offline(True)
    alice.page.evaluate("window.dinoDemo.state.socket.io.engine.close()")
    alice.expect_status(r"^reconnecting…")
    expect(alice.page.get_by_test_id("composer-input")).to_be_disabled()
    bob.expect_members(["Bob"])  # the server noticed her leave
    bob.send("missed one")
    bob.send("missed two")
    # More than a join returns (50), so only `history since` can fill the gap.
    bob.page.evaluate("""async () => {
        const socket = window.dinoDemo.state.socket;
        const room = [...window.dinoDemo.state.convs.values()].find(c => c.kind === 'room');
        for (let i = 1; i <= 60; i++) {
            await socket.timeout(5000).emitWithAck('message', {
                verb: 'send', target: {id: room.id}, object: {content: 'bulk ' + i}});
        }
    }""")
    alice.context.set_offline(False)

    alice.expect_status(r"^reconnected, rejoined 1 room$")
    alice.expect_message("Bob", "missed one")
    alice.expect_message("Bob", "missed two")
    alice.expect_message("Alice", "before the outage")  # once, although join repeats it
    alice.expect_message("Bob", "bulk 60")
    # Every entry from seq 1 on, once and in order: join history plus catch-up.
    seqs = alice.shown_messages().evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    assert seqs == list(range(1, 64)), seqs
    alice.expect_members(["Alice", "Bob"])
    bob.expect_members(["Alice", "Bob"])

    alice.send("back again")
    bob.expect_message("Alice", "back again")
    expect(alice.page.get_by_test_id("room-gone")).to_have_count(0)
    for person in (alice, bob):
        person.check_clean()
        person.close()


def test_node_restart(browser: Any, node: Node) -> None:
    """Kill the node and start a fresh one on the same port: the pages reconnect on
    their own, say the room is gone (the in-memory store is empty), and chat again in a
    new room."""
    from playwright.sync_api import expect

    out = artifacts_dir()
    alice, bob = Person(browser, node), Person(browser, node)
    for person in (alice, bob):
        person.open()
    alice.login("alice", "Alice")
    bob.login("bob", "Bob")
    alice.create_room("general")
    alice.join("general")
    bob.page.get_by_role("button", name="Refresh the room list").click()
    bob.join("general")
    alice.send("before the restart")
    bob.expect_message("Alice", "before the restart")

    node.stop(crash=True)
    for person in (alice, bob):
        person.expect_status(r"^reconnecting…")
    alice.page.screenshot(path=str(out / "demo-reconnecting.png"))
    node.start()

    for person in (alice, bob):
        person.expect_status(r"^reconnected, rejoined 0 rooms \(1 no longer available\)$")
        expect(person.page.get_by_test_id("room-gone")).to_be_visible()
        expect(person.page.get_by_test_id("composer")).to_be_hidden()
        person.expect_message("Alice", "before the restart")  # what she had stays readable
    alice.page.screenshot(path=str(out / "demo-room-gone.png"))

    alice.page.get_by_role("button", name="Close", exact=True).click()
    alice.create_room("general")
    alice.join("general")
    bob.page.get_by_role("button", name="Refresh the room list").click()
    bob.join("general")
    bob.send("hello again")
    alice.expect_message("Bob", "hello again")
    for person in (alice, bob):
        person.check_clean()
        person.close()


def test_unread_badges_read_marks_and_status(browser: Any, node: Node) -> None:
    """Direct messages sent while Bob was never online show as an unread badge when he
    logs in (the server's conversations); opening them marks them read, and Alice sees
    read marks; Bob's status (away) shows as his dot, and in Alice's member list."""
    from playwright.sync_api import expect

    alice, bob = Person(browser, node), Person(browser, node)
    alice.open()
    alice.login("alice", "Alice")
    alice.page.get_by_label("User id to message").fill("bob")
    alice.page.get_by_role("button", name="Open", exact=True).click()
    expect(alice.page.get_by_test_id("conv-title")).to_have_text("Direct: bob")
    alice.send("are you there?")
    alice.send("hello?")
    alice.expect_message("Alice", "hello?")
    expect(alice.message("hello?").get_by_test_id("read-mark")).to_be_hidden()

    bob.open()
    bob.login("bob", "Bob")
    item = bob.page.locator('[data-testid="conv-item"][data-conv="user:alice"]')
    expect(item.locator(".badge-unread")).to_have_text("2")
    item.get_by_role("button").click()
    bob.expect_message("Alice", "are you there?")
    expect(item.locator(".badge-unread")).to_have_count(0)
    for text in ("are you there?", "hello?"):
        expect(alice.message(text).get_by_test_id("read-mark")).to_be_visible()
    bob.send("here!")
    alice.expect_message("Bob", "here!")  # Alice has the conversation open: read at once
    expect(bob.message("here!").get_by_test_id("read-mark")).to_be_visible()

    alice.create_room("lounge")
    alice.join("lounge")
    bob.page.get_by_role("button", name="Refresh the room list").click()
    bob.join("lounge")
    bob.page.get_by_test_id("status-select").select_option("away")
    expect(bob.page.get_by_test_id("status-dot")).to_have_attribute("data-status", "away")
    alice.page.get_by_role("button", name="Open room lounge", exact=True).click()
    bob_item = alice.page.locator('[data-testid="member"][data-user-id="bob"]')
    expect(bob_item.get_by_test_id("member-status")).to_have_attribute("data-status", "away")
    alice.page.screenshot(path=str(artifacts_dir() / "demo-status-read.png"))
    for person in (alice, bob):
        person.check_clean()
        person.close()


def test_jwt_login(browser: Any) -> None:
    """On a `--auth jwt` node the token field is what counts: the page sends it in the
    socket.io auth payload and shows who the server says we are; a bad token is refused
    with the server's reason."""
    import jwt
    from playwright.sync_api import expect

    secret = "demo-test-secret-of-at-least-32-bytes"
    node = Node(free_port(), ["--auth", "jwt", "--jwt-secret", secret])
    node.start()
    try:
        token = jwt.encode(
            {
                "sub": "dana",
                "name": "Dana",
                "attributes": {"city": "Oslo"},
                "exp": int(time.time()) + 3600,  # required by default (--jwt-require-exp)
            },
            secret,
            algorithm="HS256",
        )
        dana = Person(browser, node)
        dana.open()
        dana.page.get_by_label("Token", exact=False).fill(token)
        dana.page.get_by_role("button", name="Log in", exact=True).click()
        dana.expect_status(r"^connected$")
        expect(dana.page.get_by_test_id("whoami")).to_have_text("Dana (dana)")
        dana.create_room("tokens only")
        dana.join("tokens only")
        dana.send("signed in with a token")
        dana.expect_message("Dana", "signed in with a token")

        forger = Person(browser, node)
        forger.open()
        forger.page.get_by_label("User id", exact=True).fill("dana")
        forger.page.get_by_label("Token", exact=False).fill(
            jwt.encode(
                {"sub": "dana", "exp": int(time.time()) + 3600},
                "not-the-secret-but-also-32-bytes-long",
                algorithm="HS256",
            )
        )
        forger.page.get_by_role("button", name="Log in", exact=True).click()
        expect(forger.page.get_by_test_id("notice-text")).to_have_text(
            re.compile(r"^Login failed: \S")
        )
        expect(forger.page.get_by_test_id("login-form")).to_be_visible()
        forger.expect_status(r"^not connected$")
        for person in (dana, forger):
            person.check_clean()
            person.close()
    finally:
        node.stop()


def test_fractional_ping_settings_on_the_default_transport_order(browser: Any) -> None:
    """socket.io's JS client starts on long-polling and upgrades. With a fractional ping
    interval the polling handshake used to say ``pingInterval: 0`` and the client dropped
    with "ping timeout" over and over. Here it stays on one connection through many
    ping rounds and keeps chatting."""
    node = Node(free_port(), ["--ping-interval", "0.3", "--ping-timeout", "0.2"])
    node.start()
    try:
        alice = Person(browser, node)
        alice.open()
        alice.login("alice", "Alice")
        alice.create_room("quick pings")
        alice.join("quick pings")
        time.sleep(3)  # ten ping intervals
        alice.expect_status(r"^connected$")
        alice.send("still here")
        alice.expect_message("Alice", "still here")
        assert len(alice.websockets) == 1, alice.websockets  # upgraded once, never dropped
        assert "ping timeout" not in node.log_tail(200)
        alice.check_clean()
        alice.close()
    finally:
        node.stop()
