"""/metrics: the counts change as a scripted sequence of events says they must.

Counts only, never timings: a histogram is checked by how many observations it holds.
Every test runs on both stores (the ``backend`` fixture).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from tests.node_fixtures import RunningNode

pytest_plugins = ["tests.node_fixtures"]


class Scrape:
    """One /metrics page: ``value(name, **labels)`` of a sample, 0 if absent."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def label_values(self, label: str) -> set[str]:
        return {v for _, labels in self.samples for k, v in labels if k == label}


async def scrape(node: RunningNode) -> Scrape:
    async with aiohttp.ClientSession() as http, http.get(node.url + "/metrics") as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=")
        return Scrape(await reply.text())


async def test_a_scripted_session_is_counted(node: RunningNode) -> None:
    before = await scrape(node)
    assert before.value("dino_sessions", transport="websocket") == 0
    assert before.value("dino_users_logged_in") == 0

    alice = await node.client("websocket", user="alice")
    bob = await node.client("polling", user="bob")
    room_id = await alice.create("metrics room")
    await alice.join(room_id)
    await bob.join(room_id)
    for i in range(3):
        assert (await alice.say(room_id, f"hello {i}"))["status_code"] == 200
    await bob.wait_for("message", count=3)
    assert (await alice.call("no_such_event", {}))["status_code"] == 400
    assert (await bob.call("join", {"verb": "join", "target": {"id": "nope"}}))[
        "status_code"
    ] == 400

    after = await scrape(node)
    assert after.value("dino_sessions", transport="websocket") == 1
    assert after.value("dino_sessions", transport="polling") == 1
    assert after.value("dino_connections", transport="websocket") == 1
    assert after.value("dino_connections", transport="polling") == 1
    assert after.value("dino_users_logged_in") == 2
    assert after.value("dino_rooms_local") == 1
    assert after.value("dino_events_total", event="login", status="200") == 2
    assert after.value("dino_events_total", event="create", status="200") == 1
    assert after.value("dino_events_total", event="join", status="200") == 2
    assert after.value("dino_events_total", event="join", status="400") == 1
    assert after.value("dino_events_total", event="message", status="200") == 3
    # The client's own event name is never a label: it is counted as "unknown".
    assert after.value("dino_events_total", event="unknown", status="400") == 1
    assert "no_such_event" not in after.label_values("event")
    assert after.value("dino_messages_published_total") == 3
    # Each message goes to bob (alice's own session gets the reply instead).
    assert after.value("dino_deliveries_total") - before.value("dino_deliveries_total") >= 3
    assert after.value("dino_request_duration_seconds_count", event="message") == 3
    assert after.value("dino_request_duration_seconds_count", event="login") == 2
    assert after.value("dino_fanout_duration_seconds_count") >= 3
    assert after.value("dino_redis_up") == 1
    assert after.value("dino_cluster_peers_alive") == 1
    assert after.value("dino_draining") == 0

    await bob.disconnect()
    await alice.settle()
    gone = await scrape(node)
    assert gone.value("dino_sessions", transport="polling") == 0
    assert gone.value("dino_users_logged_in") <= 2  # alice and the settle probe
    assert gone.value("dino_users_logged_in") >= 1


async def test_no_label_carries_a_room_or_user_id(node: RunningNode) -> None:
    alice = await node.client("websocket", user="alice-5d1f")
    room_id = await alice.create("cardinality")
    await alice.join(room_id)
    await alice.say(room_id, "hi")
    text = await _text(node)
    assert "alice-5d1f" not in text
    assert room_id not in text


async def test_rate_limited_events_are_counted(node_factory) -> None:
    node = await node_factory(max_events_per_second=0.001, max_event_burst=3)
    client = await node.client("websocket", user="flood")  # login: one of the 3
    codes = [(await client.call("list_rooms", {"verb": "list"}))["status_code"] for _ in range(5)]
    # The connection's budget also pays for socket.io's CONNECT packet (the edge).
    refused = codes.count(400)
    assert refused >= 3 and codes[-3:] == [400, 400, 400], codes
    page = await scrape(node)
    assert page.value("dino_rate_limited_events_total") == refused
    assert page.value("dino_events_total", event="list_rooms", status="400") == refused


async def test_metrics_can_be_switched_off(node_factory) -> None:
    node = await node_factory(metrics=False)
    async with aiohttp.ClientSession() as http, http.get(node.url + "/metrics") as reply:
        assert reply.status == 404
    client = await node.client("websocket", user="quiet")  # the node still serves
    assert (await client.call("list_rooms", {"verb": "list"}))["status_code"] == 200


async def _text(node: RunningNode) -> str:
    async with aiohttp.ClientSession() as http, http.get(node.url + "/metrics") as reply:
        return await reply.text()
