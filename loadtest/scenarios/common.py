"""Setup steps shared by the room scenarios: log in, create rooms, join them."""

from __future__ import annotations

from loadtest import ops
from loadtest.client import SioClient
from loadtest.harness import Harness, Receiver


def user_id(h: Harness, kind: str, index: int) -> str:
    # The run id keeps users, rooms and conversations of different runs apart,
    # which matters when a Redis-backed cluster remembers them between runs.
    return f"{h.cfg.run_id}-{kind}{index}"


async def connect_and_login(h: Harness, client: SioClient, index: int, name: str) -> None:
    await h.connect(client, index)
    await h.step("login", ops.login(client, name, name, h.cfg.timeout))


async def create_rooms(h: Harness, owners: list[SioClient], count: int) -> list[str | None]:
    """Room r is created by ``owners[r % len(owners)]``; None where it failed."""
    ids: list[str | None] = [None] * count

    async def create(r: int) -> None:
        owner = owners[r % len(owners)]
        if not owner.connected:
            h.steps["create"].skip()
            return
        name = f"{h.cfg.run_id}-room-{r}"
        ids[r] = await h.step("create", ops.create_room(owner, name, h.cfg.timeout))

    await h.run_many(count, create, ramp_up=0.0)
    return ids


async def join_room(
    h: Harness, client: SioClient, receiver: Receiver, key: int, room_id: str | None
) -> bool:
    """Join and start accounting for the room from its join-history baseline."""
    if room_id is None or not client.connected:
        h.steps["join"].skip()
        return False
    baseline = await h.step("join", ops.join(client, room_id, h.cfg.timeout))
    receiver.trackers[key] = h.ledger.tracker(key, baseline)
    return True
