"""The layering holds: who may import whom (README, "How it is built").

transport (engine.io sessions, websocket writes) < protocol (wire) < core (actions, node,
hub, broker, cluster) < entry points (handlers/: socket.io namespace, HTTP API) <
composition (server/app.py, lifecycle). storage/ stands apart: the store seam.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMPOSITION = {"server/app.py", "server/lifecycle.py"}
TRANSPORT = {
    "server/transport.py",
    "server/lean.py",
    "server/polling.py",
    "server/eio_session.py",
    "server/edge.py",
    "server/accept.py",
    "server/wire.py",
}


def imported_packages(path: Path) -> set[str]:
    """The dotted names of the modules a module imports, relative imports resolved."""
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.add(".".join([*base, *([node.module] if node.module else [])]))
    return names


def importing(path: Path, *packages: str) -> set[str]:
    """What ``path`` imports from ``packages``."""
    return {n for n in imported_packages(path) if n.split(".")[0] in packages}


def modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (REPO / package).rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def test_only_the_composition_imports_the_entry_points():
    for path in modules("core", "server", "storage", "loadtest"):
        if rel(path) in COMPOSITION:
            continue
        entry = importing(path, "handlers")
        assert not entry, f"{rel(path)} imports the entry points {entry}"


@pytest.mark.parametrize("path", modules("core"), ids=rel)
def test_the_core_never_imports_handlers(path: Path):
    assert not importing(path, "handlers")


@pytest.mark.parametrize("path", [REPO / p for p in sorted(TRANSPORT)], ids=rel)
def test_the_transport_knows_nothing_of_rooms_or_users(path: Path):
    above = importing(path, "core", "handlers", "storage")
    assert not above, f"{rel(path)} imports {above}"


@pytest.mark.parametrize("path", modules("storage"), ids=rel)
def test_storage_stands_alone(path: Path):
    above = importing(path, "core", "handlers", "server")
    assert not above, f"{rel(path)} imports {above}"


def test_the_api_and_the_socket_handlers_share_only_the_request_readers():
    """Both are thin adapters over the core; neither calls the other."""
    for path in modules("handlers/api"):
        socket_side = {
            n for n in imported_packages(path)
            if n.startswith("handlers.") and not n.startswith("handlers.api")
        }  # fmt: skip
        assert socket_side <= {"handlers.validation"}, rel(path)
