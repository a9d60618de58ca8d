"""Two dino nodes on one Redis vs. on a 3-master Redis Cluster, under the same load.

For each backend, starts a fresh throwaway Redis (one ``redis-server``, or a cluster of
three masters without replicas: ``tests/redis_cluster_fixture.py``), two dino nodes on it,
and two load tools at once, each driving its own half of the rooms on its own node (so a
node has members in its own rooms only). Measures:

- Redis CPU per message, in all and per shard (utime+stime of each redis-server from
  /proc over the run), and messages per Redis CPU-second;
- what each shard received: commands (``INFO commandstats``) and network bytes in/out;
- what each node received from pub/sub (``/health`` ``published``): with interest routing
  and sharded pub/sub, a node receives its own rooms' messages (and their presence
  events) and nothing else; a third node with no clients receives nothing;
- the load tools' verdicts (lost / duplicated / out of order).

    python benchmarks/redis_cluster.py [--rate 500] [--duration 10] [--rooms 200]

Results: BENCHMARKS.md, "Redis Cluster".
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers
from loadtest.procstat import ProcSample
from tests.redis_cluster_fixture import running_redis_cluster
from tests.redis_fixture import free_port

IDLE_SECONDS = 4.0


@dataclass
class Shard:
    port: int
    pid: int


@contextlib.contextmanager
def single_redis() -> Iterator[tuple[list[str], list[Shard]]]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            with contextlib.suppress(redis.exceptions.ConnectionError):
                client.ping()
                break
            time.sleep(0.05)
        yield ["--redis-url", f"redis://127.0.0.1:{port}/0"], [Shard(port, process.pid)]
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def three_master_cluster() -> Iterator[tuple[list[str], list[Shard]]]:
    with running_redis_cluster(masters=3, replicas=0) as cluster:
        shards = [Shard(port, cluster.processes[port].pid) for port in cluster.ports]
        yield ["--redis-cluster-nodes", cluster.nodes], shards


def shard_counters(port: int) -> dict[str, float]:
    client = redis.Redis(port=port, decode_responses=True)
    stats, commands = client.info("stats"), client.info("commandstats")
    client.close()
    counters = {
        "net_in": float(stats["total_net_input_bytes"]),
        "net_out": float(stats["total_net_output_bytes"]),
    }
    for name in ("evalsha", "spublish", "publish", "zrangebyscore", "hgetall"):
        counters[name] = float(commands.get(f"cmdstat_{name}", {}).get("calls", 0))
    return counters


def published(node: servers.Server) -> int:
    with urllib.request.urlopen(node.url + "/health", timeout=10) as response:
        return int(json.load(response)["published"])


class Sampler:
    """Samples each shard's CPU every 0.25 s in a thread, to cut out the sending phase."""

    def __init__(self, shards: list[Shard]) -> None:
        self.shards = shards
        self.samples: list[tuple[float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self.samples.append((now, {s.port: ProcSample.read(s.pid).cpu_s for s in self.shards}))
            self._stop.wait(0.25)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, start: float, end: float) -> dict[int, float]:
        def at(moment: float) -> dict[int, float]:
            return min(self.samples, key=lambda sample: abs(sample[0] - moment))[1]

        first, last = at(start), at(end)
        return {port: last[port] - first[port] for port in first}


def sent_at(timeline: list[dict[str, Any]], t: float) -> float:
    """Messages a load tool had sent ``t`` seconds after it started (interpolated)."""
    points = [(p["t"], p["sent"]) for p in timeline]
    for (t0, s0), (t1, s1) in itertools.pairwise(points):
        if t0 <= t <= t1:
            return float(s0 + (s1 - s0) * (t - t0) / (t1 - t0))
    return float(points[-1][1] if t > points[-1][0] else 0)


def run(name: str, backend: contextlib.AbstractContextManager[tuple[list[str], list[Shard]]],
        args: argparse.Namespace) -> None:  # fmt: skip
    with backend as (redis_args, shards):
        prefix = f"bench{uuid.uuid4().hex[:8]}:"
        logs = Path(tempfile.mkdtemp(prefix=f"dino-{name}-"))
        options = [*redis_args, "--redis-prefix", prefix]
        # Node C serves no client: with interest routing it receives nothing.
        nodes = [servers.start_dino(logs, f"node{x}", *options) for x in "ABC"]
        try:
            half = args.rooms // 2
            sampler = Sampler(shards)
            idle_from = time.monotonic()
            time.sleep(IDLE_SECONDS)  # three idle nodes: each shard's fixed cost
            idle = sampler.cpu_between(idle_from, time.monotonic())
            counters0 = {s.port: shard_counters(s.port) for s in shards}
            published0 = [published(node) for node in nodes]
            tools = []
            started = time.monotonic()
            for i, node in enumerate(nodes[:2]):
                out = logs / f"tool{i}.json"
                command = [sys.executable, "-m", "loadtest", "chat", "--url", node.url,
                           "--server-pid", str(node.pid), "--rooms", str(half),
                           "--members", str(args.members), "--senders", str(half),
                           "--rate", str(args.rate / 2), "--duration", str(args.duration),
                           "--run-id", f"{name}{i}", "--quiet", "--json", str(out)]  # fmt: skip
                tools.append((subprocess.Popen(command, cwd=servers.REPO), out))
            for tool, _ in tools:
                tool.wait()
            sampler.stop()
            counters = {
                s.port: {k: v - counters0[s.port][k] for k, v in shard_counters(s.port).items()}
                for s in shards
            }
            received = [
                published(node) - before for node, before in zip(nodes, published0, strict=True)
            ]
        finally:
            for node in nodes:
                node.stop()
    results = [json.loads(out.read_text()) for _, out in tools]
    # The sending phase of both tools (they run at once): Redis CPU per message there,
    # without the connects, logins and joins of the setup.
    measuring = [[p["t"] for p in r["timeline"] if p["phase"] == "measure"] for r in results]
    window = (max(m[0] for m in measuring), min(m[-1] for m in measuring))
    in_window = sum(
        sent_at(r["timeline"], window[1]) - sent_at(r["timeline"], window[0]) for r in results
    )
    cpu = sampler.cpu_between(started + window[0], started + window[1])
    sent = sum(r["traffic"]["send_ok"] for r in results)
    deliveries = sum(r["traffic"]["deliveries"] for r in results)
    problems = sum(r["seq"]["lost"] + r["seq"]["duplicates"] + r["seq"]["out_of_order"]
                   for r in results)  # fmt: skip
    node_cpu = [r["server"]["cpu_us_per_message"] for r in results]
    redis_cpu = sum(cpu.values())
    seconds = window[1] - window[0]
    idle_cpu = sum(idle.values()) / IDLE_SECONDS * seconds  # of the same duration
    print(f"\n== {name}: {sent} messages, {deliveries} deliveries, lost+dup+reordered "
          f"{problems}")  # fmt: skip
    print(f"sending phase ({window[1] - window[0]:.1f} s, {in_window:.0f} messages): Redis CPU "
          f"{redis_cpu:.2f} s = {redis_cpu / in_window * 1e6:.1f} µs per message, "
          f"{in_window / redis_cpu:,.0f} messages per Redis CPU-second; of that, idle cost "
          f"(cron, cluster bus, heartbeats) {idle_cpu:.2f} s, so per message "
          f"{(redis_cpu - idle_cpu) / in_window * 1e6:.1f} µs beyond idle")  # fmt: skip
    print(
        "node CPU µs per message, its 10 deliveries included (sending phase): "
        + ", ".join(f"{c:.0f}" for c in node_cpu)
    )
    for i, count in enumerate(received):
        own = results[i]["traffic"]["send_ok"] if i < 2 else 0
        print(f"node{'ABC'[i]} received {count} pub/sub messages; its own rooms' messages: "
              f"{own} (the rest: its rooms' join events)")  # fmt: skip
    for s in shards:
        c = counters[s.port]
        print(f"shard {s.port}: sending-phase CPU {cpu[s.port]:.2f} s "
              f"({cpu[s.port] / in_window * 1e6:.1f} µs per message in all); whole run: "
              f"evalsha {c['evalsha']:.0f}, spublish {c['spublish']:.0f}, publish "
              f"{c['publish']:.0f}, net in {c['net_in'] / 1e6:.1f} MB, "
              f"out {c['net_out'] / 1e6:.1f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="messages/s in all")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rooms", type=int, default=200, help="rooms in all (half per node)")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--only", choices=("redis", "cluster"), help="run one backend")
    args = parser.parse_args()
    if args.only != "cluster":
        run("one Redis", single_redis(), args)
    if args.only != "redis":
        run("3-master cluster", three_master_cluster(), args)


if __name__ == "__main__":
    main()
