"""Membership of the cluster: this node's lease, and the removal of dead nodes' users.

Each node renews a lease in the store every ``heartbeat_interval``. A node that dies
without a goodbye (kill -9, power loss) stops renewing; after ``lease_ttl`` the first
survivor to notice claims the cleanup, drops every session the dead node had registered,
and tells the rooms those users left. A node that restarts under the same id purges its
previous incarnation's sessions before serving, so a fast restart leaves no ghosts either.
"""

from __future__ import annotations

import asyncio
import logging
import time

from core import sessions
from storage.base import StoreUnavailable

from .cancel import raise_if_cancelled
from .metrics import snapshot
from .node import Node
from .wire import Json

log = logging.getLogger("dino.cluster")


class Cluster:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._task: asyncio.Task[None] | None = None
        # After this node could not reach Redis for a while, peers may look dead only
        # because they could not renew either: give them one lease to do so first.
        self._no_purge_until = 0.0

    async def start(self) -> None:
        await self.purge(self.node.node_id)  # sessions of this node's previous life
        await self._renew()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Goodbye: drop this node's sessions so the others see its users leave now."""
        if self._task is not None:
            self._task.cancel()
        try:
            await self.purge(self.node.node_id)
            await self.node.store.forget_node(self.node.node_id)
            self.node.status.lease_renewed_at = None
        except StoreUnavailable as exc:
            log.warning("could not say goodbye (%s); peers will purge this node later", exc)

    async def purge(self, node_id: str) -> int:
        """Drop every session registered on ``node_id``; returns how many."""
        dropped = await sessions.purge_node(self.node, node_id)
        if dropped:
            log.info("dropped %d sessions of node %s", dropped, node_id)
        return dropped

    async def _renew(self) -> bool:
        ttl_ms = int(self.node.settings.lease_ttl * 1000)
        renewed_at = time.monotonic()  # before the call: the lease runs from about then
        registered = await self.node.store.renew_lease(self.node.node_id, ttl_ms)
        status = self.node.status
        status.lease_renewed_at = renewed_at
        status.live_nodes = tuple(await self.node.store.live_nodes())
        # For the admin page: any node shows every node's numbers.
        await self.node.store.put_node_stats(self.node.node_id, Json.dumps(snapshot(self.node)))
        return registered

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.node.settings.heartbeat_interval)
            raise_if_cancelled()  # no lease renewed after stop()
            try:
                await self._tick()
            except StoreUnavailable as exc:
                self.node.outage.failed("heartbeat", exc)
                self._no_purge_until = time.monotonic() + 2 * self.node.settings.lease_ttl
            except Exception:
                log.exception("cluster heartbeat failed")

    async def _tick(self) -> None:
        node = self.node
        if not await self._renew():
            log.warning("peers took node %s for dead; registering its sessions again", node.node_id)
            await sessions.register_again(node)
        if node.outage.down:
            node.outage.recovered()
        for sid in list(node.unfinished_drops):
            await sessions.drop(node, sid)
            node.unfinished_drops.discard(sid)
        if time.monotonic() < self._no_purge_until:
            return
        ttl_ms = int(node.settings.lease_ttl * 1000)
        for dead in await node.store.expired_nodes():
            if dead == node.node_id or not await node.store.claim_node_cleanup(dead, ttl_ms):
                continue
            log.warning("node %s stopped renewing its lease; removing its users", dead)
            await self.purge(dead)
            await node.store.forget_node(dead)
