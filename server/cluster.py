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

from handlers.session import drop_from_store
from storage.base import StoreUnavailable

from .node import Node

log = logging.getLogger("dino.cluster")


class Cluster:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._task: asyncio.Task[None] | None = None

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
        except StoreUnavailable as exc:
            log.warning("could not say goodbye (%s); peers will purge this node later", exc)

    async def purge(self, node_id: str) -> int:
        """Drop every session registered on ``node_id``; returns how many."""
        sids = await self.node.store.node_sessions(node_id)
        for sid in sids:
            await drop_from_store(self.node, sid)
        if sids:
            log.info("dropped %d sessions of node %s", len(sids), node_id)
        return len(sids)

    async def _renew(self) -> None:
        await self.node.store.renew_lease(
            self.node.node_id, int(self.node.settings.lease_ttl * 1000)
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.node.settings.heartbeat_interval)
            try:
                await self._tick()
            except StoreUnavailable as exc:
                self.node.outage.failed("heartbeat", exc)
            except Exception:
                log.exception("cluster heartbeat failed")

    async def _tick(self) -> None:
        node = self.node
        await self._renew()
        if node.outage.down:
            node.outage.recovered()
        for sid in list(node.unfinished_drops):
            await drop_from_store(node, sid)
            node.unfinished_drops.discard(sid)
        ttl_ms = int(node.settings.lease_ttl * 1000)
        for dead in await node.store.expired_nodes():
            if dead == node.node_id or not await node.store.claim_node_cleanup(dead, ttl_ms):
                continue
            log.warning("node %s stopped renewing its lease; removing its users", dead)
            await self.purge(dead)
            await node.store.forget_node(dead)
