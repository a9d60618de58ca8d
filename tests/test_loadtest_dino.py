"""Smoke runs of the load tool against real dino nodes (child processes started
with run.py): one in-memory node, and two nodes sharing Redis, with the clients of
every room and conversation spread over both. Counts only, never timings.

The nodes serve the HTTP API (``--api-keys``) for the ``api`` scenario."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from benchmarks import servers
from tests.test_loadtest import assert_clean, run_tool

API_KEY = "lt-smoke-key"


@pytest.fixture(scope="module")
def dino(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    node = servers.start_dino(tmp_path_factory.mktemp("dino"), "dino", "--api-keys", API_KEY)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
async def cluster(
    tmp_path: Path, redis_url: str, key_prefix: str, redis_client: redis.asyncio.Redis
) -> AsyncIterator[list[servers.Server]]:
    # redis_client deletes every key under key_prefix afterwards
    opts = ("--redis-url", redis_url, "--redis-prefix", key_prefix, "--api-keys", API_KEY)
    nodes: list[servers.Server] = []
    try:
        for name in ("lt-n1", "lt-n2"):
            nodes.append(await asyncio.to_thread(servers.start_dino, tmp_path, name, *opts))
        yield nodes
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)


def chat_args(*urls: str) -> list[str]:
    args = ["chat"]
    for url in urls:
        args += ["--url", url]
    return [*args, "--rooms", "2", "--members", "6", "--senders", "4", "--rate", "20"]


def test_chat_smoke_one_node(dino: servers.Server, tmp_path: Path) -> None:
    args = [*chat_args(dino.url), "--duration", "3", "--server-pid", str(dino.pid)]
    rc, result, out = run_tool(tmp_path, *args)
    assert rc == 0, out
    assert_clean(result)
    assert result["traffic"]["send_ok"] == 60
    assert result["traffic"]["deliveries"] == 60 * 6


def test_direct_smoke_one_node(dino: servers.Server, tmp_path: Path) -> None:
    rc, result, out = run_tool(
        tmp_path, "direct", "--url", dino.url, "--pairs", "4", "--rate", "20", "--duration", "2"
    )
    assert rc == 0, out
    assert_clean(result)
    assert result["traffic"]["deliveries"] == 40


def test_churn_smoke_one_node(dino: servers.Server, tmp_path: Path) -> None:
    rc, result, out = run_tool(
        tmp_path, "churn", "--url", dino.url, "--rate", "10", "--duration", "2", "--rooms", "2"
    )
    assert rc == 0, out
    assert_clean(result)
    assert {s["name"]: s["ok"] for s in result["steps"]}["cycle"] == 20


async def test_chat_smoke_two_nodes(cluster: list[servers.Server], tmp_path: Path) -> None:
    args = [*chat_args(*(n.url for n in cluster)), "--duration", "3"]
    rc, result, out = await asyncio.to_thread(run_tool, tmp_path, *args)
    assert rc == 0, out
    assert_clean(result)
    assert result["traffic"]["deliveries"] == 60 * 6


async def test_direct_smoke_two_nodes(cluster: list[servers.Server], tmp_path: Path) -> None:
    # sender 2k and receiver 2k+1 land on different nodes
    urls = [a for n in cluster for a in ("--url", n.url)]
    args = ["direct", *urls, "--pairs", "4", "--rate", "20", "--duration", "2"]
    rc, result, out = await asyncio.to_thread(run_tool, tmp_path, *args)
    assert rc == 0, out
    assert_clean(result)
    assert result["traffic"]["deliveries"] == 40


def assert_notified(result: dict[str, Any], calls: int, per_call: int) -> None:
    """Every call answered 201, every notification delivered once to its user."""
    assert_clean(result)
    assert result["traffic"]["send_ok"] == calls
    assert result["extra"]["http_status"] == {"201": calls}
    assert result["extra"]["notifications_accepted"] == calls * per_call
    assert result["traffic"]["deliveries"] == calls * per_call
    assert result["traffic"]["expected_deliveries"] == calls * per_call
    assert result["traffic"]["dropped_connections"] == 0


def test_api_smoke_one_node(dino: servers.Server, tmp_path: Path) -> None:
    args = ["api", "--url", dino.url, "--users", "6", "--rate", "20", "--duration", "2"]
    rc, result, out = run_tool(
        tmp_path, *args, "--server-pid", str(dino.pid), env={"DINO_API_KEY": API_KEY}
    )
    assert rc == 0, out
    assert_notified(result, calls=40, per_call=1)
    assert result["seq"]["logs"] == 6  # one conversation per user
    assert API_KEY not in (tmp_path / "result.json").read_text()


def test_api_targets_per_call_one_node(dino: servers.Server, tmp_path: Path) -> None:
    rc, result, out = run_tool(
        tmp_path,
        *("api", "--url", dino.url, "--api-key", API_KEY, "--users", "6"),
        *("--targets-per-call", "3", "--rate", "10", "--duration", "2", "--connections", "2"),
    )
    assert rc == 0, out
    assert_notified(result, calls=20, per_call=3)
    assert result["seq"]["logs"] == 6


def test_api_wrong_key_fails_the_run(dino: servers.Server, tmp_path: Path) -> None:
    rc, result, out = run_tool(
        tmp_path,
        *("api", "--url", dino.url, "--api-key", "not-the-key", "--users", "2"),
        *("--rate", "5", "--duration", "1"),
    )
    assert rc == 1, out
    assert result["extra"]["http_status"] == {"401": 5}
    assert result["traffic"]["send_failed"] == 5
    assert "5 messages rejected by the server" in result["problems"]
    assert "401: an API key is required" in out


async def test_api_smoke_two_nodes(cluster: list[servers.Server], tmp_path: Path) -> None:
    # users and HTTP connections alternate between the nodes: each call of two
    # targets reaches one user on its own node and one on the other
    urls = [a for n in cluster for a in ("--url", n.url)]
    args = ["api", *urls, "--api-key", API_KEY, "--users", "6", "--targets-per-call", "2"]
    args += ["--rate", "20", "--duration", "2"]
    rc, result, out = await asyncio.to_thread(run_tool, tmp_path, *args)
    assert rc == 0, out
    assert_notified(result, calls=40, per_call=2)
