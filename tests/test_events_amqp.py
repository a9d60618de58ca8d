"""Events reach RabbitMQ (the machine's broker on 127.0.0.1:5672, guest/guest, or a
throwaway one when none answers there: ``tests/rabbitmq_fixture.py``): a durable
topic exchange, routing keys per event, persistent messages carrying the event id.

Each test uses its own exchange and queue and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import aiohttp
import pytest
import pytest_asyncio

from tests.node_fixtures import TIMEOUT, NodeFactory
from tests.rabbitmq_fixture import EventConsumer, amqp_url

pytest_plugins = ["tests.node_fixtures"]
__all__ = ["amqp_url"]  # the fixture


@pytest_asyncio.fixture
async def consumer(amqp_url: str) -> AsyncIterator[EventConsumer]:
    name = f"dinotest.{uuid.uuid4().hex}"
    consumer = EventConsumer(amqp_url, name, name)
    await consumer.start()
    yield consumer
    await consumer.close()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        await channel.exchange_delete(name)


# One stream, one order across all events (a cluster's per-slot streams have none between
# them: the next test and tests/test_events.py cover it).
@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_events_reach_the_exchange_with_routing_keys(
    node_factory: NodeFactory, consumer: EventConsumer
) -> None:
    node = await node_factory(
        events_amqp_url=consumer.url, events_amqp_exchange=consumer.exchange, node_id="n1"
    )
    alice = await node.client(user="alice")
    room_id = await alice.create("amqp")
    await alice.join(room_id)
    sent = [(await alice.say(room_id, f"m{i}"))["data"] for i in range(20)]
    await alice.tell("bob", "hi")

    await consumer.wait_for(3 + 20 + 1, TIMEOUT)
    kinds = [e["type"] for e in consumer.received]
    assert kinds == ["login", "room_created", "join"] + ["message"] * 21, kinds
    room_messages = [e for e in consumer.received if e.get("log") == f"room:{room_id}"]
    assert [e["object"]["id"] for e in room_messages] == [m["id"] for m in sent]
    assert [e["seq"] for e in room_messages] == list(range(1, 21))
    assert consumer.routing_keys[:3] == [
        "dino.login.user.alice",
        f"dino.room_created.room.{room_id}",
        f"dino.join.room.{room_id}",
    ]
    assert set(consumer.routing_keys[3:23]) == {f"dino.message.room.{room_id}"}
    assert consumer.routing_keys[23] == "dino.message.user.bob"
    # The forwarder counts a batch once its cursor is committed, a moment after the
    # broker confirmed it (and the consumer may already have it).
    async with aiohttp.ClientSession() as http:
        for _ in range(int(TIMEOUT / 0.05)):
            async with http.get(node.url + "/health") as response:
                forwarder = (await response.json())["events"]["amqp"]
            if forwarder["forwarded"] >= 24:
                break
            await asyncio.sleep(0.05)
    assert forwarder["active"] and not forwarder["sink_down"]
    assert forwarder["forwarded"] == 24 and forwarder["trimmed_before_forwarding"] == 0


@pytest.mark.parametrize("backend", ["memory", "redis", "cluster"])
async def test_messages_are_persistent_and_carry_the_event_id(
    node_factory: NodeFactory, consumer: EventConsumer
) -> None:
    node = await node_factory(events_amqp_url=consumer.url, events_amqp_exchange=consumer.exchange)
    await node.client(user="carol")
    await consumer.wait_for(1, TIMEOUT)
    connection = await aio_pika.connect(consumer.url)
    async with connection:
        channel = await connection.channel()
        probe = await channel.declare_queue(exclusive=True)
        exchange = await channel.get_exchange(consumer.exchange)
        await probe.bind(exchange, "dino.login.#")
        await node.client(user="dave")
        message = None
        for _ in range(int(TIMEOUT / 0.05)):
            message = await probe.get(fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.05)
        assert message is not None
        await message.ack()
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert message.type == "login"
    body = message.body.decode()
    assert f'"id":"{message.message_id}"' in body
    assert message.routing_key == "dino.login.user.dave"
