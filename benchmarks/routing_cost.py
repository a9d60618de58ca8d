"""What interest routing saves: the CPU a node spends on rooms it does not serve.

python-socketio's and socket.io's Redis adapters publish every message on one channel
that every node reads; dino publishes on a channel per room and a node subscribes only
while it has members there. This script measures both models on the same traffic:

- node A (dino, Redis) serves a many-rooms chat load from the load tool;
- node B (dino, same Redis) serves nobody: under interest routing it receives nothing;
- a "broadcast" receiver reads every room's channel (PSUBSCRIBE) and passes each message
  through dino's own receive path (sequence guard, hub lookup) with no local listener,
  which is what every uninterested node would do per message if everything went to
  every node.

    python benchmarks/routing_cost.py [--rate 500] [--duration 10]

Prints the load tool's verdict and the CPU per message of node B and of the broadcast
receiver. Measured on the 2-core machine of BENCHMARKS.md (500 msg/s, 10 s): node B
4 µs per message (its heartbeats), the broadcast receiver 368 µs per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers
from loadtest.procstat import ProcSample

REDIS_URL = os.environ.get("DINO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


async def broadcast_receiver(prefix: str, seconds: float) -> None:
    """Read every room channel and run dino's receive path on it, as a node would."""
    import redis.asyncio as aioredis

    from server.gaps import SequenceGuard
    from server.hub import Hub
    from storage.keys import KeySchema

    hub = Hub(lambda sid, pkt: False, {})
    keys = KeySchema(prefix)

    async def read_missed(channel: str, since: int) -> list[str]:
        return []

    guard = SequenceGuard(hub.deliver, read_missed)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.psubscribe(keys.channel("room:*"))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = await pubsub.get_message(timeout=0.5)
        if message is not None and message["type"] == "pmessage":
            guard.deliver(keys.channel_name(message["channel"]), message["data"])
    await pubsub.aclose()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="messages/s in all")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(broadcast_receiver(args.prefix, args.duration + 15))
        return

    prefix = f"routing{uuid.uuid4().hex[:8]}:"
    logs = Path(tempfile.mkdtemp(prefix="dino-routing-"))
    redis_args = ("--redis-url", REDIS_URL, "--redis-prefix", prefix)
    node_a = servers.start_dino(logs, "nodeA", *redis_args, "--node-id", "nodeA")
    node_b = servers.start_dino(logs, "nodeB", *redis_args, "--node-id", "nodeB")
    receiver = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--receiver",
            "--prefix",
            prefix,
            "--duration",
            str(args.duration),
        ],
    )
    try:
        node_a.wait()
        node_b.wait()
        before = {p: ProcSample.read(p).cpu_s for p in (node_b.pid, receiver.pid)}
        tool = subprocess.run(
            [sys.executable, "-m", "loadtest", "chat", "--url", node_a.url,
             "--server-pid", str(node_a.pid), "--rooms", "200", "--members", "10",
             "--senders", "200", "--rate", str(args.rate), "--duration", str(args.duration),
             "--quiet"],
            cwd=servers.REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        after = {p: ProcSample.read(p).cpu_s for p in (node_b.pid, receiver.pid)}
        messages = args.rate * args.duration
        print(tool.stdout.strip().splitlines()[-1])
        for name, pid in (("node B, interest routing", node_b.pid),
                          ("broadcast receiver", receiver.pid)):  # fmt: skip
            used = after[pid] - before[pid]
            print(f"{name:26s} cpu {used:6.2f} s = {used / messages * 1e6:7.1f} µs per message")
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        node_a.stop()
        node_b.stop()


if __name__ == "__main__":
    main()
