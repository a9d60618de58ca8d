"""storm: N clients connect, log in and join as fast as they can.

What a node sees when another node dies and its users reconnect to the
survivors all at once. The rooms (of --room-size) are created first by one
owner each; then every client runs connect -> login -> join back to back, at
most --concurrency at once. Reported: joins per second over the storm, each
client's time from its connect to its join answer (step ``joined``: p50/p99),
and the server CPU per connect+login+join (the owners' setup is excluded).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from loadtest.client import SioClient
from loadtest.harness import Harness, Receiver
from loadtest.scenarios.common import connect_and_login, create_rooms, join_room, user_id


@dataclass(frozen=True, slots=True)
class StormConfig:
    clients: int = 1000
    room_size: int = 10

    def validate(self) -> None:
        if self.clients < 1 or self.room_size < 1:
            raise ValueError("--clients and --room-size must be at least 1")


async def run(h: Harness, cfg: StormConfig) -> None:
    rooms = math.ceil(cfg.clients / cfg.room_size)
    owners = [h.new_client() for _ in range(rooms)]

    async def setup_owner(r: int) -> None:
        await connect_and_login(h, owners[r], r, user_id(h, "owner", r))

    await h.run_many(rooms, setup_owner, ramp_up=0.0)
    room_ids = await create_rooms(h, owners, rooms)

    clients: list[SioClient] = []
    receivers: list[Receiver] = []
    for _ in range(cfg.clients):
        rx = Receiver(h.traffic, h.latency.window)
        receivers.append(rx)
        clients.append(h.new_client(rx.on_message))
    h.clients = owners + clients
    joined = h.steps["joined"]

    async def storm(i: int) -> None:
        started = time.perf_counter()
        await connect_and_login(h, clients[i], rooms + i, user_id(h, "s", i))
        r = i // cfg.room_size
        if await join_room(h, clients[i], receivers[i], r, room_ids[r]):
            joined.record(started, time.perf_counter())

    h.start_measure()
    started = time.perf_counter()
    await h.run_many(cfg.clients, storm)
    storm_s = time.perf_counter() - started
    h.end_measure()
    ok = joined.ok
    h.extra.update(
        {
            "rooms": rooms,
            "storm_s": round(storm_s, 3),
            "joined": ok,
            "joins_per_s": round(ok / storm_s, 1) if storm_s > 0 else None,
            # Includes the gn_user_joined each join pushes to the room's earlier members.
            "server_cpu_us_per_connect_login_join": (
                round(h.server_cpu_measured / ok * 1e6) if ok and h.server.procs else None
            ),
        }
    )
    await h.close_all()
