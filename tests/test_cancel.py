"""A background loop stops when cancelled even if an inner ``wait_for`` swallowed the
cancel (Python 3.11, CPython gh-86296): the race that kept a stopped forwarder renewing
its lease."""

from __future__ import annotations

import asyncio

from server.cancel import raise_if_cancelled


async def test_a_loop_stops_when_wait_for_swallowed_its_cancel() -> None:
    loop = asyncio.get_running_loop()
    rounds = 0
    replies: list[asyncio.Future[str]] = []

    async def loop_forever() -> None:
        nonlocal rounds
        while True:
            raise_if_cancelled()
            rounds += 1
            reply: asyncio.Future[str] = loop.create_future()
            replies.append(reply)
            await asyncio.wait_for(reply, timeout=10)  # as redis-py wraps its writes

    task = loop.create_task(loop_forever())
    while not replies:
        await asyncio.sleep(0)
    # The reply and the cancel arrive in the same loop pass.
    replies[0].set_result("OK")
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task}
    assert task.cancelled()
    assert rounds == 1
