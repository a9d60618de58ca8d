"""Latency histograms, per-second timelines and step counters.

Hot path cost matters: a delivery only appends one int to a list. Once a second
the list is summarized for the timeline and folded into a log-linear histogram
(HdrHistogram's layout: 128 linear sub-buckets per power of two, under 1%
error), so memory stays bounded however long the run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

_SUB_BITS = 7
_SUB = 1 << _SUB_BITS


def bucket_of(value: int) -> int:
    """Histogram bucket of a non-negative integer (values < 256 are exact)."""
    if value < 2 * _SUB:
        return max(value, 0)
    shift = value.bit_length() - _SUB_BITS - 1
    return (shift + 1) * _SUB + (value >> shift) - _SUB


def bucket_value(bucket: int) -> int:
    """Upper edge of a bucket (inverse of bucket_of, rounded up)."""
    if bucket < 2 * _SUB:
        return bucket
    shift = bucket // _SUB - 1
    mantissa = bucket % _SUB + _SUB
    return ((mantissa + 1) << shift) - 1


class Histogram:
    """Counts of integer values (the unit is the caller's: µs for latency)."""

    __slots__ = ("counts", "maximum", "minimum", "sum", "total")

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0
        self.maximum = 0
        self.minimum = 0
        self.sum = 0

    def add_many(self, values: Sequence[int]) -> None:
        if not values:
            return
        self.counts.update(map(bucket_of, values))
        hi = max(values)
        lo = min(values)
        self.minimum = lo if self.total == 0 else min(self.minimum, lo)
        self.total += len(values)
        self.maximum = max(self.maximum, hi)
        self.sum += sum(values)

    def percentile(self, p: float) -> int:
        if self.total == 0:
            return 0
        rank = max(1, math.ceil(self.total * p / 100.0))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(bucket_value(bucket), self.maximum)
        return self.maximum

    def summary(self) -> dict[str, float]:
        return {
            "count": self.total,
            "mean": self.sum / self.total if self.total else 0.0,
            "min": self.minimum,
            "p50": self.percentile(50),
            "p90": self.percentile(90),
            "p99": self.percentile(99),
            "p999": self.percentile(99.9),
            "max": self.maximum,
        }


def exact_percentile(sorted_values: Sequence[int], p: float) -> int:
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(len(sorted_values) * p / 100.0))
    return sorted_values[rank - 1]


@dataclass(slots=True)
class LatencyRecorder:
    """Collects latencies in ns; ``roll`` summarizes the last window in µs."""

    window: list[int] = field(default_factory=list)
    hist: Histogram = field(default_factory=Histogram)

    def roll(self) -> dict[str, float]:
        """Close the current window: returns count/p50/p99/max (µs) and folds it."""
        # Copy then clear in place: receivers hold a reference to ``window``.
        samples = self.window.copy()
        self.window.clear()
        us = sorted(max(0, v) // 1000 for v in samples)
        self.hist.add_many(us)
        return {
            "count": len(us),
            "p50": exact_percentile(us, 50),
            "p99": exact_percentile(us, 99),
            "max": us[-1] if us else 0,
        }


@dataclass(slots=True)
class Step:
    """A repeated client step (connect, login, join...): outcomes and timing."""

    name: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # not attempted because an earlier step of the client failed
    first_start: float = 0.0
    last_end: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)

    def record(self, started: float, ended: float, error: str | None = None) -> None:
        """``started``/``ended`` are perf_counter seconds."""
        if self.last_end == 0.0 or started < self.first_start:
            self.first_start = started
        self.last_end = max(self.last_end, ended)
        if error is None:
            self.ok += 1
            self.latency.window.append(int((ended - started) * 1e9))
        else:
            self.failed += 1
            self.errors[error[:120]] += 1

    def skip(self) -> None:
        """Count a step not attempted (its client's connect or login failed,
        which is already counted as that step's failure)."""
        self.skipped += 1

    def as_dict(self) -> dict[str, Any]:
        self.latency.roll()
        span = self.last_end - self.first_start
        return {
            "name": self.name,
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "seconds": round(span, 3),
            "per_second": round(self.ok / span, 1) if span > 0 else 0.0,
            "latency_us": self.latency.hist.summary(),
            "errors": dict(self.errors.most_common(10)),
        }


@dataclass(slots=True)
class Steps:
    """Named steps in the order first used."""

    by_name: dict[str, Step] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Step:
        step = self.by_name.get(name)
        if step is None:
            step = self.by_name[name] = Step(name)
        return step

    def __iter__(self) -> Iterator[Step]:
        return iter(self.by_name.values())

    def failed(self) -> int:
        return sum(s.failed for s in self.by_name.values())
