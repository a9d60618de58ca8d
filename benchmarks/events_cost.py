"""CPU cost of the event stream on the send path: the same load with the stream on
(default ``--events-maxlen``) and off (``--events-maxlen 0``), runs alternating.

One dino node (Redis: a private redis-server without persistence; or the in-memory
store), driven by ``python -m loadtest chat`` with many small rooms so the per-message
work (handler, store script, stream) dominates over fan-out:

    python benchmarks/events_cost.py [--backend redis|memory] [--runs 3] [--rate 500]

Reports, per run, node CPU and Redis CPU per sent message over the measured phase
(sending + drain), from the load tool's /proc sampling. The tool is pinned to CPU 0 and
the servers to the other CPUs when there are two or more.

    python benchmarks/events_cost.py --inprocess [--backend redis|memory] [--runs 5]

measures only the core's send path (``core.messages.send``: build, store script, publish)
in this process, as CPU time (``time.process_time``) per message: none of the socket.io
work around it, so the stream's share of it is an upper bound of its share per message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import servers

LOAD = ["chat", "--rooms", "50", "--members", "2", "--senders", "50", "--duration", "10"]


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = servers.free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def one_run(
    backend: str, stream_on: bool, rate: float, redis_url: str | None, redis_pid: int | None,
    workdir: Path, index: int,
) -> dict[str, Any]:  # fmt: skip
    extra = ["--max-events-per-second", "100000", "--max-event-burst", "100000"]
    if redis_url:
        extra += ["--redis-url", redis_url, "--redis-prefix", f"cost{index}:"]
    if not stream_on:
        extra += ["--events-maxlen", "0"]
    elif backend == "memory":  # in memory the stream exists only for a forwarder
        extra += ["--events-file", os.devnull]
    node = servers.start_dino(workdir / "logs", f"node{index}", *extra)
    try:
        cpus = sorted(os.sched_getaffinity(0))
        tool: list[str] = []
        if len(cpus) >= 2:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(node.pid, set(cpus[1:]))
            tool = ["taskset", "-c", str(cpus[0])]
        out = workdir / f"run{index}.json"
        argv = [sys.executable, "-m", "loadtest", *LOAD, "--rate", str(rate), "--url", node.url,
                "--server-pid", str(node.pid), "--json", str(out), "--quiet"]  # fmt: skip
        if redis_pid:
            argv += ["--server-pid", str(redis_pid)]
        subprocess.run(tool + argv, cwd=servers.REPO, timeout=600, check=False)
        result: dict[str, Any] = json.loads(out.read_text())
    finally:
        node.stop()
    sent = result["traffic"]["send_ok"]
    cpu = {p["pid"]: p["cpu_s_measured"] for p in result["server"]["processes"]}
    return {
        "stream": "on" if stream_on else "off",
        "sent": sent,
        "ok": result["ok"],
        "node_us_per_message": round(cpu[node.pid] * 1e6 / sent, 1),
        "redis_us_per_message": round(cpu[redis_pid] * 1e6 / sent, 1) if redis_pid else None,
        "other_load_cores": result["machine"]["other_cores_measured"],
    }


async def inprocess_run(backend: str, redis_url: str | None, stream_on: bool, count: int) -> float:
    """CPU µs of this process per ``core.messages.send`` to a room (the backend's path)."""
    from core import messages, rooms
    from server.node import create_node
    from server.settings import Settings
    from storage.base import Member

    settings = Settings(
        redis_url=redis_url,
        redis_prefix=f"inproc{time.monotonic_ns()}:",
        events_maxlen=100_000 if stream_on else 0,
        # In memory the stream exists only for a forwarder (none runs here: the events
        # stay in the bounded list, which is the store's whole share of the work).
        events_file=os.devnull if stream_on and backend == "memory" else "",
    )
    node = await create_node(settings, "bench")
    try:
        room = await rooms.create(node, "bench", [])
        alice = Member("alice", "Alice")
        target = messages.Target("room", room.id)
        for _ in range(200):  # warm up: scripts loaded, connections open
            await messages.send(node, alice, target, "warm up", None)
        started = time.process_time()
        for i in range(count):
            await messages.send(node, alice, target, f"message number {i}", None)
        return (time.process_time() - started) * 1e6 / count
    finally:
        await node.close()


def inprocess(backend: str, redis_url: str | None, runs: int) -> None:
    import asyncio

    results: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(runs * 2):
        state = "on" if i % 2 == 0 else "off"
        us = asyncio.run(inprocess_run(backend, redis_url, state == "on", 5000))
        results[state].append(us)
        print(json.dumps({"stream": state, "cpu_us_per_send": round(us, 1)}), flush=True)
    on, off = sorted(results["on"]), sorted(results["off"])
    median_on, median_off = on[len(on) // 2], off[len(off) // 2]
    print(f"stream on: {on[0]:.1f}-{on[-1]:.1f} µs per send (median {median_on:.1f})")
    print(f"stream off: {off[0]:.1f}-{off[-1]:.1f} µs per send (median {median_off:.1f})")
    print(f"median increase: {100 * (median_on / median_off - 1):.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("redis", "memory"), default="redis")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating")
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second")
    parser.add_argument("--inprocess", action="store_true", help="the core send path only")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dino-events-cost-"))
    redis_proc = None
    redis_url = None
    try:
        if args.backend == "redis":
            redis_proc, redis_url = start_redis(workdir)
        if args.inprocess:
            inprocess(args.backend, redis_url, args.runs)
            return
        rows = []
        for i in range(args.runs * 2):
            stream_on = i % 2 == 0
            row = one_run(
                args.backend, stream_on, args.rate, redis_url,
                redis_proc.pid if redis_proc else None, workdir, i,
            )  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
        for state in ("on", "off"):
            node = sorted(r["node_us_per_message"] for r in rows if r["stream"] == state)
            line = f"stream {state}: node {node[0]}-{node[-1]} µs/message"
            if args.backend == "redis":
                red = sorted(r["redis_us_per_message"] for r in rows if r["stream"] == state)
                line += f", redis {red[0]}-{red[-1]} µs/message"
            print(line)
    finally:
        if redis_proc is not None:
            redis_proc.kill()
            redis_proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
