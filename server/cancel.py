"""Background loops that stop when cancelled, even when an inner await lost the cancel.

On Python 3.11, ``asyncio.wait_for`` returns the inner result instead of raising
``CancelledError`` when the task is cancelled in the same loop pass as the inner future
finishes (CPython gh-86296, fixed in 3.12). redis-py wraps its socket writes in
``wait_for``, so a task cancelled while a Redis command completes can carry on as if
nothing happened: a forwarder kept renewing its lease after ``stop()`` and hung the
``await`` of its task. The task still counts the request (``Task.cancelling()``), so
each round of a loop that must stop checks it.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise the ``CancelledError`` that an inner await swallowed, if there was one."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
