"""The one entry point of a node: ``python run.py`` and the ``dino`` console command."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from pathlib import Path

from .lifecycle import serve
from .logs import configure_logging
from .settings import parse_settings


def static_dir() -> Path:
    """The demo page: beside the sources in a checkout, under share/dino once installed."""
    checkout = Path(__file__).resolve().parent.parent / "static" / "demo"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "dino" / "static" / "demo"


def main(argv: list[str] | None = None, prog: str = "run.py") -> None:
    settings = parse_settings(argv, prog=prog)
    # A node holds many long-lived objects per connection; with the default threshold
    # (700) the collector re-scans them every few hundred allocations. Measured: about
    # 10% less CPU per connect+login+join at 10,000 connections.
    gc.set_threshold(20_000, 10, 10)
    configure_logging(settings.log_level, settings.log_format)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, static_dir(), stop)

    asyncio.run(run())


def console() -> None:
    """The ``dino`` command (setup.cfg entry point): same flags as run.py."""
    main(prog="dino")
