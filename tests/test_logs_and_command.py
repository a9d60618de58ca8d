"""--log-format json, no secrets or message content in logs, and the ``dino`` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import jwt
import socketio

from tests.test_settings import REPO, start_run_py, started_nodes, stop

__all__ = ["started_nodes"]  # the fixture, used below by name

SECRET = "jwt-secret-" + uuid.uuid4().hex
API_KEY = "api-key-" + uuid.uuid4().hex


async def test_json_logs_carry_the_fields_and_no_secrets_or_content(started_nodes) -> None:
    process, port, _ = start_run_py(
        started_nodes,
        ["--host", "127.0.0.1", "--port", "0", "--node-id", "jsonnode", "--log-format", "json",
         "--log-level", "DEBUG", "--auth", "jwt", "--jwt-secret", SECRET, "--api-keys", API_KEY],
        {},
    )  # fmt: skip
    claims = {"sub": "alice", "name": "Alice", "exp": int(time.time()) + 600}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    content = "private words " + uuid.uuid4().hex
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(f"http://127.0.0.1:{port}", namespaces=["/chat"],
                         transports=["websocket"], auth={"token": token})  # fmt: skip
    try:
        login = await client.call("login", {"verb": "login"}, namespace="/chat", timeout=10)
        assert login["status_code"] == 200, login
        created = await client.call("create", {"verb": "create", "target": {"displayName": "r"}},
                                    namespace="/chat", timeout=10)  # fmt: skip
        room_id = created["data"]["target"]["id"]
        await client.call("join", {"verb": "join", "target": {"id": room_id}},
                          namespace="/chat", timeout=10)  # fmt: skip
        sent = await client.call("message", {"verb": "send", "target": {"id": room_id},
                                             "object": {"content": content}},
                                 namespace="/chat", timeout=10)  # fmt: skip
        assert sent["status_code"] == 200, sent
        # A failing event is logged too; its payload must not be.
        await client.call("join", {"verb": "join", "target": {"id": content}},
                          namespace="/chat", timeout=10)  # fmt: skip
    finally:
        await client.disconnect()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/rooms/{room_id}/history",
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert content in reply.read().decode()  # the API returns it; the log must not

    lines = stop(process)
    assert lines, "nothing was logged after start"
    text = "".join(lines)
    for secret in (SECRET, API_KEY, token, content):
        assert secret not in text
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "node", "logger", "event"} <= set(record), record
        assert record["node"] == "jsonnode"
        assert record["time"].endswith("+00:00")
    assert any(r["event"] == "stopping node jsonnode" for r in records)
    assert any(r["logger"] == "tornado.access" for r in records)  # DEBUG: requests too


def test_pip_install_gives_a_dino_command(tmp_path: Path) -> None:
    """``pip install .`` into a fresh virtualenv (no downloads: dependencies are taken from
    this interpreter's site-packages), then ``dino`` runs a node from another directory."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)  # fmt: skip
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", ".mypy_cache", ".ruff_cache",
        "node_modules", "benchmarks"))  # fmt: skip
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
         "--no-build-isolation", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    dino = venv / "bin" / "dino"
    assert dino.exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    help_text = subprocess.run([str(dino), "--help"], capture_output=True, text=True,
                               cwd=elsewhere, timeout=60, check=True).stdout  # fmt: skip
    assert help_text.startswith("usage: dino")
    assert "--config" in help_text and "--drain-timeout" in help_text
    process = subprocess.Popen(
        [str(dino), "--host", "127.0.0.1", "--port", "0", "--node-id", "installed"],
        cwd=elsewhere, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    try:
        assert process.stderr is not None
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "dino exited before listening"
            if "listening on http://127.0.0.1:" in line:
                port = int(line.split("listening on http://127.0.0.1:")[1].split("/")[0])
        assert port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/demo/", timeout=10) as reply:
            assert reply.status == 200 and "<html" in reply.read().decode().lower()
        # The installed code, not this checkout, is what runs: every package and
        # subpackage of the source tree was installed (a missing one would be found in
        # a development install on this machine, and be missing on a clean one).
        packages = sorted(
            ".".join(path.parent.relative_to(source).parts)
            for path in source.glob("*/**/__init__.py")
            if path.parts[len(source.parts)] in ("core", "server", "handlers", "storage")
        )
        assert "handlers.api" in packages
        script = (
            "import importlib, json; "
            f"print(json.dumps([importlib.import_module(p).__file__ for p in {packages}]))"
        )
        imported = subprocess.run(
            [str(venv / "bin" / "python"), "-c", script],
            cwd=elsewhere, capture_output=True, text=True, timeout=60, check=True,
            env={**os.environ, "PYTHONPATH": ""},
        ).stdout  # fmt: skip
        files = json.loads(imported)
        assert all(str(venv) in path for path in files), files
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
