"""What every scenario shares: targets, client setup at a bounded pace, the
message pacer, per-second sampling, the measured window and the drain.

A scenario is a coroutine taking a Harness; the Harness holds all the run's
state (no module-level state), and loadtest.report turns it into results.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loadtest import payload
from loadtest.client import ClientError, EventHandler, RawMessageHandler, SioClient, Target
from loadtest.procstat import MachineSample, SelfSample, ServerWatch, busy_cores
from loadtest.progress import Progress
from loadtest.seqcheck import SeqLedger, SeqTracker
from loadtest.stats import LatencyRecorder, Steps
from loadtest.ws import new_read_buffer

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CommonConfig:
    """Options every scenario takes (see loadtest.cli for their help)."""

    scenario: str
    urls: list[str]
    path: str = "/socket.io/"
    namespace: str = "/chat"
    timeout: float = 10.0
    concurrency: int = 200
    ramp_up: float = 0.0
    drain: float = 10.0
    source_ips: list[str] = field(default_factory=list)
    server_pids: list[int] = field(default_factory=list)
    run_id: str = "lt"
    progress: bool = True


@dataclass(slots=True)
class Traffic:
    """Counters of messages sent and delivered."""

    sent: int = 0
    send_ok: int = 0
    send_failed: int = 0
    send_errors: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0  # counted when the latency window rolls
    unparsed: int = 0  # message events that were not the tool's
    misrouted: int = 0  # our messages for a log this client is not in
    first_send_ns: int = 0
    last_send_ns: int = 0
    last_recv_ns: int = 0
    connected: int = 0  # gauge: clients currently connected
    dropped: int = 0  # connections the server (or network) closed


class Receiver:
    """Hot path: one client's ``message`` events -> seq accounting + latency."""

    __slots__ = ("_traffic", "_window", "trackers")

    def __init__(self, traffic: Traffic, window: list[int]) -> None:
        self.trackers: dict[int, SeqTracker] = {}
        self._window = window
        self._traffic = traffic

    def on_message(self, raw: bytes, recv_ns: int) -> None:
        d = payload.decode_delivery(raw)
        if d is None:
            self._traffic.unparsed += 1
            return
        tracker = self.trackers.get(d.key)
        if tracker is None:
            self._traffic.misrouted += 1
            return
        tracker.add(d.seq)
        self._window.append(recv_ns - d.sent_ns)
        self._traffic.last_recv_ns = recv_ns


@dataclass(slots=True)
class Tick:
    """One second of the run, for the timeline and the plot."""

    t: float
    phase: str
    connected: int
    sent: int
    acked: int
    deliveries: int
    p50_us: float
    p99_us: float
    max_us: float
    tool_cpu: float  # fraction of one core
    server_cpu: float  # cores
    server_rss: int
    machine_cpu: float  # cores busy on the whole machine (tool + server + others)
    loop_lag_ms: float  # worst delay of the tool's event loop in this second


