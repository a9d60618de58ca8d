"""The node's edge: counters of refused and misbehaving clients, and logging them once.

A hostile client can produce thousands of bad requests a second; each one is counted here
(``/health`` shows the counters) but logged at most once per offender per minute, so the
log stays readable and small whatever a client does.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("dino.edge")

LOG_EVERY = 60.0  # seconds between two log lines about the same offender and offence
_MAX_REMEMBERED = 10_000  # offenders remembered for the once-a-minute rule


@dataclass
class EdgeStats:
    """What the edge refused or closed, by kind, since the node started."""

    counts: Counter[str] = field(default_factory=Counter)
    _last_logged: dict[tuple[str, str], float] = field(default_factory=dict)

    def offence(self, kind: str, offender: str, message: str, *args: object) -> None:
        """Count an offence of ``kind`` and log ``message`` unless this offender's
        ``kind`` was logged less than a minute ago."""
        self.counts[kind] += 1
        now = time.monotonic()
        key = (kind, offender)
        last = self._last_logged.get(key)
        if last is not None and now - last < LOG_EVERY:
            return
        if len(self._last_logged) >= _MAX_REMEMBERED:
            # Forget offenders whose minute is over; a flood of distinct offenders
            # (every connection a new sid) cannot grow this without bound.
            self._last_logged = {
                k: t for k, t in self._last_logged.items() if now - t < LOG_EVERY
            }
            if len(self._last_logged) >= _MAX_REMEMBERED:
                return
        self._last_logged[key] = now
        log.warning("%s: " + message, offender, *args)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@dataclass
class ConnectionCaps:
    """Engine.io sessions per node and per client address, refused above the caps.

    The address is the client's as Tornado reports it (``X-Real-IP`` behind nginx)."""

    max_per_node: int
    max_per_address: int
    per_address: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def refusal(self, address: str) -> str | None:
        """Why a new session from ``address`` is refused, or None to admit it."""
        if self.total >= self.max_per_node:
            return f"this node is full ({self.max_per_node} connections)"
        if self.per_address[address] >= self.max_per_address:
            return f"too many connections from {address} (at most {self.max_per_address})"
        return None

    def opened(self, address: str) -> None:
        self.total += 1
        self.per_address[address] += 1

    def closed(self, address: str) -> None:
        self.total -= 1
        left = self.per_address[address] - 1
        if left > 0:
            self.per_address[address] = left
        else:
            del self.per_address[address]
