#!/usr/bin/env python3
"""Start a dino node: parse settings, build the node, listen. No logic lives here."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from server.lifecycle import serve
from server.settings import parse_settings

STATIC_DIR = Path(__file__).resolve().parent / "static" / "demo"


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    # A node holds many long-lived objects per connection; with the default threshold
    # (700) the collector re-scans them every few hundred allocations. Measured: about
    # 10% less CPU per connect+login+join at 10,000 connections.
    gc.set_threshold(20_000, 10, 10)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, STATIC_DIR, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
