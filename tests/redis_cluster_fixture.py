"""A throwaway Redis Cluster for tests: 3 masters + 3 replicas on free ports of 127.0.0.1.

``redis_cluster`` (session-scoped) starts six ``redis-server --cluster-enabled yes``
without persistence, joins them with ``redis-cli --cluster create --cluster-replicas 1``
and waits until every slot is served. Tests may kill a master (``kill``) and start it
again (``start``: it comes back as a replica of whoever took over); ``wait_healthy``
waits until all six answer and every slot has a master, and runs before each test that
uses the fixture, so one test's failover does not leak into the next.

Keys live under the test's private prefix (``key_prefix``) and are deleted afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
import redis
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

# A node silent this long is failed over. Long enough that a loaded test machine does not
# fail a master over by mistake, short enough for a failover test (about 2x this).
NODE_TIMEOUT_MS = 2000
_STARTUP_SECONDS = 30.0


def _port_pair_free(port: int) -> bool:
    """True if ``port`` and its cluster bus port (``port + 10000``) are both free."""
    for candidate in (port, port + 10000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def _free_cluster_ports(count: int) -> list[int]:
    ports: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        start = 20000 + sock.getsockname()[1] % 20000  # spread runs over the range
    port = start
    while len(ports) < count:
        if _port_pair_free(port):
            ports.append(port)
        port = 20000 + (port - 20000 + 1) % 35000
        if port == start:
            raise ClusterStartError("no free port pairs (port, port + 10000) for a Redis Cluster")
    return ports


def _client(port: int) -> redis.Redis:
    return redis.Redis(
        port=port,
        decode_responses=True,
        socket_connect_timeout=0.5,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass
class RedisClusterProcesses:
    ports: list[int]
    directory: Path
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def nodes(self) -> str:
        """The ``--redis-cluster-nodes`` value: every node, ``host:port,...``."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self, port: int) -> None:
        """Start the node on ``port`` (again): its nodes.conf remembers the cluster."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ClusterStartError(
                "a Redis Cluster needs redis-server (apt-get install redis-server)"
            )
        args = [binary, "--port", str(port), "--bind", "127.0.0.1"]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
        args += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", "no", "--logfile", f"redis-{port}.log"]
        self.processes[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        self._wait(lambda: _answers(port), f"redis-server on port {port} to answer")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``, as a crash would."""
        process = self.processes.pop(port)
        process.kill()
        process.wait()

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        slot = key_slot(key.encode())
        for port in self.processes:
            try:
                shards = _client(port).cluster("slots")
            except (redis.exceptions.RedisError, OSError):
                continue
            for first, last, master, *_ in shards:
                if int(first) <= int(slot) <= int(last):
                    return int(master[1])
        raise AssertionError(f"no master serves slot {slot}")

    def masters(self) -> list[int]:
        return [p for p in self.processes if _client(p).info("replication")["role"] == "master"]

    def move_slot_of(self, key: str, target: int) -> None:
        """Reshard: move ``key``'s slot, with its keys, to the master on port ``target``
        (the steps ``redis-cli --cluster reshard`` takes for each slot)."""
        slot = key_slot(key.encode())
        source = self.master_of(key)
        src, dst = _client(source), _client(target)
        src_id, dst_id = (
            src.execute_command("CLUSTER", "MYID"),
            dst.execute_command("CLUSTER", "MYID"),
        )
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        for port in [target, source, *(p for p in self.masters() if p not in (source, target))]:
            _client(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def wait_healthy(self) -> None:
        """Every node answers and sees the cluster ok, with all replicas connected."""

        def healthy() -> bool:
            for port in self.ports:
                try:
                    client = _client(port)
                    if client.cluster("info")["cluster_state"] != "ok":
                        return False
                    role = client.info("replication")
                except (redis.exceptions.RedisError, OSError):
                    return False
                if role["role"] == "slave" and role.get("master_link_status") != "up":
                    return False
            return True

        self._wait(healthy, "the Redis Cluster to be healthy")

    def stop(self) -> None:
        for port in list(self.processes):
            process = self.processes.pop(port)
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _wait(self, condition: object, what: str) -> None:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                logs = "\n".join(
                    p.read_text()[-2000:] for p in sorted(self.directory.glob("redis-*.log"))
                )
                raise ClusterStartError(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.1)


def _answers(port: int) -> bool:
    try:
        return bool(_client(port).ping())
    except (redis.exceptions.RedisError, OSError):
        return False


class ClusterStartError(Exception):
    """The throwaway cluster could not be started (the message says why)."""


@contextmanager
def running_redis_cluster(masters: int = 3, replicas: int = 1) -> Iterator[RedisClusterProcesses]:
    """A throwaway cluster of ``masters`` masters with ``replicas`` replicas each."""
    if shutil.which("redis-cli") is None:
        raise ClusterStartError("a Redis Cluster needs redis-cli (apt-get install redis-tools)")
    with tempfile.TemporaryDirectory(prefix="dino-redis-cluster-") as directory:
        cluster = RedisClusterProcesses(
            _free_cluster_ports(masters * (1 + replicas)), Path(directory)
        )
        try:
            for port in cluster.ports:
                cluster.start(port)
            create = ["redis-cli", "--cluster", "create"]
            create += [f"127.0.0.1:{port}" for port in cluster.ports]
            create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
            done = subprocess.run(create, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise ClusterStartError(
                    f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}"
                )
            cluster.wait_healthy()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_processes() -> Iterator[RedisClusterProcesses]:
    """A 3-master, 3-replica Redis Cluster for the whole test session."""
    try:
        with running_redis_cluster() as cluster:
            yield cluster
    except ClusterStartError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def redis_cluster(redis_cluster_processes: RedisClusterProcesses) -> RedisClusterProcesses:
    """The session's cluster, healthy again after whatever the previous test did."""
    for port in redis_cluster_processes.ports:
        if port not in redis_cluster_processes.processes:  # killed by a test that failed
            redis_cluster_processes.start(port)
    redis_cluster_processes.wait_healthy()
    return redis_cluster_processes


def cluster_client(nodes: str) -> RedisCluster:
    startup = [ClusterNode(h, int(p)) for h, _, p in (n.rpartition(":") for n in nodes.split(","))]
    return RedisCluster(startup_nodes=startup, decode_responses=True)


async def delete_prefix_on_cluster(client: RedisCluster, prefix: str) -> None:
    """Delete every key under ``prefix`` on every master (one key per command: keys of
    different slots cannot share a DEL)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    for node in client.get_primaries():
        keys = [
            k async for k in client.scan_iter(match=escaped + "*", count=500, target_nodes=node)
        ]
        for key in keys:
            await client.delete(key)


@asynccontextmanager
async def cluster_client_under(nodes: str, prefix: str) -> AsyncIterator[RedisCluster]:
    """A cluster client; every key under ``prefix`` goes when it does."""
    client = cluster_client(nodes)
    await client.initialize()  # before concurrent commands race to do it
    try:
        yield client
    finally:
        await client.aclose()
        # A fresh client: after a failover test the first one's connections are stale.
        cleaner = cluster_client(nodes)
        try:
            await delete_prefix_on_cluster(cleaner, prefix)
        finally:
            await cleaner.aclose()


@pytest_asyncio.fixture
async def redis_cluster_client(
    redis_cluster: RedisClusterProcesses, key_prefix: str
) -> AsyncIterator[RedisCluster]:
    async with cluster_client_under(redis_cluster.nodes, key_prefix) as client:
        yield client
