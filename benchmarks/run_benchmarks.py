"""Run the standard load scenarios against fresh servers and write BENCHMARKS.md.

    python benchmarks/run_benchmarks.py                 # everything (~10 minutes)
    python benchmarks/run_benchmarks.py --quick         # small counts, to check the script
    python benchmarks/run_benchmarks.py --only fanout --target dino

Rows of scenarios/servers not run this time are taken from earlier result files.

Servers (each scenario gets freshly started ones, so memory figures start clean):
  psio         benchmarks/psio_server.py, python-socketio "the obvious way"
  dino         one dino node, in-memory store
  dino-2nodes  two dino nodes sharing Redis (redis://127.0.0.1:6379/0, a random prefix
               whose keys are deleted afterwards); clients alternate between the nodes

With two or more CPUs the load tool runs on CPU 0 and the servers on the others
(``--no-pin`` to let the kernel schedule), so the tool never competes with the
server it measures. Raw results go to benchmarks/results/<scenario>-<target>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import uuid
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import redis

# Run as a script (python benchmarks/run_benchmarks.py) the repo root is not on
# sys.path; the servers module and the load tool live there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import servers

HERE = Path(__file__).resolve().parent
REDIS_URL = "redis://127.0.0.1:6379/0"
TARGETS = ("psio", "dino", "dino-2nodes")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    targets: tuple[str, ...] = TARGETS


def args(command_line: str) -> tuple[str, ...]:
    """A load tool command line as argv (no quoting needed: no argument has spaces)."""
    return tuple(command_line.split())


SCENARIOS = (
    Scenario(
        "fanout",
        "Fan-out: 200 clients in one room, 20 senders, 100 msg/s for 10 s (20,000 deliveries/s)",
        args("chat --rooms 1 --members 200 --senders 20 --rate 100 --duration 10"),
        args("chat --rooms 1 --members 40 --senders 4 --rate 20 --duration 3"),
    ),
    Scenario(
        "many-rooms",
        "Many rooms: 2,000 clients in 200 rooms of 10, one sender per room, 500 msg/s in all "
        "for 10 s (5,000 deliveries/s)",
        args("chat --rooms 200 --members 10 --senders 200 --rate 500 --duration 10"),
        args("chat --rooms 20 --members 10 --senders 20 --rate 50 --duration 3"),
    ),
    Scenario(
        "idle",
        "Idle memory: 10,000 logged-in connections in rooms of 100, held 30 s",
        args("idle --clients 10000 --room-size 100 --duration 30"),
        args("idle --clients 300 --room-size 100 --duration 3"),
    ),
    Scenario(
        "churn",
        "Churn: 100 connect+login+join+leave+disconnect cycles per second for 10 s",
        args("churn --rate 100 --duration 10 --rooms 10"),
        args("churn --rate 20 --duration 3 --rooms 4"),
    ),
    Scenario(
        "tool-capacity",
        "Load tool capacity: the fan-out room at 500 msg/s (100,000 deliveries/s) against "
        "one dino node; 'tool CPU' is the tool's share of its one core",
        args("chat --rooms 1 --members 200 --senders 20 --rate 500 --duration 10"),
        args("chat --rooms 1 --members 40 --senders 4 --rate 100 --duration 3"),
        targets=("dino",),
    ),
)


def start_target(target: str, log_dir: Path, prefix: str) -> list[servers.Server]:
    if target == "psio":
        return [servers.start_psio(log_dir)]
    if target == "dino":
        return [servers.start_dino(log_dir)]
    opts = ("--redis-url", REDIS_URL, "--redis-prefix", prefix)
    first = servers.start_dino(log_dir, "dino-n1", *opts)
    try:
        return [first, servers.start_dino(log_dir, "dino-n2", *opts)]
    except Exception:
        first.stop()
        raise


def redis_pid() -> int | None:
    try:
        return int(redis.Redis.from_url(REDIS_URL).info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None


def delete_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    finally:
        client.close()


def readable_command(scenario: Scenario, quick: bool, nodes: int) -> str:
    """The tool's command line as a reader would type it (ports and pids vary)."""
    args = list(scenario.quick if quick else scenario.args)
    for n in range(1, nodes + 1):
        args += ["--url", f"http://127.0.0.1:PORT{n}", "--server-pid", f"PID{n}"]
    return "python -m loadtest " + shlex.join(args)


def pin(pid: int, cpus: set[int]) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(pid, cpus)


