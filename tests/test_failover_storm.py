"""A short failover storm (``benchmarks/failover_storm.py``): three nodes behind nginx,
the fullest killed with SIGKILL while clients send; every client it held comes back
through nginx onto a survivor, resumes, and nothing is lost, repeated or reordered. The
full run (thousands of clients) is in BENCHMARKS.md."""

from __future__ import annotations

from benchmarks import failover_storm


async def test_the_killed_nodes_clients_come_back_and_miss_nothing() -> None:
    options = failover_storm.parse(
        ["--clients", "60", "--interval", "1", "--warmup", "3", "--after", "3"]
    )
    storm = await failover_storm.run(options)
    report = failover_storm.report(storm, options)
    print(report)
    counts = storm.counts
    assert storm.held > 0 and storm.moved == storm.held, report
    assert storm.never_back == 0 and len(storm.back) == storm.moved, report
    assert counts.sent > 100 and counts.expected > 0, report
    assert counts.received + counts.in_gaps == counts.expected, report
    assert counts.lost == counts.duplicated == counts.reordered == 0, report
    assert counts.acked_missing == 0, report
