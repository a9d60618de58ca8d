"""``--plot FILE.png``: throughput and latency per second of the run.

matplotlib is optional (``pip install matplotlib``); it is imported only here,
and only when a plot is asked for.
"""

from __future__ import annotations

from typing import Any


def write_plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    ticks = result["timeline"]
    t = [x["t"] for x in ticks]
    fig, (ax_rate, ax_lat, ax_cpu) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    fig.suptitle(f"loadtest {result['scenario']} (run {result['run_id']})")

    prev_sent = 0
    sends = []
    prev_t = 0.0
    deliv = []
    for x in ticks:
        dt = max(1e-6, x["t"] - prev_t)
        sends.append((x["sent"] - prev_sent) / dt)
        deliv.append(x["deliveries"] / dt)
        prev_sent, prev_t = x["sent"], x["t"]
    ax_rate.plot(t, deliv, label="deliveries/s")
    ax_rate.plot(t, sends, label="messages sent/s")
    ax_rate.set_ylabel("per second")
    ax_rate.legend(loc="upper left")
    ax_rate.grid(alpha=0.3)
    ax_conn = ax_rate.twinx()  # clients are counted on their own scale
    ax_conn.plot(t, [x["connected"] for x in ticks], color="gray", linestyle=":")
    ax_conn.set_ylabel("connected clients (dotted)")

    ms = 1000.0
    ax_lat.plot(t, [x["p50_us"] / ms for x in ticks], label="p50")
    ax_lat.plot(t, [x["p99_us"] / ms for x in ticks], label="p99")
    ax_lat.plot(t, [x["max_us"] / ms for x in ticks], label="max", alpha=0.5)
    ax_lat.set_ylabel("delivery latency (ms)")
    ax_lat.legend(loc="upper left")
    ax_lat.grid(alpha=0.3)

    ax_cpu.plot(t, [x["tool_cpu"] * 100 for x in ticks], label="tool CPU %")
    if result["server"]["processes"]:
        ax_cpu.plot(t, [x["server_cpu"] * 100 for x in ticks], label="server CPU %")
    ax_cpu.set_ylabel("% of one core")
    ax_cpu.set_xlabel("seconds since start")
    ax_cpu.legend(loc="upper left")
    ax_cpu.grid(alpha=0.3)

    measured = [x["t"] for x in ticks if x["phase"] in ("measure", "drain")]
    if measured:
        for ax in (ax_rate, ax_lat, ax_cpu):
            ax.axvspan(measured[0] - 1.0, measured[-1], color="green", alpha=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
