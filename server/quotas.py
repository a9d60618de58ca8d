"""Hourly quotas per user: rooms created, and users written to for the first time.

Rooms are listed for everyone (``list_rooms``) and every conversation is a log in the
store, so a script creating them in a loop costs every user and the store. The quotas
count per node, in memory, over a sliding hour; a user spread over many nodes gets the
quota on each (the per-address and per-node connection caps bound that).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from .ratelimit import UserBuckets
from .settings import Settings

HOUR = 3600.0
_PRUNE_EVERY = 10_000  # users tracked before those idle for an hour are dropped


class HourlyCount:
    """At most ``limit`` actions per user per sliding hour."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: dict[str, deque[float]] = {}

    def allow(self, user_id: str) -> bool:
        """Count one action for ``user_id``; False (and not counted) over the limit."""
        now = time.monotonic()
        times = self._times.get(user_id)
        if times is None:
            if len(self._times) >= _PRUNE_EVERY:
                self._prune(now)
            times = self._times[user_id] = deque()
        while times and now - times[0] >= HOUR:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def _prune(self, now: float) -> None:
        self._times = {u: t for u, t in self._times.items() if t and now - t[-1] < HOUR}


class HourlyDistinct:
    """At most ``limit`` distinct peers per user per sliding hour; repeats are free."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._peers: dict[str, dict[str, float]] = {}  # user -> peer -> last time

    def allow(self, user_id: str, peer: str) -> bool:
        now = time.monotonic()
        peers = self._peers.get(user_id)
        if peers is None:
            if len(self._peers) >= _PRUNE_EVERY:
                self._prune(now)
            peers = self._peers[user_id] = {}
        if peer in peers and now - peers[peer] < HOUR:
            peers[peer] = now
            return True
        if len(peers) >= self.limit:
            for old in [p for p, t in peers.items() if now - t >= HOUR]:
                del peers[old]
            if len(peers) >= self.limit:
                return False
        peers[peer] = now
        return True

    def _prune(self, now: float) -> None:
        self._peers = {
            u: p for u, p in self._peers.items() if p and now - max(p.values()) < HOUR
        }


@dataclass
class UserLimits:
    """Everything that limits one user (not one connection) on this node."""

    events: UserBuckets = field(default_factory=lambda: UserBuckets(100.0, 400))
    rooms: HourlyCount = field(default_factory=lambda: HourlyCount(20))
    conversations: HourlyDistinct = field(default_factory=lambda: HourlyDistinct(100))

    @classmethod
    def from_settings(cls, settings: Settings) -> UserLimits:
        return cls(
            UserBuckets(settings.max_user_events_per_second, settings.max_user_event_burst),
            HourlyCount(settings.max_rooms_per_user_per_hour),
            HourlyDistinct(settings.max_new_conversations_per_hour),
        )
