"""One module per scenario; each exposes a frozen config dataclass and ``run``."""
