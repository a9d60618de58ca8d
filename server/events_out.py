"""Composition of the event stream out: which forwarders a node runs, from its settings."""

from __future__ import annotations

import logging

from .amqp_sink import AmqpSink, redacted
from .forwarder import FileSink, Forwarder, Sink
from .node import Node

log = logging.getLogger("dino.events")


def start_forwarders(node: Node) -> None:
    """A forwarder per configured sink (RabbitMQ, a JSON-lines file); each forwards only
    while this node holds that sink's lease."""
    settings = node.settings
    if node.events is None:
        return
    sinks: list[Sink] = []
    if settings.events_amqp_url:
        # Bounded by a third of the lease: a hung connect must not outlive the lease.
        timeout = max(1.0, min(10.0, settings.lease_ttl / 3))
        sinks.append(AmqpSink(settings.events_amqp_url, settings.events_amqp_exchange, timeout))
        log.info(
            "event stream to RabbitMQ %s, exchange %s",
            redacted(settings.events_amqp_url),
            settings.events_amqp_exchange,
        )
    if settings.events_file:
        sinks.append(FileSink(settings.events_file))
        log.info("event stream to the JSON-lines file %s", settings.events_file)
    for sink in sinks:
        forwarder = Forwarder(
            node.events,
            sink,
            node.node_id,
            lease_ttl=settings.lease_ttl,
            maxlen=settings.events_maxlen,
        )
        forwarder.start()
        node.forwarders.append(forwarder)


async def stop_forwarders(node: Node) -> None:
    for forwarder in node.forwarders:
        await forwarder.stop()
    node.forwarders.clear()
