"""Log output: readable text by default, or one JSON object a line (``--log-format json``).

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``node``, ``logger``, ``event``
(the message) and, when a call passes ``extra={"fields": {...}}``, those ``fields``; a
traceback goes in ``exception``. Nothing logs message content or tokens: log calls name
sessions, rooms and counts, never what users wrote or the credentials they sent.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node  # set once the node knows its id (after binding its port)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "node": self.node,
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line["fields"] = fields
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record to stderr in ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # A line per successful request (every /ready probe, /metrics scrape and long-poll)
    # buries everything else; failed requests are still logged, as warnings and errors.
    if level.upper() != "DEBUG":
        logging.getLogger("tornado.access").setLevel(logging.WARNING)


def name_node_in_logs(node_id: str) -> None:
    """Put ``node_id`` into every JSON line from now on (text lines name it once, at start)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.node = node_id
