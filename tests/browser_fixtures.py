"""Helpers for the browser test of the demo page: a real node process and real Chromium.

Chromium comes from Debian (``apt-get install chromium``) and is driven by Python
playwright; playwright's own browser download is never used (``playwright install``
would fetch a build from outside the package registries).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 15_000  # only ever reached when something is broken


def require_browser_tools() -> None:
    """Fail (never skip) with a readable reason when Chromium or playwright is missing."""
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} not found: the demo browser test needs Debian's Chromium "
            "(apt-get update && apt-get install -y chromium)",
            pytrace=False,
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail(
            "python playwright is not installed: pip install playwright "
            "(do not run `playwright install`; the test uses /usr/bin/chromium)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for a test module (load it with ``pytest_plugins``)."""
    require_browser_tools()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def artifacts_dir() -> Path:
    """tests/artifacts/, ignored by git through a .gitignore the directory carries itself."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return ARTIFACTS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """A dino node started as `python run.py` from the repository root, on one port.

    ``stop(crash=True)`` kills it with SIGKILL, as a crashed node would go; ``start()``
    again brings a fresh node (empty in-memory store) up on the same port.
    """

    def __init__(self, port: int, extra_args: list[str] | None = None) -> None:
        self.port = port
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = artifacts_dir() / f"node-{port}.log"
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        if not (REPO / "run.py").exists():
            pytest.fail(f"{REPO / 'run.py'} does not exist: no node to test the demo against")
        # Open for the life of the process (closed in stop()), so no context manager.
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "run.py",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *self.extra_args,
            ],
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_until_serving(timeout)

    def _wait_until_serving(self, timeout: float) -> None:
        """Wait until the node answers /demo/ over HTTP, not merely until the port opens."""
        deadline = time.monotonic() + timeout
        last_error = "nothing tried"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"the node exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/demo/", timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"HTTP {resp.status}"
            except OSError as exc:
                last_error = repr(exc)
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"the node did not serve /demo/ within {timeout}s ({last_error}):\n{self.log_tail()}"
        )

    def stop(self, crash: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
