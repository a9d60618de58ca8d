"""Cheap attacks on one node, each measured on a node of its own process: its resident
memory and CPU time stay bounded, its log stays short, and a well-behaved client on the
same node keeps being served. Bounds are generous (shared, loaded test machines): they
separate "bounded" from the unbounded growth each attack caused before.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp

from tests.eio_wire import Socket, Wire
from tests.process_node import ProcessNode, process_node

CONTENT = "x" * 10_000


async def logged_in(wire: Wire, user: str) -> Socket:
    socket_ = await wire.websocket()
    await socket_.receive()  # engine.io handshake
    await socket_.send("40/chat,")
    await socket_.receive()  # CONNECT
    await socket_.receive()  # gn_connect
    await socket_.send(f'42/chat,["login",{{"actor":{{"id":"{user}"}}}}]')
    assert '"status_code":200' in str(await socket_.receive())
    return socket_


async def call(socket_: Socket, event: str, data: object) -> dict[str, object]:
    """Emit ``event`` and return its ``gn_`` reply (other pushes are skipped)."""
    await socket_.send("42/chat," + json.dumps([event, data]))
    while True:
        frame = await socket_.receive()
        assert isinstance(frame, str), frame
        if frame.startswith(f'42/chat,["gn_{event}",'):
            reply: dict[str, object] = json.loads(frame[len("42/chat,") :])[1]
            return reply


async def served(node: ProcessNode, http: aiohttp.ClientSession) -> None:
    """A new, well-behaved client gets through login and a request."""
    victim = await logged_in(Wire(http, node.port), "victim")
    assert (await call(victim, "list_rooms", {}))["status_code"] == 200
    await victim.close()


async def test_a_poller_that_never_reads_is_dropped_at_the_send_buffer(tmp_path: Path) -> None:
    async with process_node(tmp_path) as node, aiohttp.ClientSession() as http:
        wire = Wire(http, node.port)
        alice = await logged_in(wire, "alice")
        room = await call(alice, "create", {"target": {"displayName": "big"}})
        room_id = room["data"]["target"]["id"]  # type: ignore[index]
        assert (await call(alice, "join", {"target": {"id": room_id}}))["status_code"] == 200
        message = {"target": {"id": room_id}, "object": {"content": CONTENT}}
        for _ in range(100):
            await call(alice, "message", message)
        before = node.rss_mib()
        # The attacker asks for 60 large history replies in one POST and never GETs them.
        sid = await wire.open_polling()
        requests = [
            "40/chat,",
            '42/chat,["login",{"actor":{"id":"mallory"}}]',
            *["42/chat," + json.dumps(["history", {"target": {"id": room_id}, "limit": 500}])]
            * 60,
        ]
        status, _ = await wire.post(sid, "\x1e".join(requests))
        assert status in (200, 400)  # 400 when the session was dropped while posting
        health = await node.health()
        assert health["slow_consumers_dropped"] == 1
        assert node.rss_mib() - before < 40  # 60 x 500 KiB would be 30 MB, and was 310 MiB
        assert (await wire.poll(sid))[0] == 400  # the session is gone
        await served(node, http)


async def test_announced_binary_attachments_are_not_buffered(tmp_path: Path) -> None:
    async with process_node(tmp_path) as node, aiohttp.ClientSession() as http:
        wire = Wire(http, node.port)
        before = node.rss_mib()
        attacker = await logged_in(wire, "mallory")
        placeholders = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(1000))
        await attacker.send(f'451000-/chat,["message",{placeholders}]')
        chunk = b"\0" * 1_000_000
        try:
            for _ in range(50):
                await attacker.send(chunk)
        except (ConnectionError, aiohttp.ClientError):
            pass  # closed under our feet: the point
        assert await attacker.closed()
        assert node.rss_mib() - before < 40  # was 200 MB in under a second
        assert (await node.health())["edge"]["binary_refused"] == 1
        await served(node, http)


async def test_huge_request_bodies_are_refused_unread(tmp_path: Path) -> None:
    async with process_node(tmp_path) as node, aiohttp.ClientSession() as http:
        before = node.rss_mib()
        loop = asyncio.get_running_loop()
        answers = []
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", node.port)) as raw:
                raw.sendall(
                    b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\n"
                    b"Host: 127.0.0.1\r\nContent-Length: 90000000\r\n\r\n" + b"4" * 1_000_000
                )
                raw.settimeout(10)
                answers.append(await loop.run_in_executor(None, raw.recv, 100))
        assert all(a.startswith(b"HTTP/1.1 400") or a == b"" for a in answers), answers
        assert node.rss_mib() - before < 30  # was +255 MiB
        # Just over the payload limit (8 x --max-message-bytes = 81920): read, answered
        # 413, and that session (only) is closed.
        wire = Wire(http, node.port)
        sid = await wire.open_polling()
        assert (await wire.post(sid, "4" + "x" * 81_920))[0] == 413
        assert (await wire.poll(sid))[0] == 400
        assert (await node.health())["edge"]["oversized_requests"] == 1
        await served(node, http)


async def test_out_of_file_descriptors_the_node_pauses_instead_of_spinning(
    tmp_path: Path,
) -> None:
    async with process_node(tmp_path, "--header-timeout", "3", nofile=64) as node:
        held = []
        for _ in range(120):  # more than the node's open-file limit
            held.append(socket.create_connection(("127.0.0.1", node.port)))
        cpu_before = node.cpu_seconds()
        await asyncio.sleep(2)
        cpu = node.cpu_seconds() - cpu_before
        assert cpu < 1.0, f"{cpu:.2f} s of CPU in 2 s with descriptors exhausted"
        for s in held:
            s.close()
        for _ in range(100):  # the node serves again once descriptors are free
            try:
                health = await node.health()
                break
            except (TimeoutError, OSError, aiohttp.ClientError):
                await asyncio.sleep(0.1)
        assert health["edge"]["accept_paused"] >= 1
        log = node.log_text()
        assert "Traceback" not in log
        assert len(log.splitlines()) < 100, log[-3000:]
        async with aiohttp.ClientSession() as http:
            await served(node, http)
