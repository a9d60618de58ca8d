"""A token bucket per connection: a client may not flood its node.

A chat client sends a few events a second, and a burst when it reconnects (login, then a
join and a history per room). The bucket allows ``burst`` events at once and ``rate`` per
second after that; beyond it a request is answered 400 without being handled, so one
broken or hostile client cannot take the CPU its neighbours need.
"""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        """Spend one token; False when the client is over its rate."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class UserBuckets:
    """One token bucket per user with a session on this node, shared by their sessions.

    A user may open many connections (tabs, devices, or a script); each connection has
    its own budget, and this one bounds them together. A user's bucket lives while they
    have a session here (``acquire`` at login, ``release`` at disconnect)."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, tuple[TokenBucket, int]] = {}

    def acquire(self, user_id: str) -> None:
        bucket, sessions = self._buckets.get(user_id, (None, 0))
        self._buckets[user_id] = (bucket or TokenBucket(self._rate, self._burst), sessions + 1)

    def release(self, user_id: str) -> None:
        entry = self._buckets.get(user_id)
        if entry is None:
            return
        bucket, sessions = entry
        if sessions <= 1:
            del self._buckets[user_id]
        else:
            self._buckets[user_id] = (bucket, sessions - 1)

    def take(self, user_id: str) -> bool:
        entry = self._buckets.get(user_id)
        return True if entry is None else entry[0].take()

    def __len__(self) -> int:
        return len(self._buckets)
