"""Redis for tests: a server that answers, a client, and a key prefix private to a test.

The server is the one at ``$DINO_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
If nothing answers there and ``redis-server`` is installed, a throwaway server (no
persistence) is started on a free port for the session. Redis tests are never skipped:
without a server they fail, so a green run always means the Redis paths ran.

Every test gets its own prefix (``dinotest:<hex>:``) and its keys are deleted afterwards,
so tests may share a server with each other and with a developer's running node.

``tests/conftest.py`` re-exports the fixtures; other suites (benchmarks) can import them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from uuid import uuid4

import pytest
import pytest_asyncio
import redis
import redis.asyncio
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

REDIS_URL_ENV = "DINO_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_STARTUP_SECONDS = 10.0


def redis_answers(url: str) -> bool:
    """True if a Redis server answers PING at ``url`` (within about half a second)."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        client.close()


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it, then we let it go)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def throwaway_redis_server() -> Iterator[str]:
    """Run ``redis-server`` without persistence on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            f"no Redis answers at ${REDIS_URL_ENV} (or {DEFAULT_REDIS_URL}) and no "
            "redis-server binary is installed to start one"
        )
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_up(process, url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while not redis_answers(url):
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"redis-server exited with {process.returncode}: {stderr}")
        if time.monotonic() > deadline:
            pytest.fail(f"redis-server did not answer at {url} in {_STARTUP_SECONDS}s")
        time.sleep(0.05)


def _glob_escape(text: str) -> str:
    """Escape ``text`` for a SCAN MATCH pattern, so a prefix matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def delete_prefix(client: redis.asyncio.Redis, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN, so a busy server is never blocked)."""
    batch: list[str] = []
    async for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            await client.delete(*batch)
            batch.clear()
    if batch:
        await client.delete(*batch)


@asynccontextmanager
async def redis_client_under(url: str, prefix: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A ``decode_responses=True`` client; the keys under ``prefix`` go when it does."""
    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis that answers: the configured one, or a throwaway server."""
    url = os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL)
    if redis_answers(url):
        yield url
        return
    with throwaway_redis_server() as throwaway_url:
        yield throwaway_url


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"dinotest:{uuid4().hex}:"


@pytest_asyncio.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client on ``redis_url``; every key under ``key_prefix`` is deleted afterwards."""
    async with redis_client_under(redis_url, key_prefix) as client:
        yield client
