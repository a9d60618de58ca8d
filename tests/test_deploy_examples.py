"""The deployment examples in deploy/ match what a node really serves and reads."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

from server.settings import Settings, parse_settings, read_config_file
from tests.test_metrics import _text

if TYPE_CHECKING:
    from tests.node_fixtures import RunningNode

pytest_plugins = ["tests.node_fixtures"]

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
METRIC = re.compile(r"\bdino_[a-z_]+\b")


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


async def live_metrics(node: RunningNode) -> str:
    """/metrics after some traffic, so that labelled series exist."""
    client = await node.client("websocket", user="grafana")
    room_id = await client.create("dashboard")
    await client.join(room_id)
    await client.say(room_id, "hello")
    return await _text(node)


async def test_every_metric_the_dashboard_queries_exists(node: RunningNode) -> None:
    text = await live_metrics(node)
    exposed = {sample.name for family in text_string_to_metric_families(text)
               for sample in family.samples}  # fmt: skip
    queried = {name for expr in dashboard_queries() for name in METRIC.findall(expr)}
    assert queried, "the dashboard queries nothing"
    assert queried <= exposed, f"not in /metrics: {sorted(queried - exposed)}"


async def test_every_metric_is_on_the_dashboard(node: RunningNode) -> None:
    text = await live_metrics(node)
    # (prometheus-client's "_created" timestamps come back from the parser as families.)
    families = {family.name for family in text_string_to_metric_families(text)
                if not family.name.endswith("_created")}  # fmt: skip
    queries = " ".join(dashboard_queries())
    missing = sorted(name for name in families if name not in queries)
    assert not missing, f"metrics without a dashboard panel: {missing}"


def test_the_example_config_file_is_valid() -> None:
    path = DEPLOY / "dino.toml.example"
    assert read_config_file(path)  # every key known, every type right
    settings = parse_settings(["--config", str(path)], {"DINO_JWT_SECRET": "s"})
    assert settings.auth == "jwt" and settings.log_format == "json"
    assert settings.drain_timeout == Settings().drain_timeout


def test_the_systemd_unit_runs_dino_and_lets_it_drain() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "dino.service")
    service = unit["Service"]
    assert re.search(r"/dino --config /etc/dino/dino\.toml$", service["ExecStart"])
    assert service["KillSignal"] == "SIGTERM"
    # systemd must not SIGKILL the node while it drains.
    assert int(service["TimeoutStopSec"]) > Settings().drain_timeout
    assert unit["Install"]["WantedBy"] == "multi-user.target"
