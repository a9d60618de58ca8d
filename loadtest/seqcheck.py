"""Delivery accounting from ``seq``: lost, duplicated and out-of-order messages.

Each room (and each user-to-user conversation) is a log whose ``seq`` starts at 1
and grows by one per message. A member must receive every seq of its log stored
after it joined (after the last seq its ``join`` history showed), exactly once, in
increasing order. One ``SeqTracker`` per (member, log) checks that in O(1) per
delivery: the common case is ``seq == last + 1``; only gaps allocate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# A jump larger than this is recorded as a count, not as individual missing seqs,
# so a server that skips to a huge seq cannot make the tool allocate without bound.
MAX_TRACKED_GAP = 1_000_000


class SeqTracker:
    """What one member received of one log."""

    __slots__ = (
        "baseline",
        "duplicates",
        "last",
        "missing",
        "out_of_order",
        "received",
        "stale",
        "untracked_gap",
    )

    def __init__(self, baseline: int = 0) -> None:
        self.baseline = baseline  # newest seq already known at join (history)
        self.last = baseline  # highest seq received so far
        self.received = 0  # distinct seqs after the baseline
        self.duplicates = 0
        self.out_of_order = 0  # arrived after a higher seq (gap later filled)
        self.stale = 0  # seq <= baseline: a repeat of join history, allowed
        self.missing: set[int] = set()  # gaps below ``last`` not (yet) filled
        self.untracked_gap = 0

    def add(self, seq: int) -> None:
        last = self.last
        if seq == last + 1:
            self.last = seq
            self.received += 1
        elif seq > last:
            gap = seq - last - 1
            if gap > MAX_TRACKED_GAP:
                self.untracked_gap += gap
            else:
                self.missing.update(range(last + 1, seq))
            self.last = seq
            self.received += 1
        elif seq <= self.baseline:
            self.stale += 1
        elif seq in self.missing:
            self.missing.discard(seq)
            self.out_of_order += 1
            self.received += 1
        else:
            self.duplicates += 1

    def lost(self, final_seq: int) -> int:
        """Seqs in (baseline, final_seq] never received."""
        tail = final_seq - self.last if final_seq > self.last else 0
        return len(self.missing) + self.untracked_gap + tail

    def expected(self, final_seq: int) -> int:
        return max(0, final_seq - self.baseline)


@dataclass(slots=True)
class LogReport:
    """Totals over all members of one log (a room or a conversation)."""

    key: int
    final_seq: int = 0
    members: int = 0
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    stale: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "key": self.key,
            "final_seq": self.final_seq,
            "members": self.members,
            "expected": self.expected,
            "received": self.received,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "stale": self.stale,
        }


@dataclass(slots=True)
class SeqLedger:
    """All logs of a run: the highest seq each log reached, and its trackers.

    The final seq of a log is the highest seq any sender was acknowledged or any
    member received, so a message no member got still counts as lost.
    """

    final: dict[int, int] = field(default_factory=dict)
    trackers: dict[int, list[SeqTracker]] = field(default_factory=dict)

    def tracker(self, key: int, baseline: int = 0) -> SeqTracker:
        t = SeqTracker(baseline)
        self.trackers.setdefault(key, []).append(t)
        return t

    def acked(self, key: int, seq: int) -> None:
        if seq > self.final.get(key, 0):
            self.final[key] = seq

    def reports(self) -> list[LogReport]:
        out = []
        for key in sorted(set(self.trackers) | set(self.final)):
            trackers = self.trackers.get(key, [])
            final = max([self.final.get(key, 0), *(t.last for t in trackers)])
            out.append(summarize(key, final, trackers))
        return out


def summarize(key: int, final_seq: int, trackers: Iterable[SeqTracker]) -> LogReport:
    r = LogReport(key=key, final_seq=final_seq)
    for t in trackers:
        r.members += 1
        r.expected += t.expected(final_seq)
        r.received += t.received
        r.lost += t.lost(final_seq)
        r.duplicates += t.duplicates
        r.out_of_order += t.out_of_order
        r.stale += t.stale
    return r
