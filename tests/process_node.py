"""A node as its own process (``python run.py``), for tests that measure what an attack
costs it: resident memory and CPU time from ``/proc``, and the size of its log.

An in-process node shares the test's memory and CPU; a process of its own is measured
alone, and can be given its own limits (``nofile``: the open-file limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.browser_fixtures import free_port

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


class ProcessNode:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS for the node")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(
            self.url + "/health", timeout=aiohttp.ClientTimeout(10)
        ) as reply:
            data: dict[str, Any] = await reply.json()
            return data


@contextlib.asynccontextmanager
async def process_node(
    tmp_path: Path, *args: str, nofile: int | None = None
) -> AsyncIterator[ProcessNode]:
    port = free_port()
    log_path = tmp_path / f"node-{port}.log"

    def limit_files() -> None:
        if nofile is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "run.py", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=limit_files,
        )
    node = ProcessNode(proc, port, log_path)
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(f"the node exited:\n{node.log_text()[-2000:]}")
            with contextlib.suppress(OSError, asyncio.TimeoutError, aiohttp.ClientError):
                await node.health()
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the node did not serve:\n{node.log_text()[-2000:]}")
        yield node
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
