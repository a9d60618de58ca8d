"""Cross-node vs same-node delivery latency of room messages in a real two-node cluster.

Starts redis-server (AOF, --appendfsync everysec unless --fsync says otherwise) and two
dino nodes (nodeA, nodeB) on loopback, with the parts of tests/cluster_fixtures.py.
One sender and one receiver are on nodeA, one receiver on nodeB (websocket clients,
straight to the nodes, no nginx), all in one room. The sender emits ``--count``
messages, one every ``--interval`` seconds; for each, latency = arrival time at a
receiver - the time just before the emit (one process, one monotonic clock).

    python benchmarks/cross_node_latency.py [--count 500] [--interval 0.005]

Note that every room message goes through Redis on both paths: the append script
publishes it, and the sender's own node receives it from Redis pub/sub like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster_fixtures import NAMESPACE, ChatClient, Cluster, wait_until


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(count: int, interval: float, fsync: str) -> dict[str, list[float]]:
    cluster = Cluster(2, with_nginx=False, lease_ttl=8, heartbeat_interval=2, redis_fsync=fsync)
    clients: list[ChatClient] = []
    try:
        cluster.start()
        node_a, node_b = cluster.nodes["nodeA"], cluster.nodes["nodeB"]
        sender = ChatClient("sender", "127.0.0.2")
        same = ChatClient("same-node", "127.0.0.3")
        cross = ChatClient("cross-node", "127.0.0.4")
        clients = [sender, same, cross]
        for client, node in ((sender, node_a), (same, node_a), (cross, node_b)):
            await client.connect(node.url)
            await client.login()
        room = await sender.create_room("latency")
        for client in clients:
            await client.join(room)

        warmup = 20
        sent_at: dict[str, float] = {}
        for i in range(warmup + count):
            content = f"m{i}"
            payload = {"verb": "send", "target": {"id": room}, "object": {"content": content}}
            sent_at[content] = time.monotonic()
            await sender.sio.emit("message", payload, namespace=NAMESPACE)
            await asyncio.sleep(interval)
        total = warmup + count
        await wait_until(
            lambda: all(len(c.room_messages(room)) >= total for c in (same, cross)),
            30,
            "every message at both receivers",
        )
        results: dict[str, list[float]] = {}
        for label, client in (("same node (A -> A)", same), ("cross node (A -> B)", cross)):
            latencies = [
                (arrived - sent_at[m["object"]["content"]]) * 1000
                for arrived, m in client.messages[warmup:]
            ]
            results[label] = latencies
        return results
    finally:
        for client in clients:
            await client.close()
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="messages measured")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between sends")
    parser.add_argument(
        "--fsync",
        default="everysec",
        choices=["always", "everysec", "no"],
        help="redis-server --appendfsync",
    )
    args = parser.parse_args()
    results = asyncio.run(measure(args.count, args.interval, args.fsync))
    print(
        f"{args.count} messages, one every {args.interval * 1000:g} ms, "
        f"redis appendfsync {args.fsync}; latency in ms"
    )
    print(f"{'path':<22}{'median':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for label, values in results.items():
        print(
            f"{label:<22}{statistics.median(values):>9.2f}{percentile(values, 90):>9.2f}"
            f"{percentile(values, 99):>9.2f}{max(values):>9.2f}"
        )


if __name__ == "__main__":
    main()
