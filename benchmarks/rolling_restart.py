"""Rolling restart drill: 3 nodes behind nginx, clients chatting, each node restarted in turn.

    python benchmarks/rolling_restart.py                       # 60 clients, 20 msg/s
    python benchmarks/rolling_restart.py --clients 30 --rate 10 --pause 3

Every node gets SIGTERM (it drains: its clients are told to reconnect, and nginx sends
them to the other nodes), is started again under the same id, and the next one follows.
Meanwhile senders send room messages and wait for each ack; a message without an ack
(its connection was closed, or it timed out) is sent again after the reconnect, as a
real client would. Clients log in, join and read the history since the last ``seq`` they
saw again after every reconnect.

Reported: messages acknowledged, lost (acknowledged but not in the room's log),
duplicated (one client message stored twice), gaps left in what clients received,
reconnects, and how long clients were away (disconnect to joined again). Real parts
throughout: ``python run.py`` nodes, redis-server, nginx running nginx.conf.example,
python-socketio clients (``tests/cluster_fixtures.py``). The test suite runs a small
version of it (tests/test_rolling_restart.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.cluster_fixtures import SOURCE_ADDRESSES, ChatClient, Cluster

ACK_TIMEOUT = 5.0
PAGE = 500  # the history event's largest page


@dataclasses.dataclass
class DrillReport:
    clients: int
    sent: int  # distinct client messages
    acknowledged: int
    lost: int  # acknowledged, not in the log
    duplicated: int  # client messages stored more than once
    unacknowledged_stored: int  # stored, but the client never got the ack
    gaps: int  # (client, seq) pairs missing from what clients ended up with
    reconnects: int
    away_p50_s: float
    away_max_s: float
    restarts: list[dict[str, Any]]
    duration_s: float

    def lines(self) -> list[str]:
        return [
            f"clients {self.clients}, drill {self.duration_s:.1f} s, "
            f"restarts {[r['node'] for r in self.restarts]}",
            f"messages sent {self.sent}, acknowledged {self.acknowledged}, "
            f"lost {self.lost}, duplicated {self.duplicated}, "
            f"stored without ack {self.unacknowledged_stored}",
            f"gaps left at clients {self.gaps}; reconnects {self.reconnects}; "
            f"time away p50 {self.away_p50_s:.2f} s, max {self.away_max_s:.2f} s",
            "node exits: " + ", ".join(
                f"{r['node']} {r['drain_s']:.2f} s (exit {r['exit_code']})" for r in self.restarts
            ),
        ]


class DrillClient:
    """A cluster ChatClient that logs in, joins and catches up after every (re)connect."""

    def __init__(self, user: str, source_ip: str, room_id: str) -> None:
        self.chat = ChatClient(user, source_ip)
        self.room_id = room_id
        self.seen: dict[int, str] = {}  # seq -> message id
        self.ready = asyncio.Event()
        self.away: list[float] = []
        self._left_at: float | None = None
        self._rejoin: asyncio.Task[None] | None = None
        sio = self.chat.sio
        sio.on("connect", self._on_connect, namespace="/chat")
        sio.on("disconnect", self._on_disconnect, namespace="/chat")
        sio.on("message", self._on_message, namespace="/chat")

    async def _on_connect(self) -> None:
        # Not awaited here: the read loop that would deliver the replies runs this handler.
        self._rejoin = asyncio.create_task(self._join_and_catch_up())

    async def _on_disconnect(self, *_: Any) -> None:
        self.ready.clear()
        self._left_at = time.monotonic()

    async def _on_message(self, data: dict[str, Any]) -> None:
        if data.get("target", {}).get("id") == self.room_id and "seq" in data:
            self.seen[data["seq"]] = data["id"]

    async def _join_and_catch_up(self) -> None:
        while True:
            try:
                await self.chat.login()
                await self.chat.join(self.room_id)
                await self.catch_up()
                break
            except Exception:
                if not self.chat.connected:
                    return  # dropped again: the next connect starts over
                await asyncio.sleep(0.2)  # a timeout or a 500 (node busy): again
        if self._left_at is not None:
            self.away.append(time.monotonic() - self._left_at)
            self._left_at = None
        self.ready.set()

    def contiguous(self) -> int:
        """The highest seq up to which nothing is missing: a live message that arrived
        right after the join may be newer than what was missed while away."""
        seq = 0
        while seq + 1 in self.seen:
            seq += 1
        return seq

    async def catch_up(self) -> None:
        since = self.contiguous()
        while True:
            page = await self.chat.history(self.room_id, since=since, limit=PAGE)
            for entry in page:
                self.seen[entry["seq"]] = entry["id"]
            if len(page) < PAGE:
                return
            since = page[-1]["seq"]

    async def start(self, url: str) -> None:
        await self.chat.connect(url)
        await asyncio.wait_for(self.ready.wait(), 20)


@dataclasses.dataclass
class Sender:
    client: DrillClient
    rate: float  # messages a second
    sent: list[str] = dataclasses.field(default_factory=list)
    acked: set[str] = dataclasses.field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        number = 0
        while not stop.is_set():
            content = f"{self.client.chat.user}-{number}"
            self.sent.append(content)
            number += 1
            while True:
                if await self._send_once(content):
                    self.acked.add(content)
                    break
                if stop.is_set():
                    break  # given up at the end of the drill: counted as not acked
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 / self.rate)

    async def _send_once(self, content: str) -> bool:
        try:
            await asyncio.wait_for(self.client.ready.wait(), 30)
            reply = await self.client.chat.send(self.client.room_id, content, timeout=ACK_TIMEOUT)
        except Exception:
            await asyncio.sleep(0.1)
            return False
        return reply.get("status_code") == 200


async def read_log(client: DrillClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    since = 0
    while True:
        page = await client.chat.history(client.room_id, since=since, limit=PAGE)
        entries.extend(page)
        if len(page) < PAGE:
            return entries
        since = page[-1]["seq"]


async def run_drill(
    cluster: Cluster, clients: int, senders: int, rate: float, pause: float
) -> DrillReport:
    """Restart every node of ``cluster`` in turn under chat load; see the module text."""
    started = time.monotonic()
    if clients > len(SOURCE_ADDRESSES):
        raise ValueError(f"at most {len(SOURCE_ADDRESSES)} clients (one source address each)")
    owner = ChatClient("owner", SOURCE_ADDRESSES[0], reconnection=False)
    await owner.connect(cluster.url)
    await owner.login()
    room_id = await owner.create_room(f"drill-{time.time_ns()}")
    await owner.close()
    members = [DrillClient(f"user{i}", SOURCE_ADDRESSES[i], room_id) for i in range(clients)]
    await asyncio.gather(*(m.start(cluster.url) for m in members))
    stop = asyncio.Event()
    sending = [Sender(m, rate / senders) for m in members[:senders]]
    tasks = [asyncio.create_task(s.run(stop)) for s in sending]
    restarts: list[dict[str, Any]] = []
    try:
        await asyncio.sleep(pause)
        for name, node in cluster.nodes.items():
            assert node.proc is not None
            sigterm_at = time.monotonic()
            await asyncio.to_thread(node.stop)  # SIGTERM, wait for the exit (drain)
            restarts.append({"node": name, "drain_s": time.monotonic() - sigterm_at,
                             "exit_code": node.proc.returncode})
            await asyncio.to_thread(node.start)  # same --node-id; serving again
            await asyncio.sleep(pause)
        # Everyone back and caught up before the books are closed.
        await asyncio.gather(*(asyncio.wait_for(m.ready.wait(), 30) for m in members))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(m.catch_up() for m in members))
    log = await read_log(members[0])
    await asyncio.gather(*(m.chat.close() for m in members))

    stored: dict[str, int] = {}
    for entry in log:
        content = entry["content"]
        stored[content] = stored.get(content, 0) + 1
    acked = set().union(*(s.acked for s in sending))
    sent = [content for s in sending for content in s.sent]
    all_seqs = {entry["seq"] for entry in log}
    away = [a for m in members for a in m.away]
    return DrillReport(
        clients=clients,
        sent=len(sent),
        acknowledged=len(acked),
        lost=sum(1 for content in acked if content not in stored),
        duplicated=sum(count - 1 for count in stored.values() if count > 1),
        unacknowledged_stored=sum(1 for content in sent if content in stored
                                  and content not in acked),
        gaps=sum(len(all_seqs - set(m.seen)) for m in members),
        reconnects=len(away),
        away_p50_s=statistics.median(away) if away else 0.0,
        away_max_s=max(away, default=0.0),
        restarts=restarts,
        duration_s=time.monotonic() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0, help="messages a second in all")
    parser.add_argument("--pause", type=float, default=5.0,
                        help="seconds of chat before, between and after the restarts")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    cluster = Cluster(3, lease_ttl=4.0, heartbeat_interval=1.0)
    try:
        cluster.start()
        report = asyncio.run(run_drill(cluster, args.clients, args.senders, args.rate,
                                       args.pause))
    finally:
        cluster.close()
    print("\n".join(report.lines()))
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(report), indent=2) + "\n")


if __name__ == "__main__":
    main()
