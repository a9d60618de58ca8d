"""A rolling restart of 3 nodes behind nginx under chat load loses and duplicates nothing.

The short version of ``benchmarks/rolling_restart.py`` (same code, fewer clients): real
nodes (``python run.py``), redis-server, nginx running nginx.conf.example, python-socketio
clients that log in, join and catch up with ``history`` after every reconnect.
"""

from __future__ import annotations

from benchmarks.rolling_restart import run_drill
from tests.cluster_fixtures import Cluster

CLIENTS = 9


async def test_rolling_restart_keeps_every_acknowledged_message() -> None:
    cluster = Cluster(3, lease_ttl=4.0, heartbeat_interval=1.0)
    try:
        cluster.start()
        report = await run_drill(cluster, clients=CLIENTS, senders=3, rate=6.0, pause=1.5)
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.close()
    print("\n".join(report.lines()))
    assert [r["exit_code"] for r in report.restarts] == [0, 0, 0], report.restarts
    assert report.acknowledged > 0
    assert report.lost == 0
    assert report.duplicated == 0
    assert report.gaps == 0
    # Every node was restarted, so every client was moved at least once.
    assert report.reconnects >= CLIENTS
