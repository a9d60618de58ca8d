"""api: a backend POSTs notifications to logged-in users over the HTTP API.

U users connect over socket.io and log in (receivers only). The tool then calls
``POST /api/v1/messages`` at ``rate`` calls per second through a small pool of
keep-alive connections, each call to one user (``target``), or with
--targets-per-call T to T users at once (``targets``). Users are split into
fixed groups of T and calls go round-robin over the groups, so every user of a
group receives exactly the group's calls.

Every notification is a message from one backend actor to one user, stored in
that pair's conversation log; the log's ``seq`` (1, 2, 3... in a fresh run) checks
that each user got every notification once, in order. The 201 reply carries the
stored seq of every target, which is the final seq a user must reach. Latency is
from the moment the call was due (written into the content, so time a request
waits for a free connection counts) to the ``message`` event on the user's socket.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest import payload
from loadtest.client import ClientError, SioClient
from loadtest.harness import Harness, Receiver
from loadtest.httpclient import HttpPool, HttpResponse, request_head
from loadtest.scenarios.common import connect_and_login, user_id
from loadtest.ws import new_read_buffer

API_KEY_ENV = "DINO_API_KEY"
MESSAGES_PATH = "/api/v1/messages"
MAX_TARGETS_PER_CALL = 1000  # the API's own limit


@dataclass(frozen=True, slots=True)
class ApiConfig:
    users: int = 100
    rate: float = 1000.0  # calls per second
    duration: float = 10.0
    targets_per_call: int = 1
    connections: int = 8
    message_size: int = 0
    # Never written into results: see loadtest.report.
    api_key: str = field(default="", repr=False, metadata={"secret": True})

    def validate(self) -> None:
        if self.users < 1 or self.connections < 1:
            raise ValueError("--users and --connections must be at least 1")
        if not 1 <= self.targets_per_call <= MAX_TARGETS_PER_CALL:
            raise ValueError(f"--targets-per-call must be between 1 and {MAX_TARGETS_PER_CALL}")
        if self.users % self.targets_per_call:
            raise ValueError("--users must be a multiple of --targets-per-call")
        if self.rate <= 0 or self.duration <= 0:
            raise ValueError("--rate and --duration must be positive")
        if not self.api_key:
            raise ValueError(f"an API key is required: --api-key KEY or ${API_KEY_ENV}")

    @staticmethod
    def key_from_env() -> str:
        return os.environ.get(API_KEY_ENV, "")


@dataclass(slots=True)
class Notifications:
    """Outcome of the calls, by HTTP status and in notifications (targets)."""

    accepted: int = 0  # targets of calls answered 201
    statuses: Counter[int] = field(default_factory=Counter)
    first_due_ns: int = 0
    last_accepted_ns: int = 0

    def per_second(self) -> float:
        span = (self.last_accepted_ns - self.first_due_ns) / 1e9
        return round(self.accepted / span, 1) if span > 0 else 0.0


def call_body(actor: str, users: list[str], content: str) -> bytes:
    obj = {"content": content}
    if len(users) == 1:
        return orjson.dumps(
            {
                "actor": {"id": actor},
                "target": {"objectType": "user", "id": users[0]},
                "object": obj,
            }
        )
    targets = [{"objectType": "user", "id": u} for u in users]
    return orjson.dumps({"actor": {"id": actor}, "targets": targets, "object": obj})


def stored_items(body: Any) -> list[Any]:
    """The stored activities of a 201 reply: one, or ``items`` for ``targets``."""
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return list(body["items"])
    return [body]


def error_text(response: HttpResponse) -> str:
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return response.body[:80].decode("utf-8", "replace")
    message = body.get("error") if isinstance(body, dict) else body
    return f"{message!s:.80}"


async def run(h: Harness, cfg: ApiConfig) -> None:
    per_call = cfg.targets_per_call
    groups = cfg.users // per_call
    names = [user_id(h, "u", i) for i in range(cfg.users)]
    index_of = {name: i for i, name in enumerate(names)}
    clients: list[SioClient] = []
    for i in range(cfg.users):
        rx = Receiver(h.traffic, h.latency.window)
        # The content says the group (the call's key); the log is this user's own
        # conversation with the backend, which starts at seq 1 in a fresh run.
        rx.trackers[i // per_call] = h.ledger.tracker(i, 0)
        clients.append(h.new_client(rx.on_message))
    h.clients = clients

    async def setup(i: int) -> None:
        await connect_and_login(h, clients[i], i, names[i])

    await h.run_many(cfg.users, setup)
    ready = [
        g
        for g in range(groups)
        if all(clients[i].connected for i in range(g * per_call, (g + 1) * per_call))
    ]
    h.extra["groups_ready"] = len(ready)
    if not ready:
        raise ClientError("no user group is fully logged in")

    # HTTP connections take the client indexes after the users', so with several
    # --url they spread over the nodes like the users do.
    pool = HttpPool(
        cfg.connections, lambda i: h.target(cfg.users + i), h.cfg.timeout, new_read_buffer(65536)
    )

    async def connect(i: int) -> None:
        await h.step("http connect", pool.connect(i))

    await h.run_many(cfg.connections, connect, ramp_up=0.0)
    if not pool.connections:
        raise ClientError("no HTTP connection to the API could be opened")

    actor = f"{h.cfg.run_id}-backend"
    head = request_head(
        "POST",
        MESSAGES_PATH,
        {"Authorization": f"Bearer {cfg.api_key}", "Content-Type": "application/json"},
    )
    tr = h.traffic
    ledger = h.ledger
    ack_window = h.ack_latency.window
    outcome = Notifications()

    def answered(response: HttpResponse | None, error: str | None) -> None:
        now = time.time_ns()
        if response is None:
            tr.send_failed += 1
            tr.send_errors[f"no response: {error}"] += 1
            return
        outcome.statuses[response.status] += 1
        if response.status != 201:
            tr.send_failed += 1
            tr.send_errors[f"{response.status}: {error_text(response)}"] += 1
            return
        try:
            items = stored_items(orjson.loads(response.body))
        except orjson.JSONDecodeError:
            items = []
        if not items:
            tr.send_failed += 1
            tr.send_errors["201 without a stored activity"] += 1
            return
        sent_ns = 0
        for item in items:
            d = payload.activity_delivery(item)
            target_id = item.get("target", {}).get("id") if isinstance(item, dict) else None
            user = index_of.get(target_id) if isinstance(target_id, str) else None
            if d is None or user is None:
                tr.send_failed += 1
                tr.send_errors["201 without seq, content or a known target"] += 1
                return
            ledger.acked(user, d.seq)
            sent_ns = d.sent_ns
        tr.send_ok += 1
        outcome.accepted += len(items)
        outcome.last_accepted_ns = now
        ack_window.append(now - sent_ns)

    def send(k: int) -> None:
        g = ready[k % len(ready)]
        content = h.content(g, cfg.message_size)
        if not outcome.first_due_ns:
            outcome.first_due_ns = tr.first_send_ns
        body = call_body(actor, names[g * per_call : (g + 1) * per_call], content)
        pool.submit(head, body, answered)

    h.start_measure()
    try:
        await h.pace(cfg.rate, cfg.duration, send)
        h.extra["drain_s"] = round(await h.drain(h.deliveries_settled), 3)
        h.end_measure()
    finally:
        await pool.close()
    h.extra.update(
        {
            "notifications_accepted": outcome.accepted,
            "notifications_per_s": outcome.per_second(),
            "expected_notifications_per_s": cfg.rate * per_call,
            "http_status": dict(sorted(outcome.statuses.items())),
            "http_connections": cfg.connections,
            "http_connections_lost": pool.lost_connections,
            "http_peak_waiting": pool.peak_waiting,
        }
    )
    if pool.reconnect_failures:
        h.extra["http_reconnect_failures"] = len(pool.reconnect_failures)
    await h.close_all()