def run_one(
    scenario: Scenario, target: str, quick: bool, do_pin: bool, results: Path
) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    nodes = start_target(target, results / "logs" / f"{scenario.name}-{target}", prefix)
    try:
        cpus = sorted(os.sched_getaffinity(0))
        tool_prefix: list[str] = []
        if do_pin and len(cpus) >= 2:
            for node in nodes:
                pin(node.pid, set(cpus[1:]))
            tool_prefix = ["taskset", "-c", str(cpus[0])]
        out = results / f"{scenario.name}-{target}.json"
        argv = [sys.executable, "-m", "loadtest", *(scenario.quick if quick else scenario.args)]
        for node in nodes:
            argv += ["--url", node.url, "--server-pid", str(node.pid)]
        argv += ["--json", str(out), "--quiet", "--run-id", prefix.rstrip(":")]
        print(f"\n### {scenario.name} on {target}\n$ {shlex.join(argv)}", flush=True)
        proc = subprocess.run(tool_prefix + argv, cwd=servers.REPO, timeout=900)
        result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        result["bench"] = {
            "target": target,
            "exit_status": proc.returncode,
            "command": readable_command(scenario, quick, len(nodes)),
            "pinned": bool(tool_prefix),
            "quick": quick,
        }
        if out.exists():  # keep the bench info with the result, for later reports
            out.write_text(json.dumps(result, indent=1) + "\n")
        return result
    finally:
        for node in nodes:
            node.stop()
        if target == "dino-2nodes":
            delete_prefix(prefix)


# -- BENCHMARKS.md -----------------------------------------------------------

HAND_RUN_MARK = "<!-- sections below: other scripts, kept by run_benchmarks.py -->"


def machine() -> list[str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError):
        mem_kib = 0

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    return [
        f"- CPU: {model}, {os.cpu_count()} cores; memory {mem_kib / 2**20:.1f} GiB",
        f"- Kernel: {platform.release()}; Python {platform.python_version()}",
        f"- tornado {ver('tornado')}, python-socketio {ver('python-socketio')}, "
        f"python-engineio {ver('python-engineio')}, redis-py {ver('redis')}",
    ]


def _ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def _mib(b: float) -> str:
    return f"{b / 2**20:,.0f}"


def _nodes_cpu(r: dict[str, Any]) -> float:
    return float(sum(p["cpu_s_measured"] for p in r["server"]["processes"]))


def chat_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| server | deliveries/s (expected) | latency p50 / p99 / max ms | server CPU cores |"
        " server CPU µs/delivery | server RSS MiB | lost / dup / reordered | tool CPU |"
        " other load (cores) | ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tr, lat, seq = r["traffic"], r["latency_us"], r["seq"]
        exp = r["extra"].get("expected_deliveries_per_s", 0)
        cpu = _nodes_cpu(r)
        per = cpu * 1e6 / tr["deliveries"] if tr["deliveries"] else 0.0
        other = r["machine"]["other_cores_measured"]
        out.append(
            f"| {r['bench']['target']} | {tr['deliveries_per_s']:,.0f} ({exp:,.0f})"
            f" | {_ms(lat['p50'])} / {_ms(lat['p99'])} / {_ms(lat['max'])}"
            f" | {r['server']['cpu_cores_measured'] or 0:.2f} | {per:.1f}"
            f" | {_mib(r['server']['rss_end'])}"
            f" | {seq['lost']} / {seq['duplicates']} / {seq['out_of_order']}"
            f" | {r['tool']['cpu_share_measured']:.0%}"
            f" | {'-' if other is None else f'{other:.2f}'} | {'yes' if r['ok'] else 'NO'} |"
        )
    return out


def _step(r: dict[str, Any], name: str) -> dict[str, Any]:
    for s in r["steps"]:
        if s["name"] == name:
            return dict(s)
    return {"ok": 0, "failed": 0, "per_second": 0.0, "latency_us": {"p50": 0, "p99": 0}}


def idle_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| server | held at end | connects/s | logins/s | joins/s | server CPU µs per"
        " connect+login+join | RSS before → held MiB | RSS per connection KiB"
        " | server CPU while idle (cores) | ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        x = r["extra"]
        per = x.get("server_rss_per_connection")
        out.append(
            f"| {r['bench']['target']} | {x.get('held_at_end', 0):,}"
            f" | {_step(r, 'connect')['per_second']:,.0f} | {_step(r, 'login')['per_second']:,.0f}"
            f" | {_step(r, 'join')['per_second']:,.0f}"
            f" | {x.get('server_cpu_us_per_connect_login_join') or 0:,}"
            f" | {_mib(x.get('server_rss_before', 0))} → {_mib(x.get('server_rss_held', 0))}"
            f" | {per / 1024 if per else 0:.1f}"
            f" | {r['server']['cpu_cores_measured'] or 0:.3f} | {'yes' if r['ok'] else 'NO'} |"
        )
    return out


