"""A throwaway RabbitMQ broker that a test may kill and start again, and an event consumer.

``RabbitMQServer`` runs Debian's ``rabbitmq-server`` as its own Erlang node (own node
name, AMQP port, distribution port, data and log directories, no plugins) so a test can
``kill -9`` it and start it again on the same data without touching the machine's own
broker on 5672. Its data survives the restart: durable exchanges and queues, and
persistent messages the broker confirmed.

``EventConsumer`` binds a durable queue to the event exchange and records every event it
receives (acknowledging each after recording it), across broker restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aio_pika.abc
import pytest

from tests.redis_fixture import free_port

_BINARIES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")


class BrokerError(AssertionError):
    """The broker did not start; the message carries its log."""


def _binary() -> str:
    for candidate in _BINARIES:
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    raise BrokerError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RabbitMQServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.dist_port = free_port()
        self.log_path = workdir / "rabbitmq.out"
        self.proc: subprocess.Popen[bytes] | None = None
        (workdir / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=f"dinotest{self.port}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.workdir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.workdir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.workdir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.workdir / "no-config"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.workdir / "no-advanced.config"),
            HOME=str(self.workdir),  # the Erlang cookie lives here
        )
        return env

    def start(self, timeout: float = 90.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child holds it)
        self.proc = subprocess.Popen(
            [_binary()],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the script, erl, beam
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self.proc.poll() is not None:
                raise BrokerError(f"rabbitmq-server exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(f"rabbitmq-server not up after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the whole broker: only what it had written to disk survives."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        # The port is free again once the broker is gone (it may take a moment).
        deadline = time.monotonic() + 10
        while _answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


AMQP_URL_ENV = "DINO_TEST_AMQP_URL"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="session")
def amqp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A RabbitMQ that answers: the configured one (``DINO_TEST_AMQP_URL``, default the
    machine's on 5672), or a throwaway broker for the session."""
    url = os.environ.get(AMQP_URL_ENV, DEFAULT_AMQP_URL)
    port = urlsplit(url).port or 5672
    if _answers(port):
        yield url
        return
    broker = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    try:
        yield broker.url
    finally:
        broker.kill()


class EventConsumer:
    """A durable queue bound to ``exchange`` with ``binding``; records events in arrival
    order. ``connect_robust`` reconnects and consumes again after a broker restart."""

    def __init__(self, url: str, exchange: str, queue: str, binding: str = "dino.#") -> None:
        self.url = url
        self.exchange = exchange
        self.queue_name = queue
        self.binding = binding
        self.received: list[dict[str, Any]] = []
        self.routing_keys: list[str] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url, reconnect_interval=0.5)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(self.queue_name, durable=True)
        await queue.bind(exchange, self.binding)
        await queue.consume(self._on_message)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.received.append(json.loads(message.body))
        self.routing_keys.append(message.routing_key or "")
        await message.ack()

    async def wait_for(self, count: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count and loop.time() < deadline:
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._connection is not None:
            # Bounded: a robust connection in the middle of reconnecting may never answer.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), 10)
