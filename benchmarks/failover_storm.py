"""The failover storm: when a node dies, how long until its users are back and caught up?

Starts redis-server (AOF, ``appendfsync always``), three dino nodes and nginx in front
(``tests/cluster_fixtures.py``) and connects ``--clients`` official socket.io clients
through nginx (websocket, from 80 loopback source addresses, so nginx's consistent hash
spreads them over the nodes), each in one room of ``--room-size`` and in a direct
conversation with the next client, each sending a message every ``--interval`` seconds
on average (``benchmarks/chaos.py``'s client). Then the node holding the most sessions
is killed with SIGKILL and stays down: its clients reconnect by themselves (socket.io's
backoff), nginx sends them to the survivors, and each logs in with every log it shows
(``resume`` inside ``login``), so the reply to that login comes after the replay of what
it missed.

Reported: how many clients the killed node held; for them, the time from the kill until
each was back and caught up (its login answered), as p50/p99/max and until the last one;
the survivors' CPU during the storm; and, after the senders stop and deliveries settle,
every client's view of every log compared with the log in Redis (lost, duplicated,
reordered). Exits 1 if a client never came back or anything was lost, duplicated or
reordered.

    python benchmarks/failover_storm.py [--clients 1500] [--room-size 10] [--interval 5]

The clients run in this one Python process: at a few thousand clients, the reconnect
time also holds this process's own CPU (it logs every client in again on one core).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.chaos import ChaosClient, Counts, count_lines, create_rooms, settle, verify
from loadtest.procstat import ProcSample, raise_fd_limit
from tests.cluster_fixtures import SOURCE_ADDRESSES, Cluster, http_get_json


@dataclass
class Storm:
    counts: Counts
    killed: str = ""
    held: int = 0  # sessions on the killed node just before the kill
    moved: int = 0  # clients that lost their connection
    back: list[float] = field(default_factory=list)  # seconds from the kill, per client
    connected: list[float] = field(default_factory=list)  # ... to its socket.io connect
    never_back: int = 0
    survivors_cpu: float = 0.0  # CPU seconds of the surviving nodes during the storm
    tool_cpu: float = 0.0  # CPU seconds of this process (all the clients) meanwhile

    @property
    def failed(self) -> bool:
        return self.never_back > 0 or self.counts.failed


QUANTILES = (("p50", 50.0), ("p99", 99.0), ("max", 100.0))


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[max(1, math.ceil(len(sorted_values) * p / 100.0)) - 1]


def cpu_seconds(pids: list[int]) -> float:
    return sum(ProcSample.read(pid).cpu_s for pid in pids)


def fullest_node(cluster: Cluster) -> tuple[str, int]:
    held = {
        name: int(http_get_json(node.url + "/health")["sessions"])
        for name, node in cluster.nodes.items()
    }
    name = max(held, key=lambda n: held[n])
    return name, held[name]


async def kill_and_wait(
    cluster: Cluster, clients: list[ChaosClient], storm: Storm, timeout: float
) -> None:
    storm.killed, storm.held = fullest_node(cluster)
    survivors = [n.proc.pid for name, n in cluster.nodes.items() if name != storm.killed and n.proc]
    cpu_before = cpu_seconds(survivors)
    tool_before = time.process_time()
    killed_at = time.monotonic()
    cluster.nodes[storm.killed].kill()
    # Everyone the dead node held notices (socket.io's ping timeout at worst), then is back.
    deadline = killed_at + timeout
    while time.monotonic() < deadline:
        moved = [c for c in clients if c.lost_at is not None and c.lost_at >= killed_at]
        pending = [c for c in moved if c.ready_at is None or c.ready_at < c.lost_at]
        last_loss = max((c.lost_at for c in moved if c.lost_at is not None), default=killed_at)
        if moved and not pending and time.monotonic() - last_loss > 1:
            break
        await asyncio.sleep(0.1)
    storm.survivors_cpu = cpu_seconds(survivors) - cpu_before
    storm.tool_cpu = time.process_time() - tool_before
    moved = [c for c in clients if c.lost_at is not None and c.lost_at >= killed_at]
    storm.moved = len(moved)
    for c in moved:
        if c.ready_at is not None and c.lost_at is not None and c.ready_at >= c.lost_at:
            storm.back.append(c.ready_at - killed_at)
            assert c.connected_at is not None
            storm.connected.append(c.connected_at - killed_at)
        else:
            storm.never_back += 1


async def run(options: argparse.Namespace) -> Storm:
    storm = Storm(Counts(clients=options.clients))
    cluster = Cluster(3, lease_ttl=options.lease_ttl, heartbeat_interval=1, redis_fsync="always")
    clients: list[ChaosClient] = []
    try:
        cluster.start()
        n = options.clients
        room_count = max(1, n // options.room_size)
        rooms = await create_rooms(cluster.url, room_count)
        users = [f"u{i:05d}" for i in range(n)]
        for i, user in enumerate(users):
            ip = SOURCE_ADDRESSES[i % len(SOURCE_ADDRESSES)]
            room = rooms[i // options.room_size % room_count]
            clients.append(
                ChaosClient(user, ip, cluster.url, [room], users[(i - 1) % n], users[(i + 1) % n])
            )
        for batch in range(0, n, 50):
            await asyncio.gather(*(c.start() for c in clients[batch : batch + 50]))
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 300)
        stop = asyncio.Event()
        senders = [asyncio.create_task(c.send_forever(options.interval, stop)) for c in clients]
        await asyncio.sleep(options.warmup)
        await kill_and_wait(cluster, clients, storm, options.timeout)
        await asyncio.sleep(options.after)  # the survivors carry everyone for a while
        stop.set()
        await asyncio.gather(*senders)
        await settle(clients)
        await verify(cluster, clients, storm.counts)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        cluster.close()
    return storm


def report(storm: Storm, options: argparse.Namespace) -> str:
    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        ordered = sorted(values)
        return "  ".join(f"{name} {percentile(ordered, q):.2f}" for name, q in QUANTILES)

    return "\n".join(
        [
            f"failover storm: {options.clients} clients through nginx onto 3 nodes, rooms of "
            f"{options.room_size} + direct conversations, a message per client every "
            f"~{options.interval:g} s; lease ttl {options.lease_ttl:g} s; Redis AOF always",
            f"kill -9 {storm.killed}, which held {storm.held} sessions; "
            f"{storm.moved} clients lost their connection",
            f"connected again (socket.io connect through nginx), seconds after the kill: "
            f"{spread(storm.connected)}",
            f"back and caught up (login with resume answered), seconds after the kill: "
            f"{spread(storm.back)}  (never back: {storm.never_back})",
            f"survivors' CPU from the kill until everyone was back: "
            f"{storm.survivors_cpu:.2f} s (the ongoing traffic included); the clients' "
            f"process: {storm.tool_cpu:.2f} s",
            *count_lines(storm.counts),
            "RESULT: " + ("FAIL" if storm.failed else "OK"),
        ]
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1500)
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between sends")
    parser.add_argument("--lease-ttl", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the kill")
    parser.add_argument(
        "--after", type=float, default=5.0, help="seconds of traffic after everyone is back"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the killed node's clients"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    raise_fd_limit(4 * options.clients + 1000)  # the clients, and the nodes started from here
    storm = asyncio.run(run(options))
    print(report(storm, options))
    return 1 if storm.failed else 0


if __name__ == "__main__":
    sys.exit(main())
