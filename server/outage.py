"""Logging a backend outage once, not once per failed request."""

from __future__ import annotations

import logging

log = logging.getLogger("dino.outage")


class OutageLog:
    """Tracks whether Redis is reachable; logs the first failure and the recovery."""

    def __init__(self) -> None:
        self.down = False
        self.failures = 0  # requests or loops that failed during outages, for /health
        self.outages = 0  # times Redis went from reachable to unavailable, for /metrics

    def failed(self, where: str, exc: BaseException) -> None:
        self.failures += 1
        if not self.down:
            self.down = True
            self.outages += 1
            log.error("Redis unavailable (%s): %s; will keep retrying", where, exc)

    def recovered(self) -> None:
        if self.down:
            self.down = False
            log.warning("Redis reachable again")
