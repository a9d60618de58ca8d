"""Memory and CPU of idle long-polling clients: N sessions connected to /chat and logged
in, each keeping one GET pending (as socket.io's JS client does on its default
transport), answering pings. Reports the node's resident memory per session and its CPU
per second while they idle.

    python benchmarks/polling_idle.py [--sessions 400] [--seconds 20] [--repo PATH]
        [--node-args '--max-connections-per-address 2000']

``--repo`` runs ``run.py`` from another checkout (for a before/after comparison). All
sessions come from 127.0.0.1: above 500, lift ``--max-connections-per-address``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def session(http: aiohttp.ClientSession, url: str, user: str, stop: asyncio.Event) -> None:
    async with http.get(url + "?EIO=4&transport=polling") as reply:
        sid = json.loads((await reply.text())[1:])["sid"]
    base = f"{url}?EIO=4&transport=polling&sid={sid}"
    login = "40/chat,\x1e42/chat," + json.dumps(["login", {"actor": {"id": user}}])
    async with http.post(base, data=login) as reply:
        await reply.read()
    while not stop.is_set():
        async with http.get(base) as reply:
            text = await reply.text()
            if reply.status != 200:
                return
        if "2" in text.split("\x1e"):
            async with http.post(base, data="3") as reply:
                await reply.read()


async def measure(sessions: int, seconds: float, repo: Path, node_args: list[str]) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "WARNING", *node_args],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/socket.io/"
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/health") as reply:
                        await reply.read()
                        break
                await asyncio.sleep(0.1)
            base = rss_mib(proc.pid)
            stop = asyncio.Event()
            tasks = []
            for i in range(sessions):
                tasks.append(asyncio.create_task(session(http, url, f"u{i}", stop)))
                if i % 100 == 99:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(3)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            held = rss_mib(proc.pid)
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        per = (held - base) * 1024 / sessions
        print(
            f"{sessions} idle polling sessions: node RSS +{held - base:.1f} MiB "
            f"({per:.1f} KiB per session), CPU {cpu * 100:.1f}% of a core while idle"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument(
        "--node-args", default="", help="extra run.py options, e.g. '--ping-interval 1'"
    )
    args = parser.parse_args()
    asyncio.run(measure(args.sessions, args.seconds, args.repo, args.node_args.split()))


if __name__ == "__main__":
    main()
