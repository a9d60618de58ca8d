"""The RabbitMQ sink of the event forwarder: a durable topic exchange, persistent messages,
publisher confirms (aio-pika).

A batch is published on one channel, so RabbitMQ receives it in order, and ``publish``
returns only when the broker has confirmed every message of it. Any failure (broker down,
connection lost, a nack) drops the connection; the forwarder offers the same batch again
after a pause and this sink reconnects. The broker then holds a prefix of the batch at
most, so a consumer that skips ids it has seen reads every log in order.

Messages carry the event's JSON as the body, ``message_id`` = the event id,
``type`` = the event type and ``timestamp``; the routing key is the event's (``dino.<type>.
<objectType>.<id>``), cut to AMQP's 255 bytes if an id makes it longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions
import ujson

from storage.event_log import StreamEntry

from .forwarder import SinkUnavailable

log = logging.getLogger("dino.events")

_MAX_ROUTING_KEY_BYTES = 255
_FAILURES = (
    aio_pika.exceptions.AMQPException,
    aiormq.exceptions.AMQPError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def routing_key(key: str) -> str:
    raw = key.encode("utf-8")
    if len(raw) <= _MAX_ROUTING_KEY_BYTES:
        return key
    return raw[:_MAX_ROUTING_KEY_BYTES].decode("utf-8", errors="ignore")


class AmqpSink:
    name = "amqp"

    def __init__(self, url: str, exchange: str, timeout: float) -> None:
        # aiormq logs every failed connect at ERROR; while the broker is down the forwarder
        # retries for as long as it takes, and logs the outage once itself.
        logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
        self.url = url
        self.exchange_name = exchange
        self.timeout = timeout
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def _connect(self) -> aio_pika.abc.AbstractExchange:
        if self._exchange is not None:
            return self._exchange
        # A plain connection, not connect_robust: the forwarder decides when to retry, and
        # a batch in flight must fail rather than wait for a reconnect in the background.
        self._connection = await aio_pika.connect(self.url, timeout=self.timeout)
        channel = await asyncio.wait_for(
            self._connection.channel(publisher_confirms=True), self.timeout
        )
        self._exchange = await asyncio.wait_for(
            channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True),
            self.timeout,
        )
        log.info("connected to RabbitMQ %s, exchange %s", redacted(self.url), self.exchange_name)
        return self._exchange

    async def publish(self, entries: Sequence[StreamEntry]) -> None:
        try:
            exchange = await self._connect()
            # Started in order on one channel (aiormq takes its lock in FIFO order), so the
            # broker receives them in order; gathered so confirms overlap.
            confirms = await asyncio.gather(
                *(
                    exchange.publish(self._message(entry), routing_key(entry.routing_key),
                                     mandatory=False, timeout=self.timeout)
                    for entry in entries
                ),
                return_exceptions=True,
            )  # fmt: skip
            for outcome in confirms:
                if isinstance(outcome, BaseException):
                    raise outcome
        except Exception as exc:  # whatever broke, this connection is done with
            await self.close()
            raise SinkUnavailable(
                f"RabbitMQ {redacted(self.url)} unavailable: {type(exc).__name__}: {exc}"
            ) from exc

    @staticmethod
    def _message(entry: StreamEntry) -> aio_pika.Message:
        event = ujson.loads(entry.event)
        return aio_pika.Message(
            entry.event.encode("utf-8"),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(event.get("id", "")),
            type=str(event.get("type", "")),
        )

    async def close(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(*_FAILURES):
                await connection.close()
