"""Event stream drill: kill -9 of the forwarding node and a RabbitMQ kill -9 + restart while
messages flow; a consumer bound to the exchange must receive every event at least once,
each log in order. Also measures the forwarder's throughput to RabbitMQ.

Runs real parts only: a redis-server (AOF, fsync always), two ``python run.py`` nodes with
``--events-amqp-url`` (lease 2 s), a throwaway ``rabbitmq-server`` on its own ports (the
machine's broker on 5672 is left alone), python-socketio clients, and an aio-pika
consumer on a durable queue bound with ``dino.#``.

    python benchmarks/events_drill.py drill [--messages 2000] [--rate 100]
    python benchmarks/events_drill.py throughput [--events 20000]

``tests/test_events_drill.py`` runs a short drill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster_fixtures import ChatClient, Cluster, DinoNode, wait_until
from tests.rabbitmq_fixture import EventConsumer, RabbitMQServer

EXCHANGE = "dino.events"
# The clients here send faster than a browser may (--max-events-per-second 50).
UNLIMITED = ["--max-events-per-second", "100000", "--max-event-burst", "100000"]


@dataclass
class DrillReport:
    acknowledged: int = 0  # messages answered 200 (stored): each must reach the consumer
    failed_sends: int = 0  # sends to the killed node that got no answer (not stored, or not known)
    events_received: int = 0
    duplicates: int = 0  # events received more than once (same id)
    missing: int = 0  # acknowledged messages never received
    order_violations: int = 0  # first arrivals of a log's events out of seq order
    logs: int = 0
    killed_node: str = ""
    # The survivor purged the killed node's user: its leave and offline events arrived.
    purge_events: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check(received: list[dict[str, Any]], acked_ids: set[str], report: DrillReport) -> None:
    seen: set[str] = set()
    last_seq: dict[str, int] = {}
    message_ids: set[str] = set()
    for event in received:
        if event["id"] in seen:
            report.duplicates += 1
            continue
        seen.add(event["id"])
        if event["type"] != "message":
            continue
        message_ids.add(event["object"]["id"])
        log, seq = event["log"], event["seq"]
        if seq <= last_seq.get(log, 0):
            report.order_violations += 1
        last_seq[log] = seq
    report.events_received = len(received)
    report.missing = len(acked_ids - message_ids)
    report.logs = len(last_seq)


async def active_forwarder(nodes: list[DinoNode], timeout: float = 15.0) -> DinoNode:
    found: list[DinoNode] = []

    def probe() -> bool:
        found[:] = [n for n in nodes if n.alive and n.health()["events"]["amqp"]["active"]]
        return bool(found)

    await wait_until(probe, timeout, "a node forwarding events", interval=0.1)
    return found[0]


async def drill(messages: int, rate: float, *, log: bool = True) -> DrillReport:
    """Sends ``messages`` at ``rate``/s from clients on two nodes (one room, and a direct
    conversation); at a third, kill -9 of the forwarding node; at two thirds, kill -9 of
    RabbitMQ, started again in the background while sends go on."""
    report = DrillReport()
    workdir = Path(tempfile.mkdtemp(prefix="dino-events-drill-"))
    rabbit = RabbitMQServer(workdir)
    cluster = Cluster(2, with_nginx=False, lease_ttl=2.0, heartbeat_interval=0.5)
    consumer = EventConsumer(rabbit.url, EXCHANGE, "drill")
    clients: list[ChatClient] = []
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, rabbit.start)
        await consumer.start()  # the queue exists before the first event is published
        for node in cluster.nodes.values():
            node.args += ["--events-amqp-url", rabbit.url, "--events-amqp-exchange", EXCHANGE]
            node.args += UNLIMITED
        await loop.run_in_executor(None, cluster.start)
        nodes = list(cluster.nodes.values())
        forwarding = await active_forwarder(nodes)
        report.killed_node = forwarding.node_id
        by_node: dict[str, ChatClient] = {}
        for i, node in enumerate(nodes):
            client = ChatClient(f"user{i}", "127.0.0.1", reconnection=False)
            await client.connect(node.url)
            await client.login()
            clients.append(client)
            by_node[node.node_id] = client
        room = await clients[0].create_room("drill")
        for client in clients:
            await client.join(room)
        acked: set[str] = set()
        restart: asyncio.Future[None] | None = None
        start = time.monotonic()
        for i in range(messages):
            if i == messages // 3:
                forwarding.kill()
                if log:
                    print(f"[{time.monotonic() - start:5.1f}s] kill -9 {forwarding.node_id}")
            if i == 2 * messages // 3:
                rabbit.kill()
                if log:
                    print(f"[{time.monotonic() - start:5.1f}s] kill -9 RabbitMQ; restarting")
                restart = loop.run_in_executor(None, rabbit.start)
            live = [c for n, c in by_node.items() if cluster.nodes[n].alive]
            sender = live[i % len(live)]
            other = "user0" if sender.user == "user1" else "user1"
            if i % 5 == 4:  # a direct conversation too: a second log
                payload = {"verb": "send", "target": {"objectType": "user", "id": other},
                           "object": {"content": f"d{i}"}}  # fmt: skip
                reply_task = sender.call("message", payload, timeout=5)
            else:
                reply_task = sender.send(room, f"m{i}", timeout=5)
            try:
                reply = await reply_task
            except Exception:
                report.failed_sends += 1
                continue
            if reply.get("status_code") == 200:
                acked.add(reply["data"]["id"])
            else:
                report.failed_sends += 1
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        report.acknowledged = len(acked)
        if restart is not None:
            await restart
            if log:
                print(f"[{time.monotonic() - start:5.1f}s] RabbitMQ is back")

        def all_in() -> bool:
            ids = {e["object"]["id"] for e in consumer.received if e["type"] == "message"}
            return acked <= ids

        try:
            await wait_until(all_in, 90.0, "every acknowledged message at the consumer", 0.2)
        except AssertionError as exc:
            report.notes.append(str(exc))
            for node in nodes:
                if node.alive:
                    report.notes.append(f"{node.node_id}: {node.health()['events']}")
        await asyncio.sleep(1.0)  # late duplicates, if any, are counted too
        killed_user = by_node[forwarding.node_id].user

        def purged() -> bool:
            report.purge_events = [
                e["type"]
                for e in consumer.received
                if e["type"] in ("leave", "offline")
                and e["actor"]["id"] == killed_user
                and e["node"] != forwarding.node_id
            ]
            return "offline" in report.purge_events

        with contextlib.suppress(AssertionError):
            await wait_until(purged, 30.0, "the purge's events", 0.2)
        check(list(consumer.received), acked, report)
        return report
    finally:
        for client in clients:
            await client.close()
        await consumer.close()
        cluster.close()
        rabbit.kill()
        shutil.rmtree(workdir, ignore_errors=True)


async def throughput(events: int) -> dict[str, float]:
    """Events/s the forwarder moves from Redis to RabbitMQ (confirmed), for a backlog of
    ``events`` messages written while forwarding was held off (broker down)."""
    workdir = Path(tempfile.mkdtemp(prefix="dino-events-tput-"))
    rabbit = RabbitMQServer(workdir)
    cluster = Cluster(1, with_nginx=False, lease_ttl=4.0, heartbeat_interval=1.0)
    consumer = EventConsumer(rabbit.url, EXCHANGE, "tput")
    loop = asyncio.get_running_loop()
    client = ChatClient("writer", "127.0.0.1", reconnection=False)
    try:
        await loop.run_in_executor(None, rabbit.start)
        await consumer.start()
        await consumer.close()  # the durable queue stays bound and collects
        rabbit.stop()
        node = next(iter(cluster.nodes.values()))
        node.args += ["--events-amqp-url", rabbit.url, "--events-amqp-exchange", EXCHANGE,
                      "--events-maxlen", str(events * 2), *UNLIMITED]  # fmt: skip
        await loop.run_in_executor(None, cluster.start)
        await client.connect(node.url)
        await client.login()
        room = await client.create_room("tput")
        await client.join(room)
        pending = [client.send(room, f"m{i}") for i in range(events)]
        for batch_start in range(0, len(pending), 200):
            await asyncio.gather(*pending[batch_start : batch_start + 200])

        def forwarder() -> dict[str, Any]:
            stats: dict[str, Any] = node.health()["events"]["amqp"]
            return stats

        before = forwarder()["forwarded"]
        await loop.run_in_executor(None, rabbit.start)
        # Timed from the first confirmed batch (the forwarder retries with a backoff).
        await wait_until(lambda: forwarder()["forwarded"] > before, 60.0, "forwarding", 0.01)
        started, first = time.monotonic(), forwarder()["forwarded"]
        await wait_until(lambda: forwarder()["backlog"] == 0, 300.0, "the backlog to drain", 0.05)
        seconds = time.monotonic() - started
        forwarded = forwarder()["forwarded"] - first
        return {"events": forwarded, "seconds": round(seconds, 2),
                "events_per_second": round(forwarded / seconds)}  # fmt: skip
    finally:
        await client.close()
        cluster.close()
        rabbit.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    d = sub.add_parser("drill")
    d.add_argument("--messages", type=int, default=2000)
    d.add_argument("--rate", type=float, default=100.0)
    t = sub.add_parser("throughput")
    t.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    if args.what == "drill":
        report = asyncio.run(drill(args.messages, args.rate))
        print(json.dumps(asdict(report), indent=2))
        bad = report.missing or report.order_violations or report.notes
        sys.exit(1 if bad else 0)
    print(json.dumps(asyncio.run(throughput(args.events)), indent=2))


if __name__ == "__main__":
    main()
