"""Real parts for the cluster test: a restartable Redis, dino nodes, nginx, and clients.

Everything runs on 127.0.0.0/8 and is started as a subprocess:

* ``RedisServer``: ``redis-server`` on a free port with ``--appendonly yes --appendfsync
  always`` in a private directory, so it can be killed with SIGKILL and started again on
  the same port without losing an acknowledged write.
* ``DinoNode``: ``python run.py`` with a fixed ``--node-id``; it can be killed (SIGKILL,
  as a crash) and started again under the same id.
* ``Nginx``: a real ``nginx`` running the repository's ``nginx.conf.example``, rendered
  with ``render_nginx_example`` (upstream servers and listen address substituted; every
  other line is the example's own), inside a minimal main config whose pid, logs and
  temp paths are in the private directory.
* ``ChatClient``: a python-socketio ``AsyncClient`` whose HTTP session is bound to one
  loopback source address (127.0.0.2, 127.0.0.3, ...). nginx hashes the client address,
  so the source address decides the node; ``Cluster.routes`` finds out which.

``Cluster`` ties them together; ``tests/test_cluster.py`` holds one for the module and
``benchmarks/cross_node_latency.py`` uses the same parts. Every process is stopped in
``Cluster.close`` (a fixture finalizer), also when a test failed halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import aiohttp
import socketio

from tests.redis_fixture import free_port, redis_answers

REPO = Path(__file__).resolve().parent.parent
NGINX_EXAMPLE = REPO / "nginx.conf.example"
NAMESPACE = "/chat"
# Source addresses probed for routes; nginx sees each as a different client.
SOURCE_ADDRESSES = tuple(f"127.0.0.{i}" for i in range(2, 82))


class ClusterError(AssertionError):
    """A part of the cluster did not start or answer; the message carries its log."""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def http_get_json(url: str, timeout: float = 2.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: dict[str, Any] = json.loads(resp.read().decode())
        return data


# -- Redis ----------------------------------------------------------------------------------


class RedisServer:
    """``redis-server`` with an fsync-always AOF in ``workdir``; restartable on one port."""

    def __init__(self, workdir: Path, port: int | None = None, fsync: str = "always") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ClusterError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.fsync = fsync  # "always": nothing acknowledged is lost on kill -9
        self.log_path = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "",
            "--dir", str(self.workdir), "--logfile", str(self.log_path),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not redis_answers(self.url):  # False while the AOF is loading, too
            if self.proc.poll() is not None:
                raise ClusterError(f"redis-server exited with {self.proc.returncode}:\n"
                                   f"{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"redis-server did not answer in {timeout}s:\n"
                                   f"{_tail(self.log_path)}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no shutdown save; what the AOF holds is what survives."""
        _stop_process(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        _stop_process(self.proc, signal.SIGTERM)


# -- dino nodes -----------------------------------------------------------------------------


class DinoNode:
    """``python run.py`` on one port under a fixed node id."""

    def __init__(self, node_id: str, port: int, redis_url: str, prefix: str, workdir: Path,
                 lease_ttl: float, heartbeat_interval: float) -> None:
        self.node_id = node_id
        self.port = port
        self.args = [
            sys.executable, "run.py", "--host", "127.0.0.1", "--port", str(port),
            "--redis-url", redis_url, "--redis-prefix", prefix, "--node-id", node_id,
            "--lease-ttl", str(lease_ttl), "--heartbeat-interval", str(heartbeat_interval),
        ]
        self.log_path = workdir / f"{node_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        self._log.write(f"==== start {time.strftime('%H:%M:%S')} ====\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until GET /health answers with this node's id (the node is serving)."""
        deadline = time.monotonic() + timeout
        last = "nothing tried"
        while time.monotonic() < deadline:
            if not self.alive:
                raise ClusterError(f"node {self.node_id} exited:\n{self.log_tail()}")
            try:
                if self.health().get("node") == self.node_id:
                    return
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise ClusterError(f"node {self.node_id} not serving after {timeout}s ({last}):\n"
                           f"{self.log_tail()}")

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def health(self) -> dict[str, Any]:
        return http_get_json(self.url + "/health")

    def kill(self) -> None:
        _stop_process(self.proc, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        self.resume()  # a paused node would not act on SIGTERM
        _stop_process(self.proc, signal.SIGTERM)
        self._reap()

    def pause(self) -> None:
        """SIGSTOP: alive but silent, like a long GC pause or a frozen VM."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)

    def _reap(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- nginx ----------------------------------------------------------------------------------

_UPSTREAM_RE = re.compile(r"^(\s*upstream\s+[\w.-]+\s*\{)(.*?)^(\s*\})", re.S | re.M)
_SERVER_LINE_RE = re.compile(r"^(\s*)server\s+(\S+?)(\s[^;]*)?;[^\n]*\n", re.M)
_LISTEN_RE = re.compile(r"^(\s*)listen\s+[^;]+;", re.M)


def render_nginx_example(text: str, upstreams: Iterable[str], listen: str) -> str:
    """The example with its upstream ``server`` lines replaced by ``upstreams`` (keeping the
    first line's parameters: max_fails, fail_timeout, ...) and its ``listen`` by ``listen``.

    Commented lines are left alone. Raises ValueError if the example no longer has exactly
    one upstream block with server lines, or exactly one listen line."""
    blocks = list(_UPSTREAM_RE.finditer(text))
    if len(blocks) != 1:
        raise ValueError(f"expected one upstream block in the example, found {len(blocks)}")
    block = blocks[0]
    body = block.group(2)
    servers = list(_SERVER_LINE_RE.finditer(body))
    if not servers:
        raise ValueError("the upstream block has no server lines")
    indent, params = servers[0].group(1), servers[0].group(3) or ""
    new_lines = "".join(f"{indent}server {address}{params};\n" for address in upstreams)
    first = servers[0].start()
    new_body = body[:first] + new_lines + _SERVER_LINE_RE.sub("", body[first:])
    text = text[: block.start(2)] + new_body + text[block.end(2):]
    listens = list(_LISTEN_RE.finditer(text))
    if len(listens) != 1:
        raise ValueError(f"expected one listen line in the example, found {len(listens)}")
    return _LISTEN_RE.sub(lambda m: f"{m.group(1)}listen {listen};", text)


def nginx_main_conf(prefix: Path, include: Path) -> str:
    """A main nginx.conf for a private, foreground nginx that includes the example."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the temp dirs
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / ('temp_' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} notice;\n"
        # Two connections per proxied client: room for the drills' thousands of clients.
        "worker_rlimit_nofile 20000;\n"
        "events { worker_connections 10000; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n{temp}\n"
        f"    include {include};\n"
        "}\n"
    )


class Nginx:
    """nginx running ``nginx.conf.example`` in front of ``upstreams``."""

    def __init__(self, workdir: Path, upstreams: list[str], port: int | None = None) -> None:
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                           else None)
        if binary is None:
            raise ClusterError("nginx is not installed (apt-get install nginx)")
        self.binary = binary
        self.prefix = workdir / "nginx"
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.site_conf = self.prefix / "dino.conf"
        self.site_conf.write_text(render_nginx_example(
            NGINX_EXAMPLE.read_text(), upstreams, f"127.0.0.1:{self.port}"))
        self.main_conf = self.prefix / "nginx.conf"
        self.main_conf.write_text(nginx_main_conf(self.prefix, self.site_conf))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _args(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(self.main_conf),
                "-e", str(self.prefix / "error.log"), *extra]

    def start(self, timeout: float = 10.0) -> None:
        check = subprocess.run(self._args("-t"), capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise ClusterError(f"nginx -t rejected the rendered example:\n{check.stderr}\n"
                               f"{self.site_conf.read_text()}")
        self.proc = subprocess.Popen(self._args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ClusterError(f"nginx exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                http_get_json(self.url + "/health", timeout=1.0)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise ClusterError(f"nginx did not proxy /health in {timeout}s:\n"
                                       f"{self.log_tail()}") from None
            time.sleep(0.05)

    def stop(self) -> None:
        # SIGQUIT would wait for open websockets to finish; SIGTERM is nginx's fast exit.
        _stop_process(self.proc, signal.SIGTERM)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.prefix / "error.log", lines)


# -- clients --------------------------------------------------------------------------------


def bound_session_factory(source_ip: str) -> Callable[[], aiohttp.ClientSession]:
    """aiohttp sessions whose connections leave from ``source_ip`` (any 127.x address)."""

    def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source_ip, 0)))

    return make


