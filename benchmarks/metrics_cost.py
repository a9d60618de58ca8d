"""What /metrics costs on the hot path: the fan-out scenario with metrics on and off.

    python benchmarks/metrics_cost.py                # 4 alternating pairs (~3 minutes)
    python benchmarks/metrics_cost.py --pairs 2 --duration 5

Runs the standard fan-out row (200 clients in one room, 20 senders, 100 msg/s: 20,000
deliveries a second) against a fresh one-node dino started with ``--metrics`` and with
``--no-metrics``, alternating (on, off, on, off, ...) so that drifting load from other
jobs on a shared machine hits both alike. With metrics on, the node is scraped once a
second during the run, as Prometheus would (more often than the usual 15 s). Prints the
server CPU µs per delivery of every run and the range of each setting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import servers

SCENARIO = "chat --rooms 1 --members 200 --senders 20 --rate 100"


def scrape_every_second(url: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/metrics", timeout=2) as r:
            r.read()


def one_run(metrics: bool, duration: float, workdir: Path, index: int) -> float:
    name = f"metrics-{'on' if metrics else 'off'}-{index}"
    node = servers.start_dino(workdir, name, "--metrics" if metrics else "--no-metrics")
    stop = threading.Event()
    scraper = threading.Thread(target=scrape_every_second, args=(node.url, stop), daemon=True)
    try:
        cpus = sorted(os.sched_getaffinity(0))
        prefix: list[str] = []
        if len(cpus) >= 2:  # the tool on one CPU, the node on the others (as run_benchmarks)
            os.sched_setaffinity(node.pid, set(cpus[1:]))
            prefix = ["taskset", "-c", str(cpus[0])]
        if metrics:
            scraper.start()
        out = workdir / f"{name}.json"
        argv = [sys.executable, "-m", "loadtest", *SCENARIO.split(), "--duration", str(duration),
                "--url", node.url, "--server-pid", str(node.pid), "--json", str(out), "--quiet"]
        subprocess.run(prefix + argv, cwd=servers.REPO, timeout=600, check=False,
                       stdout=subprocess.DEVNULL)
        result = json.loads(out.read_text())
    finally:
        stop.set()
        node.stop()
    return float(result["server"]["cpu_us_per_delivery"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    runs: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="dino-metrics-cost-") as tmp:
        for index in range(args.pairs):
            for metrics in ((True, False) if index % 2 == 0 else (False, True)):
                value = one_run(metrics, args.duration, Path(tmp), index)
                runs[metrics].append(value)
                print(f"run {index} metrics {'on ' if metrics else 'off'}: "
                      f"{value:.2f} µs/delivery", flush=True)
    for metrics in (True, False):
        values = sorted(runs[metrics])
        median = values[len(values) // 2]
        print(f"metrics {'on ' if metrics else 'off'}: {values[0]:.2f}-{values[-1]:.2f} µs "
              f"(median {median:.2f}) over {len(values)} runs")
    on, off = sorted(runs[True]), sorted(runs[False])
    print(f"median difference: {100 * (on[len(on) // 2] / off[len(off) // 2] - 1):+.1f}%")


if __name__ == "__main__":
    main()
