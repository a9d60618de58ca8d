"""Turn a finished Harness into results: a dict (for --json), the problems that
make the exit status non-zero, and the summary table printed at the end."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

from loadtest.harness import Harness
from loadtest.progress import fmt_us

# Above this share of one core during the measured phase the tool itself may
# have been the bottleneck, and latency includes its own queueing.
TOOL_BUSY = 0.85
MAX_LOGS_IN_JSON = 2000


def _per(total: float, count: int) -> float | None:
    return round(total * 1e6 / count, 1) if count else None


def public_fields(cfg: Any) -> dict[str, Any]:
    """A config as a dict, without fields marked secret (an API key)."""
    return {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if not f.metadata.get("secret")
    }


def build(h: Harness, scenario_cfg: Any) -> dict[str, Any]:
    tr = h.traffic
    logs = h.ledger.reports()
    lost = sum(r.lost for r in logs)
    dups = sum(r.duplicates for r in logs)
    ooo = sum(r.out_of_order for r in logs)
    expected = sum(r.expected for r in logs)
    span_s = (
        (tr.last_recv_ns - tr.first_send_ns) / 1e9 if tr.last_recv_ns > tr.first_send_ns else 0.0
    )
    unanswered = max(0, tr.sent - tr.send_ok - tr.send_failed)

    ms, me = h.measure_start, h.measure_end
    measured_wall = (me.wall - ms.wall) if ms and me else 0.0
    tool_cpu = (me.cpu_s - ms.cpu_s) if ms and me else 0.0
    tool_share = tool_cpu / measured_wall if measured_wall > 0 else 0.0
    now_self = h.last_self
    srv = h.server.as_dict()
    cycles = h.steps["cycle"].ok if "cycle" in h.steps.by_name else 0

    result: dict[str, Any] = {
        "scenario": h.cfg.scenario,
        "run_id": h.cfg.run_id,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "common": dataclasses.asdict(h.cfg),
            "scenario": public_fields(scenario_cfg),
        },
        "steps": [s.as_dict() for s in h.steps],
        "traffic": {
            "sent": tr.sent,
            "send_ok": tr.send_ok,
            "send_failed": tr.send_failed,
            "send_unanswered": unanswered,
            "send_errors": dict(tr.send_errors.most_common(10)),
            "deliveries": tr.deliveries,
            "expected_deliveries": expected,
            "span_s": round(span_s, 3),
            "deliveries_per_s": round(tr.deliveries / span_s, 1) if span_s > 0 else 0.0,
            "sends_per_s": round(tr.sent / span_s, 1) if span_s > 0 else 0.0,
            "unparsed": tr.unparsed,
            "misrouted": tr.misrouted,
            "dropped_connections": tr.dropped,
        },
        "latency_us": h.latency.hist.summary(),
        "ack_latency_us": h.ack_latency.hist.summary(),
        "seq": {
            "logs": len(logs),
            "lost": lost,
            "duplicates": dups,
            "out_of_order": ooo,
            "stale_history_repeats": sum(r.stale for r in logs),
            "per_log": [r.as_dict() for r in logs[:MAX_LOGS_IN_JSON]],
        },
        "server": {
            "processes": srv,
            "cpu_s_measured": round(h.server_cpu_measured, 3),
            "cpu_cores_measured": round(h.server_cpu_measured / measured_wall, 3)
            if measured_wall > 0
            else None,
            "cpu_us_per_delivery": _per(h.server_cpu_measured, tr.deliveries),
            "cpu_us_per_message": _per(h.server_cpu_measured, tr.send_ok),
            "cpu_us_per_cycle": _per(h.server_cpu_measured, cycles),
            "rss_end": sum(int(p["rss_end"]) for p in srv),
            "rss_peak": sum(int(p["rss_peak"]) for p in srv),
        },
        "tool": {
            "pid": os.getpid(),
            "measured_s": round(measured_wall, 3),
            "cpu_s_measured": round(tool_cpu, 3),
            "cpu_share_measured": round(tool_share, 3),
            "cpu_s_total": round(now_self.cpu_s - h.self_start.cpu_s, 3),
            "max_rss": now_self.max_rss,
            "cpu_us_per_delivery": _per(tool_cpu, tr.deliveries),
            "maybe_limited_by_tool": tool_share >= TOOL_BUSY,
            "loop_lag_us": h.loop_lag.hist.summary(),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "busy_cores_measured": round(h.machine_cores_measured, 3),
            # what neither the tool nor the watched server used: other processes
            "other_cores_measured": round(
                max(
                    0.0,
                    h.machine_cores_measured
                    - (tool_share if measured_wall > 0 else 0.0)
                    - (h.server_cpu_measured / measured_wall if measured_wall > 0 else 0.0),
                ),
                3,
            )
            if h.server.procs
            else None,
        },
        "extra": {k: (dict(v) if isinstance(v, dict) else v) for k, v in h.extra.items()},
        "timeline": [dataclasses.asdict(t) for t in h.timeline],
    }
    result["problems"] = problems(result)
    result["ok"] = not result["problems"]
    return result


def problems(r: dict[str, Any]) -> list[str]:
    """Everything that makes the run a failure (exit status 1)."""
    out: list[str] = []
    for step in r["steps"]:
        if step["failed"]:
            out.append(f"{step['failed']} {step['name']} failed: {step['errors']}")
    tr = r["traffic"]
    seq = r["seq"]
    checks = [
        (tr["send_failed"], "messages rejected by the server"),
        (tr["send_unanswered"], "messages never answered (gn_message or HTTP response)"),
        (seq["lost"], "deliveries lost"),
        (seq["duplicates"], "deliveries duplicated"),
        (seq["out_of_order"], "deliveries out of order"),
        (tr["misrouted"], "messages delivered to a client outside their room/conversation"),
        (tr["dropped_connections"], "connections dropped by the server"),
        (r["extra"].get("skipped", 0), "churn cycles skipped (in-flight limit)"),
        (r["extra"].get("unfinished", 0), "churn cycles unfinished at the end"),
    ]
    out.extend(f"{n} {what}" for n, what in checks if n)
    return out


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _lat_row(name: str, s: dict[str, float]) -> str:
    if not s["count"]:
        return f"  {name:<22} -"
    cols = " ".join(f"{k} {fmt_us(s[k]):>8}" for k in ("p50", "p90", "p99", "max"))
    return f"  {name:<22} {cols}  (n={s['count']:,})"


def table(r: dict[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    lines = [f"== loadtest {r['scenario']} (run {r['run_id']}) =="]
    lines.append(
        f"  {'step':<12} {'ok':>8} {'failed':>7} {'per s':>9} {'p50':>8} {'p99':>8} {'max':>8}"
    )
    skipped = []
    for s in r["steps"]:
        lat = s["latency_us"]
        lines.append(
            f"  {s['name']:<12} {s['ok']:>8,} {s['failed']:>7,} {s['per_second']:>9,.1f}"
            f" {fmt_us(lat['p50']):>8} {fmt_us(lat['p99']):>8} {fmt_us(lat['max']):>8}"
        )
        if s["skipped"]:
            skipped.append(f"{s['name']} {s['skipped']:,}")
    if skipped:
        lines.append("  not attempted after an earlier failure: " + ", ".join(skipped))
    tr = r["traffic"]
    if tr["sent"] or tr["deliveries"]:
        lines.append(
            f"  messages: sent {tr['sent']:,}  ok {tr['send_ok']:,}  rejected {tr['send_failed']:,}"
            f"  unanswered {tr['send_unanswered']:,}  ({tr['sends_per_s']:,.1f}/s)"
        )
        if tr["send_errors"]:
            errors = ", ".join(f"{n:,} x {e}" for e, n in tr["send_errors"].items())
            lines.append(f"  rejections: {errors}")
        lines.append(
            f"  deliveries: {tr['deliveries']:,} of {tr['expected_deliveries']:,} expected"
            f"  = {tr['deliveries_per_s']:,.0f}/s over {tr['span_s']:.2f}s"
        )
        seq = r["seq"]
        lines.append(
            f"  seq over {seq['logs']} logs: lost {seq['lost']:,}"
            f"  duplicated {seq['duplicates']:,}  out-of-order {seq['out_of_order']:,}"
            f"  (history repeats {seq['stale_history_repeats']:,})"
        )
        bad = [x for x in seq["per_log"] if x["lost"] or x["duplicates"] or x["out_of_order"]]
        for x in bad[:5]:
            lines.append(
                f"    log {x['key']}: {x['members']} members, final seq {x['final_seq']},"
                f" lost {x['lost']}, duplicated {x['duplicates']},"
                f" out-of-order {x['out_of_order']}"
            )
        if len(bad) > 5:
            lines.append(f"    ... and {len(bad) - 5} more logs with problems (see --json)")
        lines.append(_lat_row("delivery latency", r["latency_us"]))
        answer = "POST->201" if r["scenario"] == "api" else "send->gn_message"
        lines.append(_lat_row(answer, r["ack_latency_us"]))
    srv = r["server"]
    if srv["processes"]:
        per = [
            f"cpu {srv['cpu_s_measured']:.2f}s ({srv['cpu_cores_measured'] or 0:.2f} cores)",
        ]
        for key, label in (
            ("cpu_us_per_delivery", "µs/delivery"),
            ("cpu_us_per_message", "µs/message"),
            ("cpu_us_per_cycle", "µs/cycle"),
        ):
            if srv[key] is not None:
                per.append(f"{srv[key]:,.1f} {label}")
        per.append(f"rss {_mib(srv['rss_end'])} (peak {_mib(srv['rss_peak'])})")
        lines.append("  server: " + "  ".join(per))
    tool = r["tool"]
    lines.append(
        f"  tool: cpu {tool['cpu_s_measured']:.2f}s in {tool['measured_s']:.1f}s measured"
        f" = {tool['cpu_share_measured']:.0%} of one core"
        + (
            f", {tool['cpu_us_per_delivery']:.1f} µs/delivery"
            if tool["cpu_us_per_delivery"]
            else ""
        )
        + f"; max rss {_mib(tool['max_rss'])}"
    )
    lag = tool["loop_lag_us"]
    if lag["count"]:
        lines.append(f"  tool event-loop lag: p99 {fmt_us(lag['p99'])} max {fmt_us(lag['max'])}")
    if tool["maybe_limited_by_tool"]:
        lines.append("  WARNING: the tool was near one full core: it may have been the limit")
    mach = r["machine"]
    if tool["measured_s"]:
        line = (
            f"  machine: {mach['busy_cores_measured']:.2f} of {mach['cpus']} cores"
            " busy while measured"
        )
        other = mach["other_cores_measured"]
        if other is not None:
            line += f" ({other:.2f} by other processes)"
            if other > 0.25:
                line += " - WARNING: other load on the machine distorts timings"
        lines.append(line)
    extra = {k: v for k, v in r["extra"].items() if k != "drop_reasons"}
    if extra:
        lines.append("  " + "  ".join(f"{k}={_short(v)}" for k, v in extra.items()))
    if r["extra"].get("drop_reasons"):
        lines.append(f"  drop reasons: {r['extra']['drop_reasons']}")
    if r["problems"]:
        lines.append("FAIL:")
        lines.extend(f"  - {p}" for p in r["problems"])
    else:
        lines.append("OK: nothing lost, duplicated or out of order; every step succeeded")
    return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:,}"
    return str(v)


def write_json(r: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(r, f, indent=1, default=str)
        f.write("\n")
