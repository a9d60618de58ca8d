#!/usr/bin/env python3
"""Start a dino node from a checkout; ``pip install .`` installs the same as ``dino``."""

from __future__ import annotations

from server.main import main

if __name__ == "__main__":
    main()
