"""Start servers under test as child processes: a dino node or a baseline (psio, Node).

Used by benchmarks/run_benchmarks.py and by the load tool's smoke tests. Each
server gets a free port of 127.0.0.1, a raised open-file limit (10,000 idle
clients need 10,000 sockets on the server side too) and a log file; ``wait``
returns once the port accepts connections.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from loadtest.procstat import raise_fd_limit

REPO = Path(__file__).resolve().parent.parent
NOFILE = 65536


def free_port() -> int:
    """A port nobody listens on right now (the OS picks; we release it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    _log_file: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not listen on {self.port} in {timeout}s; see {self.log}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def start(name: str, argv: list[str], log_dir: Path, port: int) -> Server:
    # The child inherits our limit (no preexec_fn: unsafe if the parent has threads).
    raise_fd_limit(NOFILE)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    log_file = open(log, "wb")  # noqa: SIM115 - closed by Server.stop
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    server = Server(name, port, proc, log, log_file)
    server.wait()
    return server


def start_psio(log_dir: Path, name: str = "psio") -> Server:
    port = free_port()
    argv = [sys.executable, "benchmarks/psio_server.py", "--port", str(port)]
    return start(name, argv, log_dir, port)


NODE_DIR = REPO / "benchmarks" / "node"


def start_node(log_dir: Path, name: str = "node") -> Server:
    """The Node socket.io 4.8 baseline (benchmarks/node/server.js).

    Its dependencies are installed (``npm install``, from package-lock.json) the
    first time, when benchmarks/node/node_modules is missing.
    """
    if not (NODE_DIR / "node_modules").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            stdin=subprocess.DEVNULL,
        )
    port = free_port()
    argv = ["node", "benchmarks/node/server.js", "--port", str(port)]
    return start(name, argv, log_dir, port)


def start_dino(log_dir: Path, name: str = "dino", *extra: str) -> Server:
    """A dino node; ``extra`` adds options such as --redis-url."""
    port = free_port()
    argv = [
        sys.executable,
        "run.py",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--node-id",
        name,
        # access logs at INFO would cost the server a log line per request
        "--log-level",
        "WARNING",
        # Every load-tool client comes from 127.0.0.1, and a few users create many rooms
        # or write to many users: the per-address cap and the per-user quotas are for
        # hostile clients, not for a benchmark.
        "--max-connections-per-address",
        "1000000",
        "--max-rooms-per-user-per-hour",
        "1000000",
        "--max-new-conversations-per-hour",
        "1000000",
        *extra,
    ]
    return start(name, argv, log_dir, port)
