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