class Harness:
    def __init__(self, cfg: CommonConfig) -> None:
        self.cfg = cfg
        self.steps = Steps()
        self.traffic = Traffic()
        self.latency = LatencyRecorder()
        self.ack_latency = LatencyRecorder()
        self.ledger = SeqLedger()
        self.server = ServerWatch.of(cfg.server_pids)
        self.timeline: list[Tick] = []
        self.clients: list[SioClient] = []
        self.extra: dict[str, Any] = {}  # scenario-specific results
        self.phase = "setup"
        self.t0 = time.perf_counter()
        self.self_start = SelfSample.now()
        self.measure_start: SelfSample | None = None
        self.measure_end: SelfSample | None = None
        self.machine_start: MachineSample | None = None
        self.machine_cores_measured = 0.0
        self.loop_lag = LatencyRecorder()  # ns; see _lag_probe
        self.server_cpu_measured = 0.0
        self.progress = Progress(enabled=cfg.progress)
        self._targets = [Target.from_url(u, cfg.path) for u in cfg.urls]
        self._ticker: asyncio.Task[None] | None = None
        # one receive buffer for all clients: see loadtest.ws.WebSocketProtocol
        self._read_buffer = new_read_buffer()
        self.last_self = self.self_start
        self._last_srv_cpu = self.server.sample()[0]
        self._last_machine = MachineSample.now()
        self._lag_task: asyncio.Task[None] | None = None

    # -- clients ----------------------------------------------------------
    def target(self, index: int) -> Target:
        """Clients go round-robin over --url; source IPs rotate per full round."""
        t = self._targets[index % len(self._targets)]
        ips = self.cfg.source_ips
        if ips:
            ip = ips[(index // len(self._targets)) % len(ips)]
            return Target(t.host, t.port, t.path, ip)
        return t

    def new_client(
        self,
        on_message: RawMessageHandler | None = None,
        on_event: EventHandler | None = None,
    ) -> SioClient:
        return SioClient(
            self.cfg.namespace, on_message, on_event, self._on_close, self._read_buffer
        )

    def _on_close(self, client: SioClient, reason: str) -> None:
        if client.sid is not None:
            self.traffic.connected -= 1
        if client.closing:
            return
        if self.phase == "teardown":
            # Closing thousands of clients can stall a server long enough to time
            # out the others' pings; the measurement is over, so only note it.
            self.extra["closed_by_server_in_teardown"] = (
                self.extra.get("closed_by_server_in_teardown", 0) + 1
            )
            return
        self.traffic.dropped += 1
        self.extra.setdefault("drop_reasons", Counter())[reason[:80]] += 1

    async def connect(self, client: SioClient, index: int) -> None:
        await self.step("connect", client.connect(self.target(index), self.cfg.timeout))
        self.traffic.connected += 1

    async def step(self, name: str, work: Awaitable[T]) -> T:
        """Await one client step, recording its outcome and duration."""
        started = time.perf_counter()
        try:
            result = await work
        except ClientError as exc:
            self.steps[name].record(started, time.perf_counter(), str(exc))
            raise
        self.steps[name].record(started, time.perf_counter())
        return result

    async def run_many(
        self, count: int, work: Callable[[int], Awaitable[None]], ramp_up: float | None = None
    ) -> None:
        """Run ``work(i)`` for i in range(count): at most --concurrency at once,
        starts spread evenly over the ramp-up time. A failing item is recorded by
        its step and does not stop the others."""
        ramp = self.cfg.ramp_up if ramp_up is None else ramp_up
        start = time.perf_counter()
        indexes = iter(range(count))

        async def worker() -> None:
            for i in indexes:
                if ramp > 0:
                    delay = start + ramp * i / count - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                with contextlib.suppress(ClientError):
                    await work(i)

        workers = min(self.cfg.concurrency, count)
        await asyncio.gather(*(worker() for _ in range(workers)))

    # -- sending ----------------------------------------------------------
    async def pace(self, rate: float, duration: float, send: Callable[[int], None]) -> None:
        """Call ``send(i)`` for the i-th message at start + i/rate, for ``duration``
        seconds. One task for all senders; if the loop falls behind, the due
        messages go out in a burst so the average rate holds."""
        total = int(rate * duration)
        start = time.perf_counter()
        done = 0
        while done < total:
            now = time.perf_counter()
            due = min(total, int((now - start) * rate) + 1)
            for i in range(done, due):
                send(i)
            done = due
            if done < total:
                await asyncio.sleep(max(0.0, start + done / rate - time.perf_counter()))

    def sender_events(self) -> EventHandler:
        """on_event for senders: account ``gn_message`` answers."""
        traffic = self.traffic
        ledger = self.ledger
        window = self.ack_latency.window

        def on_event(event: str, data: Any) -> None:
            if event != "gn_message":
                return
            now = time.time_ns()
            if isinstance(data, dict) and data.get("status_code") == 200:
                d = payload.activity_delivery(data.get("data"))
                if d is None:
                    traffic.send_failed += 1
                    traffic.send_errors["gn_message without seq/content"] += 1
                    return
                traffic.send_ok += 1
                ledger.acked(d.key, d.seq)
                window.append(now - d.sent_ns)
            else:
                traffic.send_failed += 1
                code = data.get("status_code") if isinstance(data, dict) else None
                msg = data.get("data") if isinstance(data, dict) else data
                traffic.send_errors[f"{code}: {msg!s:.80}"] += 1

        return on_event

    def content(self, key: int, size: int) -> str:
        now = time.time_ns()
        tr = self.traffic
        if tr.first_send_ns == 0:
            tr.first_send_ns = now
        tr.last_send_ns = now
        tr.sent += 1
        return payload.make_content(now, key, size)

    # -- phases -----------------------------------------------------------
    def start_measure(self) -> None:
        self.phase = "measure"
        self.server.set_mark()
        self.measure_start = SelfSample.now()
        self.machine_start = MachineSample.now()

    def end_measure(self) -> None:
        self.server.sample()
        self.measure_end = SelfSample.now()
        self.server_cpu_measured = self.server.cpu_since_mark()
        if self.machine_start is not None:
            self.machine_cores_measured = busy_cores(self.machine_start, MachineSample.now())
        self.phase = "teardown"

    async def drain(self, settled: Callable[[], bool]) -> float:
        """Wait (at most --drain seconds) until ``settled()``; returns the wait."""
        self.phase = "drain"
        start = time.perf_counter()
        deadline = start + self.cfg.drain
        while not settled() and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return time.perf_counter() - start

    def deliveries_settled(self) -> bool:
        """Every send answered and every member has seen its log's newest seq."""
        tr = self.traffic
        if tr.send_ok + tr.send_failed < tr.sent:
            return False
        final = self.ledger.final
        for key, trackers in self.ledger.trackers.items():
            top = final.get(key, 0)
            for t in trackers:
                if t.last < top or t.missing:
                    return False
        return True

    async def close_all(self, clients: list[SioClient] | None = None) -> None:
        self.phase = "teardown"
        todo = self.clients if clients is None else clients
        size = max(1, self.cfg.concurrency)
        for i in range(0, len(todo), size):
            await asyncio.gather(*(c.close(2.0) for c in todo[i : i + size]))

    # -- sampling ---------------------------------------------------------
    def start_ticker(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop())
        self._lag_task = asyncio.create_task(self._lag_probe())

    async def stop_ticker(self) -> None:
        for task in (self._ticker, self._lag_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._lag_task = None
        self.tick()
        self.progress.finish()

    async def _lag_probe(self) -> None:
        """How late a 10 ms sleep wakes up: when the tool's own loop is busy,
        this grows, and measured latency then includes the tool's queueing."""
        window = self.loop_lag.window
        while True:
            before = time.perf_counter_ns()
            await asyncio.sleep(0.01)
            window.append(time.perf_counter_ns() - before - 10_000_000)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.tick()

    def tick(self) -> None:
        prev = self.last_self
        now = self.last_self = SelfSample.now()
        lat = self.latency.roll()
        self.ack_latency.roll()
        self.traffic.deliveries += int(lat["count"])
        lag = self.loop_lag.roll()
        srv_cpu, srv_rss = self.server.sample()
        prev_srv_cpu, self._last_srv_cpu = self._last_srv_cpu, srv_cpu
        machine = MachineSample.now()
        prev_machine, self._last_machine = self._last_machine, machine
        wall = max(1e-6, now.wall - prev.wall)
        tick = Tick(
            t=round(now.wall - self.t0, 3),
            phase=self.phase,
            connected=self.traffic.connected,
            sent=self.traffic.sent,
            acked=self.traffic.send_ok,
            deliveries=int(lat["count"]),
            p50_us=lat["p50"],
            p99_us=lat["p99"],
            max_us=lat["max"],
            tool_cpu=(now.cpu_s - prev.cpu_s) / wall,
            server_cpu=(srv_cpu - prev_srv_cpu) / wall,
            server_rss=srv_rss,
            machine_cpu=round(busy_cores(prev_machine, machine), 3),
            loop_lag_ms=lag["max"] / 1000,
        )
        self.timeline.append(tick)
        self.progress.show(self, tick, wall)
