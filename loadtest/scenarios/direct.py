"""direct: user-to-user messages, target {objectType: "user", id}.

P pairs; sender k writes only to receiver k, and receivers never write, so each
conversation's seq log holds exactly sender k's messages and receiver k must see
all of them, once, in order. Sender 2k and receiver 2k+1 are adjacent client
indexes, so with two --url they sit on different nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtest import ops
from loadtest.client import SioClient
from loadtest.harness import Harness, Receiver
from loadtest.scenarios.common import connect_and_login, user_id


@dataclass(frozen=True, slots=True)
class DirectConfig:
    pairs: int = 50
    rate: float = 100.0
    duration: float = 10.0
    message_size: int = 0

    def validate(self) -> None:
        if self.pairs < 1:
            raise ValueError("--pairs must be at least 1")
        if self.rate <= 0 or self.duration <= 0:
            raise ValueError("--rate and --duration must be positive")


async def run(h: Harness, cfg: DirectConfig) -> None:
    on_sent = h.sender_events()
    clients: list[SioClient] = []
    receivers: list[Receiver] = []
    for k in range(cfg.pairs):
        rx = Receiver(h.traffic, h.latency.window)
        # A fresh run id means a fresh conversation: its log starts at seq 1.
        rx.trackers[k] = h.ledger.tracker(k, 0)
        receivers.append(rx)
        clients.append(h.new_client(None, on_sent))  # sender 2k
        clients.append(h.new_client(rx.on_message))  # receiver 2k+1
    h.clients = clients

    async def setup(i: int) -> None:
        kind = "s" if i % 2 == 0 else "r"
        await connect_and_login(h, clients[i], i, user_id(h, kind, i // 2))

    await h.run_many(2 * cfg.pairs, setup)
    ready = [
        k for k in range(cfg.pairs) if clients[2 * k].connected and clients[2 * k + 1].connected
    ]
    h.extra["pairs_ready"] = len(ready)

    def send(i: int) -> None:
        k = ready[i % len(ready)]
        ops.send_to_user(clients[2 * k], user_id(h, "r", k), h.content(k, cfg.message_size))

    if ready:
        h.start_measure()
        await h.pace(cfg.rate, cfg.duration, send)
        h.extra["drain_s"] = round(await h.drain(h.deliveries_settled), 3)
        h.end_measure()
    await h.close_all()
