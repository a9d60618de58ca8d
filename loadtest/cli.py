"""Command line: ``python -m loadtest {chat,idle,churn,direct,api} [options]``.

Exit status: 0 when every step succeeded and nothing was lost, duplicated or
out of order; 1 when anything was; 2 for bad arguments or an aborted run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from loadtest import report
from loadtest.harness import CommonConfig, Harness
from loadtest.procstat import raise_fd_limit
from loadtest.scenarios import api, chat, churn, direct, idle

DEFAULT_URL = "http://127.0.0.1:5210"
EPILOG = """\
examples:
  fan-out: 200 clients in one room, 20 senders, 100 msg/s for 10 s (20,000 deliveries/s)
    python -m loadtest chat --rooms 1 --members 200 --senders 20 --rate 100 --duration 10
  many rooms: 2,000 clients in rooms of 10, over two nodes
    python -m loadtest chat --url http://127.0.0.1:5211 --url http://127.0.0.1:5212 \\
        --rooms 200 --members 10 --senders 200 --rate 200 --duration 10
  idle memory: 10,000 logged-in connections held for 60 s
    python -m loadtest idle --clients 10000 --room-size 100 --duration 60 --server-pid PID
  churn: 50 connect+login+join+leave+disconnect cycles per second for 20 s
    python -m loadtest churn --rate 50 --duration 20 --server-pid PID
  direct: 50 user pairs, 100 direct messages/s
    python -m loadtest direct --pairs 50 --rate 100 --duration 10
  api: a backend notifies 500 logged-in users, 2,000 POST /api/v1/messages per second
    DINO_API_KEY=KEY python -m loadtest api --users 500 --rate 2000 --duration 10

what is checked and reported:
  setup steps (connect, login, create, join, leave...): count, failures, rate, latency;
  every delivery by seq: each member must get every seq of its room (or conversation)
  stored after its join, once, in order -> lost / duplicated / out-of-order per log;
  delivery latency (send time written into object.content -> receive time) p50..max;
  deliveries/s; server CPU (µs per delivery, message or churn cycle) and RSS with
  --server-pid; the tool's own CPU and event-loop lag (if near one core, the tool
  was the limit); CPU used by other processes on the machine;
  api: calls by HTTP status, notifications accepted (201) per second, POST->201 latency.

exit status: 0 when all is well; 1 when anything was lost, duplicated or reordered,
  a step failed, a message was rejected or unanswered, or a connection was dropped;
  2 for bad arguments or an interrupted run.

