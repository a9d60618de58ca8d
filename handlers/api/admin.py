"""/api/v1/admin/stats: what the admin page (/admin/) shows, in one request.

Every node publishes its headline numbers to the store at each heartbeat
(``server.metrics.snapshot``), so whichever node answers shows the whole cluster: the
nodes alive (those holding a lease) with their connections and counters, and the
busiest rooms by members with the ``seq`` of their newest message. Rates (events and
messages per second) are differences between two polls, taken by the page.
"""

from __future__ import annotations

import time
from typing import Any

from core import rooms
from core.names import room_log
from server.wire import Json

from .base import ApiHandler, endpoint
from .rooms import query_int

DEFAULT_ROOMS = 10
MAX_ROOMS = 50


class AdminStatsHandler(ApiHandler):
    @endpoint
    async def get(self) -> None:
        node = self.node
        limit = query_int(self, "rooms", 1, MAX_ROOMS) or DEFAULT_ROOMS
        alive = await node.store.live_nodes()
        published = await node.store.node_stats(alive)
        nodes = [{"id": node_id, **Json.loads(published.get(node_id, "{}"))} for node_id in alive]
        summaries = sorted(await rooms.list_all(node), key=lambda r: (-r.members, r.name))
        busiest: list[dict[str, Any]] = []
        for summary in summaries[:limit]:
            newest = await node.store.history(
                room_log(summary.id), before=None, since=None, limit=1
            )
            last_seq = Json.loads(newest[0])["seq"] if newest else 0
            busiest.append(
                {
                    "id": summary.id,
                    "name": summary.name,
                    "members": summary.members,
                    "last_seq": last_seq,
                }
            )
        self.reply(
            {
                "at_ms": int(time.time() * 1000),
                "answered_by": node.node_id,
                "nodes": nodes,
                "rooms": {"total": len(summaries), "busiest": busiest},
            }
        )
