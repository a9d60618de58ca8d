"""What a node says about itself to load balancers: is it draining, does it hold its lease.

The cluster heartbeat writes here, the drain sets ``draining``, and /ready and /metrics
read it; a plain object on the node, so several nodes in one process stay apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class NodeStatus:
    draining: bool = False
    lease_renewed_at: float | None = None  # time.monotonic() of the last successful renewal
    live_nodes: tuple[str, ...] = ()  # nodes with a running lease at the last heartbeat
    busy: set[str] = field(default_factory=set)  # socket.io sids handling an event now
    api_requests: int = 0  # HTTP API requests being handled now

    def lease_held(self, lease_ttl: float) -> bool:
        """True while the last renewal is younger than the lease: peers count us alive."""
        renewed = self.lease_renewed_at
        return renewed is not None and time.monotonic() - renewed < lease_ttl
