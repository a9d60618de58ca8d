"""The demo page (static/demo/) in real headless Chromium against a real node process.

Two people in two browser contexts log in, create and join a room, chat, see each other
come and go, exchange a direct message, and see the server's error texts. Markup in a
message must arrive as text. Then the connection is dropped (the page must reconnect,
rejoin and catch up what it missed) and the node is killed and restarted (the page must
reconnect and say that the room is gone, since an in-memory node forgets its rooms).

Screenshots land in tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest

from tests.browser_fixtures import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Node,
    artifacts_dir,
    free_port,
    require_browser_tools,
)

XSS = "<img src=x onerror=alert(1)>"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser_tools()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


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
        self.page.on("websocket", lambda ws: self._check_url(ws.url))

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _check_url(self, url: str) -> None:
        """The page may talk to its own node only: no CDN, no fonts, nothing outside."""
        host = f"127.0.0.1:{self.node.port}"
        if not (url.startswith(f"http://{host}/") or url.startswith(f"ws://{host}/")
                or url.startswith("data:")):
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
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_test_id("conn-status")).to_have_text("connected")
        expect(page.get_by_test_id("whoami")).to_have_text(f"{name} ({user_id})")

    def create_room(self, name: str) -> None:
        self.page.get_by_label("New room name").fill(name)
        self.page.get_by_role("button", name="Create").click()

    def join(self, room: str) -> None:
        from playwright.sync_api import expect

        self.page.get_by_role("button", name=f"Join room {room}", exact=True).click()
        expect(self.page.get_by_test_id("conv-title")).to_have_text(f"# {room}")
        expect(self.page.get_by_role("button", name=f"Open room {room}", exact=True)).to_be_visible()

    def send(self, text: str) -> None:
        self.page.get_by_test_id("composer-input").fill(text)
        self.page.get_by_role("button", name="Send").click()

    # -- what is on screen ---------------------------------------------------------

    def shown_messages(self) -> Any:
        return self.page.locator('[data-testid="message-list"]:not([hidden]) [data-testid="message"]')

    def message(self, text: str) -> Any:
        """The visible message whose text is exactly `text`."""
        return self.shown_messages().filter(
            has=self.page.get_by_test_id("message-text").get_by_text(text, exact=True))

    def expect_message(self, sender: str, text: str) -> None:
        from playwright.sync_api import expect

        msg = self.message(text)
        expect(msg).to_have_count(1)
        expect(msg.get_by_test_id("message-sender")).to_have_text(sender)
        # The time is shown next to the name (hh:mm in the browser's locale).
        expect(msg.locator("time")).to_have_text(re.compile(r"\d"))

    def expect_members(self, names: list[str]) -> None:
        from playwright.sync_api import expect

        expect(self.page.get_by_test_id("member").locator(".member-name")).to_have_text(sorted(names))
        expect(self.page.get_by_test_id("member-count")).to_have_text(str(len(names)))

    def expect_status(self, pattern: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.get_by_test_id("conn-status")).to_have_text(re.compile(pattern))

    def room_count(self, room: str) -> Any:
        item = self.page.get_by_test_id("room-item").filter(
            has=self.page.get_by_test_id("room-name").get_by_text(room, exact=True))
        return item.get_by_test_id("room-count")

    def check_clean(self) -> None:
        assert self.dialogs == [], f"a dialog fired: {self.dialogs}"
        assert self.page_errors == [], f"script errors: {self.page_errors}"
        assert self.foreign == [], f"requests outside the node: {self.foreign}"

    def close(self) -> None:
        self.context.close()


def test_two_people_chat(browser: Any, node: Node) -> None:
    from playwright.sync_api import expect

    out = artifacts_dir()
    alice, bob = Person(browser, node), Person(browser, node)
    for person in (alice, bob):
        person.open()
    alice.login("alice", "Alice", city="Shanghai", age="31")
    # Markup in a display name is text too.
    bob.login("bob", "Bob <b>B</b>", city="Beijing", age="27")

    room = "Lobby <i>1</i>"
    alice.create_room(room)
    expect(alice.page.get_by_role("button", name=f"Join room {room}", exact=True)).to_be_visible()
    expect(alice.room_count(room)).to_have_text("0")

    alice.join(room)
    alice.expect_members(["Alice"])
    bob.page.get_by_role("button", name="Refresh the room list").click()
    bob.join(room)
    bob.expect_members(["Alice", "Bob <b>B</b>"])
    # Alice's list grows from gn_user_joined, and the room list shows the count.
    alice.expect_members(["Alice", "Bob <b>B</b>"])
    expect(alice.room_count(room)).to_have_text("2")

    alice.send("Hello Bob!")
    bob.expect_message("Alice", "Hello Bob!")
    alice.expect_message("Alice", "Hello Bob!")  # once: the ack and the echo are merged
    bob.send("Hi Alice, how is Shanghai?")
    alice.expect_message("Bob <b>B</b>", "Hi Alice, how is Shanghai?")

    # Markup in a message is shown literally and runs nothing.
    bob.send(XSS)
    alice.expect_message("Bob <b>B</b>", XSS)
    bob.expect_message("Bob <b>B</b>", XSS)
    for person in (alice, bob):
        expect(person.page.locator('[data-testid="message-list"] img')).to_have_count(0)
        expect(person.page.locator("#room-list i, #member-list b, .msg-sender b")).to_have_count(0)
    alice.send("Looks like plain text to me.")
    bob.expect_message("Alice", "Looks like plain text to me.")
    alice.page.screenshot(path=str(out / "demo-chat.png"))

    # A third person on a phone-sized window gets the history on join.
    carol = Person(browser, node, viewport={"width": 390, "height": 844})
    carol.open()
    carol.page.screenshot(path=str(out / "demo-login-phone.png"), full_page=True)
    carol.login("carol", "Carol")
    carol.join(room)
    carol.expect_message("Alice", "Hello Bob!")
    carol.expect_message("Bob <b>B</b>", XSS)
    carol.expect_members(["Alice", "Bob <b>B</b>", "Carol"])
    alice.expect_members(["Alice", "Bob <b>B</b>", "Carol"])
    carol.page.screenshot(path=str(out / "demo-chat-phone.png"), full_page=True)
    carol.check_clean()
    carol.close()  # closing the tab disconnects: the others see her leave
    alice.expect_members(["Alice", "Bob <b>B</b>"])
    expect(alice.page.get_by_text("Carol left", exact=True)).to_be_visible()

    # A direct message, opened from the member list.
    alice.page.get_by_role("button", name="Send a direct message to Bob <b>B</b>").click()
    expect(alice.page.get_by_test_id("conv-title")).to_have_text("Direct: Bob <b>B</b>")
    alice.send("psst, a secret")
    alice.expect_message("Alice", "psst, a secret")
    bob_dm = bob.page.locator('[data-testid="conv-item"][data-conv="user:alice"]')
    expect(bob_dm).to_contain_text("@ Alice")
    expect(bob_dm.locator(".badge-unread")).to_have_text("1")
    bob_dm.get_by_role("button").click()
    bob.expect_message("Alice", "psst, a secret")
    bob.send("got it")
    alice.expect_message("Bob <b>B</b>", "got it")
    expect(bob.page.locator('[data-testid="conv-item"][data-conv="user:alice"] .badge-unread')).to_have_count(0)

    # The server's 400 texts reach the person.
    alice.create_room(room)
    expect(alice.page.get_by_test_id("notice")).to_be_visible()
    expect(alice.page.get_by_test_id("notice")).to_contain_text("Could not create the room:")
    alice.page.get_by_role("button", name="Dismiss message").click()
    expect(alice.page.get_by_test_id("notice")).to_be_hidden()
    alice.page.get_by_role("button", name=f"Open room {room}", exact=True).click()
    too_long = "x" * 10_241
    alice.send(too_long)
    expect(alice.page.get_by_test_id("notice")).to_contain_text("Message not sent:")
    expect(alice.page.get_by_test_id("composer-input")).to_have_value(too_long)  # kept for a retry
    alice.page.get_by_test_id("composer-input").fill("")

    # Leaving: Bob's room closes, Alice's member list shrinks, the count follows.
    bob.page.get_by_role("button", name=f"Open room {room}", exact=True).click()
    bob.page.get_by_test_id("leave-room").click()
    expect(bob.page.get_by_role("button", name=f"Join room {room}", exact=True)).to_be_visible()
    alice.expect_members(["Alice"])
    expect(alice.page.get_by_text("Bob <b>B</b> left", exact=True)).to_be_visible()
    expect(alice.room_count(room)).to_have_text("1")

    for person in (alice, bob):
        person.check_clean()
        person.close()


def test_reconnect_after_lost_connection(browser: Any, node: Node) -> None:
    """Drop Alice's connection and keep her offline while Bob talks; she must come back,
    rejoin, and show exactly what she missed, once."""
    from playwright.sync_api import expect

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
    bob.expect_members(["Bob"])  # the server noticed her leave
    bob.send("missed one")
    bob.send("missed two")
    alice.context.set_offline(False)

    alice.expect_status(r"^reconnected, rejoined 1 room$")
    alice.expect_message("Bob", "missed one")
    alice.expect_message("Bob", "missed two")
    alice.expect_message("Alice", "before the outage")  # once, although join repeats it
    seqs = alice.shown_messages().evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), seqs
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

    alice.page.get_by_role("button", name="Close").click()
    alice.create_room("general")
    alice.join("general")
    bob.page.get_by_role("button", name="Refresh the room list").click()
    bob.join("general")
    bob.send("hello again")
    alice.expect_message("Bob", "hello again")
    for person in (alice, bob):
        person.check_clean()
        person.close()
