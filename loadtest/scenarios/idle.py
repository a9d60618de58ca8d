"""idle: hold N logged-in connections, each joined to a room, for a duration.

Measures what an idle connection costs the server: RSS growth from before the
first connect to after the last join, divided by the connections held, and the
CPU the server spends just keeping them (engine.io pings); also the server CPU
spent per connect + login + join while setting them up. Connections the server
closes while held count as dropped and fail the run.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from loadtest.client import SioClient
from loadtest.harness import Harness, Receiver
from loadtest.scenarios.common import connect_and_login, create_rooms, join_room, user_id


@dataclass(frozen=True, slots=True)
class IdleConfig:
    clients: int = 1000
    room_size: int = 100
    duration: float = 30.0

    def validate(self) -> None:
        if self.clients < 1 or self.room_size < 1:
            raise ValueError("--clients and --room-size must be at least 1")
        if self.duration < 0:
            raise ValueError("--duration must not be negative")


async def run(h: Harness, cfg: IdleConfig) -> None:
    rooms = math.ceil(cfg.clients / cfg.room_size)
    cpu_before, rss_before = h.server.sample()
    clients: list[SioClient] = []
    receivers: list[Receiver] = []
    for _ in range(cfg.clients):
        rx = Receiver(h.traffic, h.latency.window)
        receivers.append(rx)
        clients.append(h.new_client(rx.on_message))
    h.clients = clients

    async def setup(i: int) -> None:
        await connect_and_login(h, clients[i], i, user_id(h, "u", i))

    await h.run_many(cfg.clients, setup)
    owners = [clients[r * cfg.room_size] for r in range(rooms)]
    room_ids = await create_rooms(h, owners, rooms)

    async def join(i: int) -> None:
        r = i // cfg.room_size
        await join_room(h, clients[i], receivers[i], r, room_ids[r])

    await h.run_many(cfg.clients, join, ramp_up=0.0)

    cpu_setup = h.server.sample()[0] - cpu_before  # connect + login + create + join
    h.start_measure()
    rss_held = h.server.sample()[1]
    held_at_start = h.traffic.connected
    deadline = time.perf_counter() + cfg.duration
    while time.perf_counter() < deadline:
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.perf_counter())))
    h.end_measure()
    rss_end = h.server.sample()[1]
    held = h.traffic.connected
    h.extra.update(
        {
            "rooms": rooms,
            "held_at_start": held_at_start,
            "held_at_end": held,
            "server_rss_before": rss_before,
            "server_rss_held": rss_held,
            "server_rss_end": rss_end,
            "server_rss_per_connection": (
                round((rss_held - rss_before) / held_at_start)
                if held_at_start and rss_before
                else None
            ),
            "pings_answered": sum(c.pings for c in clients),
            # Includes the gn_user_joined each join sends to the room's earlier members.
            "server_cpu_us_per_connect_login_join": (
                round(cpu_setup / cfg.clients * 1e6) if cpu_before else None
            ),
        }
    )
    await h.close_all()