async def get_json_from(source_ip: str, url: str, timeout: float = 3.0) -> dict[str, Any]:
    async with bound_session_factory(source_ip)() as http, http.get(
        url, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as resp:
        resp.raise_for_status()
        data: dict[str, Any] = await resp.json()
        return data


class ChatClient:
    """A socket.io client of namespace /chat, bound to one source address.

    Pushes are recorded with their arrival time (``time.monotonic()``): ``messages`` holds
    ``message`` activities, ``presence`` holds ``(event, payload)`` for gn_user_joined/left.
    The HTTP session is a factory, so a reconnect after a node's death gets a fresh one
    from the same address."""

    def __init__(self, user: str, source_ip: str, *, transports: tuple[str, ...] = ("websocket",),
                 reconnection: bool = True) -> None:
        self.user = user
        self.source_ip = source_ip
        self.transports = list(transports)
        self.sio = socketio.AsyncClient(
            reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=1.0,
            randomization_factor=0.0, handle_sigint=False,
            http_session=bound_session_factory(source_ip),
        )
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.presence: list[tuple[float, str, dict[str, Any]]] = []
        self.connects = 0
        self.disconnects = 0
        sio = self.sio
        sio.on("connect", self._on_connect, namespace=NAMESPACE)
        sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        sio.on("message", self._on_message, namespace=NAMESPACE)
        sio.on("gn_user_joined", self._on_joined, namespace=NAMESPACE)
        sio.on("gn_user_left", self._on_left, namespace=NAMESPACE)

    async def _on_connect(self) -> None:
        self.connects += 1

    async def _on_disconnect(self, *_: Any) -> None:
        self.disconnects += 1

    async def _on_message(self, data: dict[str, Any]) -> None:
        self.messages.append((time.monotonic(), data))

    async def _on_joined(self, data: dict[str, Any]) -> None:
        self.presence.append((time.monotonic(), "gn_user_joined", data))

    async def _on_left(self, data: dict[str, Any]) -> None:
        self.presence.append((time.monotonic(), "gn_user_left", data))

    @property
    def connected(self) -> bool:
        return bool(self.sio.connected) and NAMESPACE in self.sio.namespaces

    async def connect(self, url: str, origin: str | None = None) -> None:
        headers = {"Origin": origin} if origin else {}
        await self.sio.connect(url, headers=headers, transports=self.transports,
                               namespaces=[NAMESPACE], wait_timeout=10)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, OSError):
            # shutdown() also stops a reconnection loop in progress
            await asyncio.wait_for(self.sio.shutdown(), timeout=5)
        if self.sio.eio.http is not None and not self.sio.eio.http.closed:
            await self.sio.eio.http.close()

    @property
    def transport(self) -> str | None:
        name: str | None = self.sio.transport()
        return name

    async def call(self, event: str, payload: dict[str, Any], timeout: float = 10.0
                   ) -> dict[str, Any]:
        reply: dict[str, Any] = await self.sio.call(event, payload, namespace=NAMESPACE,
                                                    timeout=timeout)
        return reply

    async def ok(self, event: str, payload: dict[str, Any]) -> Any:
        reply = await self.call(event, payload)
        assert reply.get("status_code") == 200, f"{self.user} {event}: {reply}"
        return reply.get("data")

    async def login(self) -> None:
        await self.ok("login", {"verb": "login", "actor": {"id": self.user,
                                                           "summary": self.user.title()}})

    async def create_room(self, name: str) -> str:
        data = await self.ok("create", {"verb": "create", "target": {"displayName": name}})
        room_id: str = data["target"]["id"]
        return room_id

    async def join(self, room_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.ok("join", {"verb": "join", "target": {"id": room_id}})
        return data

    async def send(self, room_id: str, content: str, timeout: float = 10.0) -> dict[str, Any]:
        return await self.call("message", {
            "verb": "send", "target": {"id": room_id},
            "object": {"content": content, "objectType": "group"},
        }, timeout=timeout)

    async def users_in_room(self, room_id: str) -> list[str]:
        data = await self.ok("users_in_room", {"verb": "list", "target": {"id": room_id}})
        return [u["id"] for u in data["object"]["attachments"]]

    async def history(self, room_id: str, since: int | None = None, limit: int = 500
                      ) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {"verb": "list", "target": {"id": room_id}, "limit": limit}
        if since is not None:
            payload["since"] = since
        data = await self.ok("history", payload)
        entries: list[dict[str, Any]] = data["object"]["attachments"]
        return entries

    def room_messages(self, room_id: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m.get("target", {}).get("id") == room_id]

    def left(self, room_id: str, user: str) -> list[float]:
        """Arrival times of gn_user_left for ``user`` in ``room_id``."""
        return [t for t, event, p in self.presence if event == "gn_user_left"
                and p["target"]["id"] == room_id and p["actor"]["id"] == user]


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
                     interval: float = 0.02) -> float:
    """Poll ``predicate`` until true; returns the seconds it took. Fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start


# -- the cluster ----------------------------------------------------------------------------


class Cluster:
    """Redis, ``node_count`` dino nodes on it, and (``with_nginx``) nginx in front."""

    def __init__(self, node_count: int = 3, *, lease_ttl: float = 4.0,
                 heartbeat_interval: float = 1.0, with_nginx: bool = True,
                 redis_fsync: str = "always") -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dino-cluster-"))
        self.workdir.chmod(0o755)  # nginx workers (another user unless root) read inside
        self.lease_ttl = lease_ttl
        self.heartbeat_interval = heartbeat_interval
        self.redis = RedisServer(self.workdir, fsync=redis_fsync)
        self.prefix = f"dinocluster:{os.getpid()}:"
        names = [f"node{chr(ord('A') + i)}" for i in range(node_count)]
        self.nodes = {
            name: DinoNode(name, free_port(), self.redis.url, self.prefix, self.workdir,
                           lease_ttl, heartbeat_interval)
            for name in names
        }
        self.nginx = (Nginx(self.workdir, [f"127.0.0.1:{n.port}" for n in self.nodes.values()])
                      if with_nginx else None)

    def start(self) -> None:
        self.redis.start()
        for node in self.nodes.values():
            node.spawn()
        for node in self.nodes.values():
            node.wait_ready()
        if self.nginx is not None:
            self.nginx.start()

    def close(self) -> None:
        """Stop everything, whatever state it is in. Safe to call twice."""
        if self.nginx is not None:
            self.nginx.stop()
        for node in self.nodes.values():
            node.stop()
        self.redis.stop()
        if os.environ.get("DINO_KEEP_CLUSTER_LOGS"):
            print(f"\ncluster logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def ensure_up(self) -> None:
        """Restart whatever a previous test killed (nodes under their own ids)."""
        if self.redis.proc is None or self.redis.proc.poll() is not None:
            self.redis.start()
        dead = [node for node in self.nodes.values() if not node.alive]
        for node in dead:
            node.spawn()
        for node in dead:
            node.wait_ready()

    @property
    def url(self) -> str:
        assert self.nginx is not None
        return self.nginx.url

    async def routes(self, addresses: Iterable[str] = SOURCE_ADDRESSES) -> dict[str, str]:
        """Which node nginx sends each source address to: GET /health through nginx."""
        addresses = list(addresses)
        replies = await asyncio.gather(
            *(get_json_from(ip, self.url + "/health") for ip in addresses))
        return {ip: reply["node"] for ip, reply in zip(addresses, replies, strict=True)}

    async def addresses_by_node(self, per_node: int = 1) -> dict[str, list[str]]:
        """``per_node`` source addresses for every live node (fails if some node gets none)."""
        by_node: dict[str, list[str]] = {}
        for ip, node_id in (await self.routes()).items():
            by_node.setdefault(node_id, []).append(ip)
        for name, node in self.nodes.items():
            if node.alive and len(by_node.get(name, [])) < per_node:
                raise ClusterError(f"nginx sends fewer than {per_node} of "
                                   f"{len(SOURCE_ADDRESSES)} addresses to {name}: {by_node}")
        return {node_id: ips[:per_node] for node_id, ips in by_node.items()}

    def logs(self) -> str:
        parts = [f"--- {name} ---\n{node.log_tail()}" for name, node in self.nodes.items()]
        if self.nginx is not None:
            parts.append(f"--- nginx ---\n{self.nginx.log_tail()}")
        parts.append(f"--- redis ---\n{_tail(self.redis.log_path, 10)}")
        return "\n".join(parts)