Only plain http:// targets on this machine are meant: the tool is for loopback tests.
Beyond ~28,000 clients to one address the ephemeral port range runs out
(/proc/sys/net/ipv4/ip_local_port_range): add --source-ip 127.0.0.2 etc.
"""

ScenarioRun = Callable[[Harness, Any], Awaitable[None]]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _common_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("target and run options (all scenarios)")
    g.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help=f"server base URL; repeat to spread clients round-robin (default {DEFAULT_URL})",
    )
    g.add_argument("--path", default="/socket.io/", help="socket.io path (default %(default)s)")
    g.add_argument("--namespace", default="/chat", help="namespace (default %(default)s)")
    g.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds per request/connect (default %(default)s)",
    )
    g.add_argument(
        "--concurrency",
        type=_positive_int,
        default=200,
        help="clients set up at the same time (default %(default)s)",
    )
    g.add_argument(
        "--ramp-up",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="spread client connects evenly over this time "
        "(default: as fast as --concurrency allows)",
    )
    g.add_argument(
        "--drain",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="after sending stops, wait at most this long for outstanding deliveries "
        "(default %(default)s)",
    )
    g.add_argument(
        "--source-ip",
        action="append",
        default=[],
        metavar="IP",
        help="bind clients to these local addresses in turn (e.g. 127.0.0.2); "
        "repeat to go past ~28k clients per target address",
    )
    g.add_argument(
        "--server-pid",
        action="append",
        type=int,
        default=[],
        metavar="PID",
        help="server process to sample for CPU and RSS; repeat for several nodes",
    )
    g.add_argument(
        "--run-id", help="prefix of user and room names (default: random, so runs never collide)"
    )
    g.add_argument("--json", metavar="FILE", help="write all results as JSON")
    g.add_argument(
        "--plot",
        metavar="FILE.png",
        help="plot throughput, latency and CPU over time (needs matplotlib)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    g.add_argument(
        "--uvloop",
        action="store_true",
        help="run on uvloop (if installed) instead of asyncio's loop",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common_parser()
    parser = argparse.ArgumentParser(
        prog="python -m loadtest",
        description="Load generator for dino: thousands of socket.io clients in one process, "
        "checking every delivery by seq (lost / duplicated / out of order) and measuring latency, "
        "throughput and server CPU/RSS.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")

    p = sub.add_parser(
        "chat", parents=[common], help="R rooms of K members, S senders at a total rate"
    )
    p.add_argument(
        "--rooms", type=_positive_int, default=1, help="number of rooms (default %(default)s)"
    )
    p.add_argument(
        "--members", type=_positive_int, default=200, help="clients per room (default %(default)s)"
    )
    p.add_argument(
        "--senders",
        type=_positive_int,
        default=20,
        help="sending clients in all (default %(default)s)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="messages per second, all senders together (default %(default)s)",
    )
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds of sending (default %(default)s)"
    )
    p.add_argument(
        "--message-size", type=int, default=0, help="pad object.content to this many characters"
    )

    p = sub.add_parser(
        "idle", parents=[common], help="hold N logged-in connections, each in a room"
    )
    p.add_argument(
        "--clients", type=_positive_int, default=1000, help="connections (default %(default)s)"
    )
    p.add_argument(
        "--room-size",
        type=_positive_int,
        default=100,
        help="clients per room (default %(default)s)",
    )
    p.add_argument(
        "--duration", type=float, default=30.0, help="seconds to hold them (default %(default)s)"
    )

    p = sub.add_parser(
        "churn", parents=[common], help="connect+login+join+leave+disconnect cycles at a rate"
    )
    p.add_argument(
        "--rate", type=float, default=50.0, help="cycles started per second (default %(default)s)"
    )
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds of churn (default %(default)s)"
    )
    p.add_argument(
        "--rooms",
        type=_positive_int,
        default=10,
        help="rooms the cycles join (default %(default)s)",
    )
    p.add_argument(
        "--max-inflight",
        type=_positive_int,
        default=1000,
        help="cycles running at once at most (default %(default)s)",
    )

    p = sub.add_parser("direct", parents=[common], help="user-to-user messages between fixed pairs")
    p.add_argument(
        "--pairs",
        type=_positive_int,
        default=50,
        help="sender/receiver pairs (default %(default)s)",
    )
    p.add_argument(
        "--rate", type=float, default=100.0, help="messages per second in all (default %(default)s)"
    )
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds of sending (default %(default)s)"
    )
    p.add_argument(
        "--message-size", type=int, default=0, help="pad object.content to this many characters"
    )

    p = sub.add_parser(
        "api",
        parents=[common],
        help="a backend POSTs notifications (HTTP API) to logged-in socket.io users",
    )
    p.add_argument(
        "--users",
        type=_positive_int,
        default=100,
        help="logged-in receiving users (default %(default)s)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="POST /api/v1/messages calls per second (default %(default)s)",
    )
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds of calling (default %(default)s)"
    )
    p.add_argument(
        "--targets-per-call",
        type=_positive_int,
        default=1,
        metavar="T",
        help="users per call: 1 sends 'target', more send a 'targets' list; users are "
        "split into groups of T (default %(default)s)",
    )
    p.add_argument(
        "--connections",
        type=_positive_int,
        default=8,
        help="keep-alive HTTP connections, one request in flight on each; calls beyond "
        "them wait, and the wait counts in latency (default %(default)s)",
    )
    p.add_argument(
        "--api-key",
        default=api.ApiConfig.key_from_env(),
        help=f"API key sent as 'Authorization: Bearer KEY' (default: ${api.API_KEY_ENV}; "
        "never written into results)",
    )
    p.add_argument(
        "--message-size", type=int, default=0, help="pad object.content to this many characters"
    )
    return parser


def scenario_of(args: argparse.Namespace) -> tuple[Any, ScenarioRun, int]:
    """(scenario config, its run function, sockets it needs)."""
    if args.scenario == "chat":
        c: Any = chat.ChatConfig(
            args.rooms, args.members, args.senders, args.rate, args.duration, args.message_size
        )
        return c, chat.run, args.rooms * args.members
    if args.scenario == "idle":
        c = idle.IdleConfig(args.clients, args.room_size, args.duration)
        return c, idle.run, args.clients
    if args.scenario == "churn":
        c = churn.ChurnConfig(args.rate, args.duration, args.rooms, args.max_inflight)
        return c, churn.run, args.max_inflight + 1
    if args.scenario == "api":
        c = api.ApiConfig(
            args.users,
            args.rate,
            args.duration,
            args.targets_per_call,
            args.connections,
            args.message_size,
            args.api_key,
        )
        return c, api.run, args.users + args.connections
    c = direct.DirectConfig(args.pairs, args.rate, args.duration, args.message_size)
    return c, direct.run, 2 * args.pairs


def _port_range() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return hi - lo + 1
    except (OSError, ValueError):
        return 28232


async def _run(h: Harness, run: ScenarioRun, cfg: Any) -> None:
    h.start_ticker()
    try:
        await run(h, cfg)
    finally:
        await h.stop_ticker()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        scenario_cfg, run, sockets = scenario_of(args)
        scenario_cfg.validate()
    except ValueError as exc:
        parser.error(str(exc))

    common = CommonConfig(
        scenario=args.scenario,
        urls=args.url or [DEFAULT_URL],
        path=args.path,
        namespace=args.namespace,
        timeout=args.timeout,
        concurrency=args.concurrency,
        ramp_up=args.ramp_up,
        drain=args.drain,
        source_ips=args.source_ip,
        server_pids=args.server_pid,
        run_id=args.run_id or f"lt{uuid.uuid4().hex[:8]}",
        progress=not args.quiet,
    )
    limit = raise_fd_limit(sockets + 256)
    if limit < sockets + 64:
        print(
            f"warning: open-file limit {limit} is below the {sockets} sockets needed",
            file=sys.stderr,
        )
    per_address = sockets / (len(common.urls) * max(1, len(common.source_ips)))
    if per_address > _port_range():
        print(
            f"warning: ~{per_address:,.0f} clients per target address exceeds the ephemeral "
            "port range; add --source-ip 127.0.0.2 (and more)",
            file=sys.stderr,
        )

    try:
        h = Harness(common)
    except ValueError as exc:
        parser.error(str(exc))
    if args.uvloop:
        try:
            import uvloop  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            parser.error("--uvloop: uvloop is not installed (pip install uvloop)")
        runner: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    else:
        runner = asyncio.run
    try:
        runner(_run(h, run, scenario_cfg))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 2
    except Exception as exc:
        h.extra["aborted"] = f"{type(exc).__name__}: {exc}"

    result = report.build(h, scenario_cfg)
    if "aborted" in result["extra"]:
        result["problems"].insert(0, f"run aborted: {result['extra']['aborted']}")
        result["ok"] = False
    print(report.table(result))
    if args.json:
        report.write_json(result, args.json)
    if args.plot:
        from loadtest.plot import write_plot

        write_plot(result, args.plot)
    sys.stdout.flush()
    return 0 if result["ok"] else 1
