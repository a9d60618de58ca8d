"""The one-line progress display on stderr.

On a terminal the line is redrawn in place every second; when stderr is a file or
a pipe (CI logs) a full line is written every 5 seconds instead, so logs stay short.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from loadtest.harness import Harness, Tick

_PIPE_EVERY = 5


def fmt_us(us: float) -> str:
    """Microseconds as a short human figure."""
    if us >= 1_000_000:
        return f"{us / 1e6:.2f}s"
    if us >= 1000:
        return f"{us / 1000:.1f}ms"
    return f"{us:.0f}µs"


class Progress:
    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._count = 0
        self._width = 0

    def show(self, h: Harness, tick: Tick, wall: float) -> None:
        if not self.enabled:
            return
        self._count += 1
        if not self.tty and self._count % _PIPE_EVERY:
            return
        tr = h.traffic
        steps = h.steps
        failed = steps.failed()
        parts = [
            f"[{h.cfg.scenario} {tick.phase} {tick.t:6.1f}s]",
            f"conn {tr.connected}",
        ]
        if failed:
            parts.append(f"FAILED {failed}")
        if tr.sent:
            parts.append(f"sent {tr.sent} ok {tr.send_ok}")
            if tr.send_failed:
                parts.append(f"ERR {tr.send_failed}")
        if tick.deliveries or tr.deliveries:
            parts.append(
                f"{tick.deliveries / wall:,.0f} deliv/s"
                f" p50 {fmt_us(tick.p50_us)} p99 {fmt_us(tick.p99_us)}"
            )
        if tr.dropped:
            parts.append(f"dropped {tr.dropped}")
        parts.append(f"tool {tick.tool_cpu:.0%}")
        if h.server.procs:
            parts.append(f"srv {tick.server_cpu:.0%} {tick.server_rss / 2**20:,.0f}MiB")
        line = " | ".join(parts)
        if self.tty:
            pad = max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + " " * pad)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
