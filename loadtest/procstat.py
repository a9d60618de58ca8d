"""CPU time and memory of the server processes (from /proc) and of the tool itself.

Reading /proc directly keeps psutil optional. CPU is utime+stime of the process
(all its threads); children are not included, so give each process's pid.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float  # user + system seconds since the process started
    rss: int  # bytes

    @staticmethod
    def read(pid: int) -> ProcSample:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # the command name (field 2) may contain spaces: split after its ')'
        fields = stat[stat.rindex(b")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        rss_pages = int(fields[21])
        return ProcSample((utime + stime) / _TICKS, rss_pages * _PAGE)


@dataclass(slots=True)
class ProcWatch:
    """One watched process: first and latest sample, peak RSS, liveness."""

    pid: int
    first: ProcSample | None = None
    mark: ProcSample | None = None  # start of the measured phase
    last: ProcSample | None = None
    peak_rss: int = 0
    gone: bool = False

    def sample(self) -> ProcSample | None:
        if self.gone:
            return self.last
        try:
            s = ProcSample.read(self.pid)
        except (OSError, ValueError, IndexError):
            self.gone = True
            return self.last
        if self.first is None:
            self.first = s
        self.last = s
        self.peak_rss = max(self.peak_rss, s.rss)
        return s


@dataclass(slots=True)
class ServerWatch:
    """All server processes given with --server-pid, summed."""

    procs: list[ProcWatch] = field(default_factory=list)

    @classmethod
    def of(cls, pids: list[int]) -> ServerWatch:
        w = cls([ProcWatch(pid) for pid in pids])
        w.sample()
        return w

    def sample(self) -> tuple[float, int]:
        """(total CPU seconds, total RSS bytes) now."""
        cpu = 0.0
        rss = 0
        for p in self.procs:
            s = p.sample()
            if s is not None:
                cpu += s.cpu_s
                rss += s.rss
        return cpu, rss

    def set_mark(self) -> None:
        """Start of the measured phase (after setup)."""
        self.sample()
        for p in self.procs:
            p.mark = p.last

    def cpu_since_mark(self) -> float:
        total = 0.0
        for p in self.procs:
            if p.mark is not None and p.last is not None:
                total += p.last.cpu_s - p.mark.cpu_s
        return total

    def as_dict(self) -> list[dict[str, float | int | bool]]:
        out: list[dict[str, float | int | bool]] = []
        for p in self.procs:
            first = p.first or ProcSample(0.0, 0)
            last = p.last or first
            mark = p.mark or first
            out.append(
                {
                    "pid": p.pid,
                    "cpu_s_total": round(last.cpu_s - first.cpu_s, 3),
                    "cpu_s_measured": round(last.cpu_s - mark.cpu_s, 3),
                    "rss_start": first.rss,
                    "rss_mark": mark.rss,
                    "rss_end": last.rss,
                    "rss_peak": p.peak_rss,
                    "exited": p.gone,
                }
            )
        return out


@dataclass(frozen=True, slots=True)
class SelfSample:
    wall: float
    cpu_s: float
    max_rss: int  # bytes (ru_maxrss is KiB on Linux)

    @staticmethod
    def now() -> SelfSample:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return SelfSample(time.perf_counter(), ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024)


@dataclass(frozen=True, slots=True)
class MachineSample:
    """Whole-machine CPU from /proc/stat: other sessions or jobs on the same host
    distort a benchmark, and this makes that visible (busy - tool - server)."""

    busy_s: float
    total_s: float

    @staticmethod
    def now() -> MachineSample:
        try:
            with open("/proc/stat", "rb") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return MachineSample(0.0, 0.0)
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        # guest time is already counted in user time: only the first 8 fields
        total = sum(fields[:8])
        return MachineSample((total - idle) / _TICKS, total / _TICKS)


def busy_cores(a: MachineSample, b: MachineSample) -> float:
    """Cores busy between two samples (total_s counts every core's time)."""
    total = b.total_s - a.total_s
    if total <= 0:
        return 0.0
    return (b.busy_s - a.busy_s) / total * (os.cpu_count() or 1)


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to at least ``wanted`` if possible; returns the soft limit.

    Each client is one socket; 10,000 clients need more than the usual 1024. The
    hard limit is raised too when the process may (root), else the soft limit
    stops at the hard one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    except (ValueError, OSError):
        return soft
