"""chat: R rooms of K members; S of them send, together ``rate`` messages/s.

Every member (senders included) must receive every message of its room once, in
seq order, so the expected delivery rate is rate x K. Client i is member
i % K of room i // K, so with several --url a room's members are spread over
the nodes and fan-out crosses the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtest import ops
from loadtest.client import ClientError, SioClient
from loadtest.harness import Harness, Receiver
from loadtest.scenarios.common import connect_and_login, create_rooms, join_room, user_id


@dataclass(frozen=True, slots=True)
class ChatConfig:
    rooms: int = 1
    members: int = 200
    senders: int = 20
    rate: float = 100.0
    duration: float = 10.0
    message_size: int = 0

    def validate(self) -> None:
        if self.rooms < 1 or self.members < 1:
            raise ValueError("--rooms and --members must be at least 1")
        if not 1 <= self.senders <= self.rooms * self.members:
            raise ValueError("--senders must be between 1 and rooms x members")
        if self.rate <= 0 or self.duration <= 0:
            raise ValueError("--rate and --duration must be positive")


def sender_index(cfg: ChatConfig, s: int) -> int:
    """Client index of sender s: senders go round-robin over the rooms."""
    room = s % cfg.rooms
    member = (s // cfg.rooms) % cfg.members
    return room * cfg.members + member


async def run(h: Harness, cfg: ChatConfig) -> None:
    n = cfg.rooms * cfg.members
    sender_of = {sender_index(cfg, s): s for s in range(cfg.senders)}
    on_sent = h.sender_events()
    clients: list[SioClient] = []
    receivers: list[Receiver] = []
    for i in range(n):
        rx = Receiver(h.traffic, h.latency.window)
        receivers.append(rx)
        clients.append(h.new_client(rx.on_message, on_sent if i in sender_of else None))
    h.clients = clients

    async def setup(i: int) -> None:
        await connect_and_login(h, clients[i], i, user_id(h, "u", i))

    await h.run_many(n, setup)
    owners = [clients[r * cfg.members] for r in range(cfg.rooms)]
    room_ids = await create_rooms(h, owners, cfg.rooms)

    async def join(i: int) -> None:
        r = i // cfg.members
        await join_room(h, clients[i], receivers[i], r, room_ids[r])

    await h.run_many(n, join, ramp_up=0.0)

    senders: list[tuple[SioClient, str, int]] = []
    for i in sorted(sender_of):
        r = i // cfg.members
        room_id = room_ids[r]
        if room_id is not None and r in receivers[i].trackers:
            senders.append((clients[i], room_id, r))
    h.extra["senders_ready"] = len(senders)
    if not senders:
        raise ClientError("no sender could join its room")

    def send(k: int) -> None:
        client, room_id, r = senders[k % len(senders)]
        ops.send_to_room(client, room_id, h.content(r, cfg.message_size))

    h.start_measure()
    await h.pace(cfg.rate, cfg.duration, send)
    h.extra["drain_s"] = round(await h.drain(h.deliveries_settled), 3)
    h.end_measure()
    h.extra["expected_deliveries_per_s"] = cfg.rate * cfg.members
    await h.close_all()
