"""Node settings: command-line flags, DINO_* environment variables, and run.py itself."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.settings import _OPTIONS, Settings, parse_settings

REPO = Path(__file__).resolve().parent.parent
RUN = [sys.executable, str(REPO / "run.py")]
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")


def parse(*argv: str, **env: str) -> Settings:
    return parse_settings(list(argv), env)


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str, **env: str) -> str:
    """The error argparse prints for ``argv``/``env``; fails unless it exits with 2."""
    with pytest.raises(SystemExit) as info:
        parse(*argv, **env)
    assert info.value.code == 2
    err: str = capsys.readouterr().err
    assert err.startswith("usage: run.py")
    return err


# -- defaults, flags, environment ----------------------------------------------------------


def test_defaults_without_flags_or_environment():
    settings = parse()
    assert settings == Settings()
    assert settings.port == 5210
    assert settings.redis_url is None
    assert settings.backend == "memory"
    assert settings.auth == "open"
    assert settings.max_message_bytes == 10_240
    assert settings.history_on_join == 50
    assert settings.compression is False
    assert settings.cors_origins == ()


def test_every_flag():
    settings = parse(
        "--host", "127.0.0.1",
        "--port", "0",
        "--redis-url", "redis://127.0.0.1:6379/3",
        "--redis-prefix", "chat:",
        "--node-id", "node-a",
        "--auth", "jwt",
        "--jwt-secret", "s3cret",
        "--max-message-bytes", "100",
        "--history-size", "10",
        "--history-on-join", "5",
        "--send-buffer-bytes", "4096",
        "--max-events-per-second", "2.5",
        "--max-event-burst", "7",
        "--ping-interval", "1.5",
        "--ping-timeout", "2",
        "--lease-ttl", "3",
        "--heartbeat-interval", "0.5",
        "--log-level", "debug",
        "--compression",
        "--cors-origins", "https://a.example, https://b.example ,",
        "--log-format", "json",
        "--no-metrics",
        "--drain-timeout", "5",
    )  # fmt: skip
    assert settings == Settings(
        host="127.0.0.1",
        port=0,
        redis_url="redis://127.0.0.1:6379/3",
        redis_prefix="chat:",
        node_id="node-a",
        auth="jwt",
        jwt_secret="s3cret",
        max_message_bytes=100,
        history_size=10,
        history_on_join=5,
        send_buffer_bytes=4096,
        max_events_per_second=2.5,
        max_event_burst=7,
        ping_interval=1.5,
        ping_timeout=2.0,
        lease_ttl=3.0,
        heartbeat_interval=0.5,
        log_level="DEBUG",  # upper-cased by the parser
        log_format="json",
        metrics=False,
        drain_timeout=5.0,
        compression=True,
        cors_origins=("https://a.example", "https://b.example"),
    )
    assert settings.backend == "redis"


def test_every_option_has_an_environment_variable():
    env = {
        "DINO_HOST": "127.0.0.2",
        "DINO_PORT": "6000",
        "DINO_REDIS_URL": "redis://localhost/1",
        "DINO_REDIS_PREFIX": "x:",
        "DINO_NODE_ID": "n1",
        "DINO_AUTH": "jwt",
        "DINO_JWT_SECRET": "k",
        "DINO_MAX_MESSAGE_BYTES": "2048",
        "DINO_HISTORY_SIZE": "7",
        "DINO_HISTORY_ON_JOIN": "3",
        "DINO_SEND_BUFFER_BYTES": "999",
        "DINO_MAX_EVENTS_PER_SECOND": "3",
        "DINO_MAX_EVENT_BURST": "9",
        "DINO_PING_INTERVAL": "4",
        "DINO_PING_TIMEOUT": "5",
        "DINO_LEASE_TTL": "6",
        "DINO_HEARTBEAT_INTERVAL": "1",
        "DINO_LOG_LEVEL": "WARNING",
        "DINO_COMPRESSION": "yes",
        "DINO_CORS_ORIGINS": "*",
        "DINO_LOG_FORMAT": "json",
        "DINO_METRICS": "0",
        "DINO_DRAIN_TIMEOUT": "12.5",
        "DINO_CONNECT_TIMEOUT": "7",
        "DINO_HEADER_TIMEOUT": "8",
        "DINO_MAX_CONNECTIONS": "100",
        "DINO_MAX_CONNECTIONS_PER_ADDRESS": "10",
        "DINO_MAX_USER_EVENTS_PER_SECOND": "11",
        "DINO_MAX_USER_EVENT_BURST": "12",
        "DINO_MAX_ROOMS_PER_USER_PER_HOUR": "13",
        "DINO_MAX_NEW_CONVERSATIONS_PER_HOUR": "14",
        "DINO_MAX_HISTORY_REPLY_BYTES": "15000",
        "DINO_JWT_REQUIRE_EXP": "no",
        "DINO_API_KEYS": "old-key, new-key",
        "DINO_IDEMPOTENCY_TTL": "60",
        "DINO_MAX_API_BODY_BYTES": "4096",
        "DINO_EDIT_WINDOW": "120",
        "DINO_RECEIPTS_MAX_ROOM_SIZE": "5",
        "DINO_EVENTS_MAXLEN": "500",
        "DINO_EVENTS_AMQP_URL": "amqp://u:secret@mq:5672/v",
        "DINO_EVENTS_AMQP_EXCHANGE": "ev",
        "DINO_EVENTS_FILE": "/tmp/ev.jsonl",
    }
    settings = parse(**env)
    assert settings == Settings(
        host="127.0.0.2",
        port=6000,
        redis_url="redis://localhost/1",
        redis_prefix="x:",
        node_id="n1",
        auth="jwt",
        jwt_secret="k",
        max_message_bytes=2048,
        history_size=7,
        history_on_join=3,
        send_buffer_bytes=999,
        max_events_per_second=3.0,
        max_event_burst=9,
        ping_interval=4.0,
        ping_timeout=5.0,
        lease_ttl=6.0,
        heartbeat_interval=1.0,
        log_level="WARNING",
        compression=True,
        cors_origins=("*",),
        log_format="json",
        metrics=False,
        drain_timeout=12.5,
        connect_timeout=7.0,
        header_timeout=8.0,
        max_connections=100,
        max_connections_per_address=10,
        max_user_events_per_second=11.0,
        max_user_event_burst=12,
        max_rooms_per_user_per_hour=13,
        max_new_conversations_per_hour=14,
        max_history_reply_bytes=15000,
        jwt_require_exp=False,
        api_keys=("old-key", "new-key"),
        idempotency_ttl=60.0,
        max_api_body_bytes=4096,
        edit_window=120.0,
        receipts_max_room_size=5,
        events_maxlen=500,
        events_amqp_url="amqp://u:secret@mq:5672/v",
        events_amqp_exchange="ev",
        events_file="/tmp/ev.jsonl",
    )
    # Every Settings field is reachable from the environment (DINO_REDIS_CLUSTER_NODES
    # excludes DINO_REDIS_URL: tests/test_redis_cluster.py reads it from the environment).
    names = {f.name for f in dataclasses.fields(Settings)} - {"redis_cluster_nodes"}
    assert {f"DINO_{name.upper()}" for name in names} == set(env)


def test_flags_win_over_the_environment():
    settings = parse(
        "--port", "7000", "--auth", "open", "--no-compression",
        DINO_PORT="6000", DINO_AUTH="jwt", DINO_JWT_SECRET="k", DINO_COMPRESSION="1",
    )  # fmt: skip
    assert (settings.port, settings.auth, settings.compression) == (7000, "open", False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("ON", True), (" yes ", True),
     ("0", False), ("no", False), ("false", False), ("", False), ("maybe", False)],
)  # fmt: skip
def test_compression_from_the_environment(value: str, expected: bool):
    assert parse(DINO_COMPRESSION=value).compression is expected


def test_an_empty_redis_url_means_the_memory_store():
    assert parse(DINO_REDIS_URL="").redis_url is None
    assert parse("--redis-url", "").backend == "memory"


def test_cors_origins_are_split_and_trimmed():
    assert parse("--cors-origins", "").cors_origins == ()
    assert parse("--cors-origins", " , ").cors_origins == ()
    assert parse(DINO_CORS_ORIGINS="https://x.example").cors_origins == ("https://x.example",)


def test_jwt_secret_may_come_from_the_environment():
    settings = parse("--auth", "jwt", DINO_JWT_SECRET="from-env")
    assert (settings.auth, settings.jwt_secret) == ("jwt", "from-env")


# -- refused settings ----------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["bogus", "JWT", "", "none"])
def test_an_unknown_auth_mode_is_refused(capsys, auth: str):
    assert "--auth must be 'open' or 'jwt'" in usage_error(capsys, "--auth", auth)


def test_an_unknown_auth_mode_from_the_environment_is_refused(capsys):
    assert "--auth must be 'open' or 'jwt'" in usage_error(capsys, DINO_AUTH="ldap")


def test_jwt_without_a_secret_is_refused(capsys):
    assert "--jwt-secret" in usage_error(capsys, "--auth", "jwt")
    assert "--jwt-secret" in usage_error(capsys, "--auth", "jwt", "--jwt-secret", "")


@pytest.mark.parametrize(
    "argv",
    [["--port", "http"], ["--max-message-bytes", "10k"], ["--ping-interval", "soon"],
     ["--no-such-flag"], ["--port"]],
)  # fmt: skip
def test_malformed_flags_are_refused(capsys, argv: list[str]):
    usage_error(capsys, *argv)


@pytest.mark.parametrize("name", ["DINO_PORT", "DINO_MAX_MESSAGE_BYTES", "DINO_PING_TIMEOUT"])
def test_a_malformed_number_in_the_environment_is_a_usage_error(capsys, name: str):
    assert name[5:].lower().replace("_", "-") in usage_error(capsys, **{name: "lots"})


# -- run.py --------------------------------------------------------------------------------


def test_event_stream_options(capsys):
    settings = parse("--events-amqp-url", "amqps://u:p@mq/", "--events-file", "e.jsonl")
    assert settings.events_amqp_url == "amqps://u:p@mq/"
    assert settings.events_file == "e.jsonl"
    assert settings.events_maxlen == 100_000
    assert "amqp:// or amqps://" in usage_error(capsys, "--events-amqp-url", "http://mq/")
    assert "0 (off) or more" in usage_error(capsys, "--events-maxlen", "-1")
    assert "need the stream" in usage_error(
        capsys, "--events-maxlen", "0", "--events-file", "e.jsonl"
    )


def test_help_does_not_print_the_amqp_password(capsys):
    with pytest.raises(SystemExit):
        parse("--help", DINO_EVENTS_AMQP_URL="amqp://u:hunter2@mq/")
    assert "hunter2" not in capsys.readouterr().out


def test_help_lists_every_option_and_its_variable():
    result = subprocess.run(
        [*RUN, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: run.py")
    for name, _, _ in _OPTIONS:
        assert "--" + name.replace("_", "-") in text
        assert f"DINO_{name.upper()}" in text
    for flag in ("--compression", "--no-compression", "--cors-origins"):
        assert flag in text


def test_run_py_refuses_a_bad_auth_mode():
    result = subprocess.run(
        [*RUN, "--auth", "bogus"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "--auth must be 'open' or 'jwt'" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_py_refuses_a_bad_log_level():
    result = subprocess.run(
        [*RUN, "--log-level", "loud", "--port", "0", "--host", "127.0.0.1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.fixture
def started_nodes() -> Iterator[list[subprocess.Popen[str]]]:
    nodes: list[subprocess.Popen[str]] = []
    yield nodes
    for process in nodes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def start_run_py(
    nodes: list[subprocess.Popen[str]], argv: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[str], int, list[str]]:
    """Start run.py; return it, its port (from the 'listening on' line) and its log so far."""
    process = subprocess.Popen(
        [*RUN, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
    )
    nodes.append(process)
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break  # it exited
        lines.append(line)
        match = LISTENING.search(line)
        if match:
            return process, int(match.group(1)), lines
    process.kill()
    pytest.fail("run.py did not log 'listening on':\n" + "".join(lines))


def health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        data: dict[str, object] = json.load(response)
        return data


def stop(process: subprocess.Popen[str]) -> list[str]:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert process.stderr is not None
    return process.stderr.readlines()


def test_run_py_serves_with_flags_and_stops_on_sigterm(started_nodes):
    environ = {"DINO_PORT": "1", "DINO_LOG_LEVEL": "INFO"}  # the flags win
    process, port, _ = start_run_py(
        started_nodes, ["--host", "127.0.0.1", "--port", "0", "--node-id", "flagged"], environ
    )
    assert port != 0
    status = health(port)
    assert (status["node"], status["backend"], status["sessions"]) == ("flagged", "memory", 0)
    assert any("stopping node flagged" in line for line in stop(process))


def test_run_py_reads_the_environment(started_nodes, redis_url, key_prefix, redis_client):
    environ = {
        "DINO_HOST": "127.0.0.1",
        "DINO_PORT": "0",
        "DINO_REDIS_URL": redis_url,
        "DINO_REDIS_PREFIX": key_prefix,
        "DINO_NODE_ID": "from-env",
    }
    process, port, lines = start_run_py(started_nodes, [], environ)
    assert any("redis backend" in line for line in lines)
    status = health(port)
    assert (status["node"], status["backend"]) == ("from-env", "redis")
    stop(process)