def churn_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| server | cycles ok (failed) | cycles/s | cycle p50 / p99 ms | server CPU µs/cycle |"
        " server CPU cores | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = _step(r, "cycle")
        cpu = _nodes_cpu(r)
        per = cpu * 1e6 / c["ok"] if c["ok"] else 0.0
        out.append(
            f"| {r['bench']['target']} | {c['ok']:,} ({c['failed']}) | {c['per_second']:,.1f}"
            f" | {_ms(c['latency_us']['p50'])} / {_ms(c['latency_us']['p99'])}"
            f" | {per:,.0f} | {r['server']['cpu_cores_measured'] or 0:.2f}"
            f" | {'yes' if r['ok'] else 'NO'} |"
        )
    return out


def markdown(results: dict[str, list[dict[str, Any]]], quick: bool) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# dino benchmarks",
        "",
        f"Generated by `python benchmarks/run_benchmarks.py{' --quick' if quick else ''}`"
        f" on {when}.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Method",
        "",
        "- Each scenario runs against freshly started servers: `psio` (python-socketio",
        "  defaults, `benchmarks/psio_server.py`), `dino` (one node, in-memory store) and",
        "  `dino-2nodes` (two nodes sharing the local Redis, clients alternating between them).",
        "- Load comes from `python -m loadtest` (one process, raw websocket clients; see",
        "  `python -m loadtest --help`). Every delivery is checked by `seq`: lost, duplicated",
        "  and reordered deliveries are counted per member and room; latency is send time",
        "  (in the message content) to receive time, both on this machine's clock.",
        "- Server CPU is utime+stime of the server processes (dino nodes; Redis excluded)",
        "  from /proc over the measured phase (sending + drain), divided by deliveries.",
        "- The tool runs pinned to CPU 0 and the servers to the other CPU(s) when there are",
        "  two or more, so both dino nodes of `dino-2nodes` share one core here.",
        "- 'other load' is CPU used on the machine by neither the tool nor the servers",
        "  (other jobs); where it is high, latencies are inflated and rates may be capped.",
        "",
    ]
    for sc in SCENARIOS:
        rows = results.get(sc.name)
        if not rows:
            continue
        lines += [f"## {sc.title}" + (" — quick mode: smaller counts" if quick else ""), ""]
        for r in rows:
            lines.append(f"- {r['bench']['target']}: `{r['bench']['command']}`")
        lines.append("")
        if sc.name == "idle":
            lines += idle_table(rows)
        elif sc.name == "churn":
            lines += churn_table(rows)
        else:
            lines += chat_table(rows)
        problems = [(r["bench"]["target"], p) for r in rows for p in r.get("problems", [])]
        if problems:
            lines += ["", "Problems reported:", ""]
            lines += [f"- {t}: {p}" for t, p in problems]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts and short runs")
    parser.add_argument(
        "--only", action="append", choices=[s.name for s in SCENARIOS], help="scenario(s) to run"
    )
    parser.add_argument("--target", action="append", choices=TARGETS, help="server(s) to run")
    parser.add_argument("--no-pin", action="store_true", help="do not pin tool and servers")
    parser.add_argument(
        "--out", default=str(HERE / "BENCHMARKS.md"), help="markdown file (default %(default)s)"
    )
    parser.add_argument(
        "--results", default=str(HERE / "results"), help="JSON directory (default %(default)s)"
    )
    args = parser.parse_args()
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    targets = args.target or list(TARGETS)
    if "dino-2nodes" in targets and redis_pid() is None:
        print(f"no Redis at {REDIS_URL}: skipping dino-2nodes", file=sys.stderr)
        targets.remove("dino-2nodes")

    results: dict[str, list[dict[str, Any]]] = {}
    failed = False
    for sc in SCENARIOS:
        if args.only and sc.name not in args.only:
            continue
        for target in [t for t in targets if t in sc.targets]:
            r = run_one(sc, target, args.quick, not args.no_pin, results_dir)
            if "traffic" not in r:
                print(f"{sc.name} on {target}: no result", file=sys.stderr)
                failed = True
                continue
            failed |= not r["ok"]
            results.setdefault(sc.name, []).append(r)
    # Rows not run this time come from earlier runs' files (same mode), so one
    # scenario or server can be re-run without losing the rest of the report.
    for sc in SCENARIOS:
        for target in sc.targets:
            have = {r["bench"]["target"] for r in results.get(sc.name, [])}
            path = results_dir / f"{sc.name}-{target}.json"
            if target in have or not path.exists():
                continue
            old = json.loads(path.read_text())
            if old.get("bench", {}).get("quick") == args.quick:
                results.setdefault(sc.name, []).append(old)
    for rows in results.values():
        rows.sort(key=lambda r: TARGETS.index(r["bench"]["target"]))
    # Sections written by hand from other scripts (below HAND_RUN_MARK) are kept.
    out = Path(args.out)
    previous = out.read_text() if out.exists() else ""
    kept = previous[previous.index(HAND_RUN_MARK) :] if HAND_RUN_MARK in previous else ""
    out.write_text(markdown(results, args.quick) + "\n" + (f"\n{kept}" if kept else ""))
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
