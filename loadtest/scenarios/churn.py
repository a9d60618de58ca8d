"""churn: connect + login + join + leave + disconnect cycles at a given rate.

Cycles start on a fixed schedule whether or not earlier ones finished (an open
model: a slow server sees cycles pile up, as with real users). At most
--max-inflight run at once; a cycle that cannot start is counted as skipped and
fails the run, since the offered rate was then not applied.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loadtest import ops
from loadtest.client import ClientError
from loadtest.harness import Harness
from loadtest.scenarios.common import connect_and_login, create_rooms, user_id


@dataclass(frozen=True, slots=True)
class ChurnConfig:
    rate: float = 50.0
    duration: float = 10.0
    rooms: int = 10
    max_inflight: int = 1000

    def validate(self) -> None:
        if self.rate <= 0 or self.duration <= 0:
            raise ValueError("--rate and --duration must be positive")
        if self.rooms < 1 or self.max_inflight < 1:
            raise ValueError("--rooms and --max-inflight must be at least 1")


async def run(h: Harness, cfg: ChurnConfig) -> None:
    owner = h.new_client()
    h.clients = [owner]
    await connect_and_login(h, owner, 0, user_id(h, "owner", 0))
    room_ids = [r for r in await create_rooms(h, [owner], cfg.rooms) if r is not None]
    if not room_ids:
        raise ClientError("no room could be created")

    inflight: set[asyncio.Task[None]] = set()
    skipped = 0

    async def cycle(i: int) -> None:
        client = h.new_client()
        room_id = room_ids[i % len(room_ids)]
        started = time.perf_counter()
        try:
            await connect_and_login(h, client, i + 1, user_id(h, "c", i))
            await h.step("join", ops.join(client, room_id, h.cfg.timeout))
            await h.step("leave", ops.leave(client, room_id, h.cfg.timeout))
            await h.step("disconnect", client.close(h.cfg.timeout))
        except ClientError as exc:
            client.abort()
            h.steps["cycle"].record(started, time.perf_counter(), str(exc))
            return
        h.steps["cycle"].record(started, time.perf_counter())

    def start(i: int) -> None:
        nonlocal skipped
        if len(inflight) >= cfg.max_inflight:
            skipped += 1
            return
        task = asyncio.create_task(cycle(i))
        inflight.add(task)
        task.add_done_callback(inflight.discard)

    h.start_measure()
    await h.pace(cfg.rate, cfg.duration, start)

    def settled() -> bool:
        return not inflight

    h.extra["drain_s"] = round(await h.drain(settled), 3)
    h.end_measure()
    h.extra["skipped"] = skipped
    h.extra["unfinished"] = len(inflight)
    for task in list(inflight):
        task.cancel()
    await asyncio.gather(*inflight, return_exceptions=True)
    await h.close_all()
