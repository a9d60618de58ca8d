"""--config dino.toml and --print-config: same keys as the flags, checked at start.

Precedence: flag > DINO_* variable > file > default. An unknown key or a value of the
wrong type stops the node at start (exit 2) with a message naming the key.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from server.settings import _OPTIONS, SECRET_KEYS, Settings, parse_settings

REPO = Path(__file__).resolve().parent.parent
RUN = [sys.executable, str(REPO / "run.py")]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dino.toml"
    path.write_text(text)
    return path


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str]) -> str:
    with pytest.raises(SystemExit) as info:
        parse_settings(argv, env)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_every_option_can_come_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
host = "127.0.0.3"
port = 6001
redis_url = "redis://127.0.0.1:6379/2"
redis_prefix = "f:"
node_id = "from-file"
auth = "jwt"
jwt_secret = "file-secret"
max_message_bytes = 2000
history_size = 30
history_on_join = 4
send_buffer_bytes = 5000
max_events_per_second = 7
max_event_burst = 8
ping_interval = 3.5
ping_timeout = 4
lease_ttl = 9
heartbeat_interval = 1.5
log_level = "warning"
log_format = "json"
compression = true
cors_origins = ["https://a.example", "https://b.example"]
api_keys = ["k1", "k2"]
idempotency_ttl = 60
max_api_body_bytes = 4096
metrics = false
drain_timeout = 12
connect_timeout = 7
header_timeout = 8
max_connections = 100
max_connections_per_address = 10
max_user_events_per_second = 11
max_user_event_burst = 12
max_rooms_per_user_per_hour = 13
max_new_conversations_per_hour = 14
max_history_reply_bytes = 15000
jwt_require_exp = false
edit_window = 60
receipts_max_room_size = 16
events_maxlen = 500
events_amqp_url = "amqp://u:secret@mq:5672/v"
events_amqp_exchange = "ev"
events_file = "/tmp/ev.jsonl"
""")
    settings = parse_settings(["--config", str(path)], {})
    assert settings == Settings(
        host="127.0.0.3", port=6001, redis_url="redis://127.0.0.1:6379/2", redis_prefix="f:",
        node_id="from-file", auth="jwt", jwt_secret="file-secret", max_message_bytes=2000,
        history_size=30, history_on_join=4, send_buffer_bytes=5000, max_events_per_second=7.0,
        max_event_burst=8, ping_interval=3.5, ping_timeout=4.0, lease_ttl=9.0,
        heartbeat_interval=1.5, log_level="WARNING", log_format="json", compression=True,
        cors_origins=("https://a.example", "https://b.example"), api_keys=("k1", "k2"),
        idempotency_ttl=60.0, max_api_body_bytes=4096, metrics=False, drain_timeout=12.0,
        connect_timeout=7.0, header_timeout=8.0, max_connections=100,
        max_connections_per_address=10, max_user_events_per_second=11.0,
        max_user_event_burst=12, max_rooms_per_user_per_hour=13,
        max_new_conversations_per_hour=14, max_history_reply_bytes=15000,
        jwt_require_exp=False, edit_window=60.0, receipts_max_room_size=16,
        events_maxlen=500, events_amqp_url="amqp://u:secret@mq:5672/v",
        events_amqp_exchange="ev", events_file="/tmp/ev.jsonl",
    )  # fmt: skip
    # The file above lists every option but one (a node has a Redis URL or cluster nodes,
    # not both; see the next test): a new option must be added to the file format too.
    listed = set(tomllib.loads(path.read_text())) | {"redis_cluster_nodes"}
    assert listed == {name for name, _, _ in _OPTIONS}


def test_redis_cluster_nodes_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'redis_cluster_nodes = "127.0.0.1:7000,127.0.0.1:7001"\n')
    settings = parse_settings(["--config", str(path)], {})
    assert settings.redis_cluster_nodes == "127.0.0.1:7000,127.0.0.1:7001"
    assert settings.backend == "redis-cluster"


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = 6001\nhistory_size = 30\nnode_id = "file"\ncompression = true\n')
    settings = parse_settings(
        ["--config", str(path), "--port", "7001", "--no-compression"],
        {"DINO_PORT": "8001", "DINO_HISTORY_SIZE": "40"},
    )
    assert settings.port == 7001  # flag
    assert settings.compression is False  # flag
    assert settings.history_size == 40  # environment
    assert settings.node_id == "file"  # file
    assert settings.history_on_join == Settings().history_on_join  # default


def test_the_file_may_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 6002\n")
    assert parse_settings([], {"DINO_CONFIG": str(path)}).port == 6002


def test_kebab_case_keys_are_the_flags_names(tmp_path: Path) -> None:
    path = write(tmp_path, "max-message-bytes = 99\n")
    assert parse_settings(["--config", str(path)], {}).max_message_bytes == 99


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prot = 5210\n", "unknown key 'prot'"),
        ("[server]\nport = 1\n", "unknown key 'server'"),
        ('port = "5210"\n', "'port' must be an integer, not a string"),
        ("port = 5210.5\n", "'port' must be an integer, not a number"),
        ("port = true\n", "'port' must be an integer, not a boolean"),
        ('compression = "yes"\n', "'compression' must be true or false, not a string"),
        ('lease_ttl = "8"\n', "'lease_ttl' must be a number, not a string"),
        ("cors_origins = [1, 2]\n", "'cors_origins' must be a list of strings, not a list"),
        ("node_id = 7\n", "'node_id' must be a string, not an integer"),
        ("port = \n", "not valid TOML"),
        ('auth = "ldap"\n', "--auth must be 'open' or 'jwt'"),
        ('log_format = "xml"\n', "--log-format must be 'text' or 'json'"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    assert expected in refused(capsys, ["--config", str(path)], {})


def test_a_missing_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, ["--config", str(tmp_path / "nope.toml")], {})
    assert "nope.toml: cannot be read" in err


def test_print_config_shows_the_effective_settings_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        'auth = "jwt"\njwt_secret = "hunter2"\napi_keys = ["key-one"]\n'
        'events_amqp_url = "amqp://dino:mq-password@mq:5672/"\n',
    )
    with pytest.raises(SystemExit) as info:
        parse_settings(["--config", str(path), "--print-config", "--port", "7002"], {})
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "key-one" not in out and "mq-password" not in out
    printed = tomllib.loads(out)  # what it prints is a valid config file
    assert printed["port"] == 7002
    assert printed["auth"] == "jwt"
    assert {printed[name] for name in SECRET_KEYS} == {"***"}
    # Read back (secrets aside), it gives the same settings.
    # (The AMQP URL must stay a URL to be read back.)
    out = out.replace('events_amqp_url = "***"', 'events_amqp_url = "amqp://mq/"')
    again = write(tmp_path, out.replace("\"***\"", "\"x\""))
    assert parse_settings(["--config", str(again)], {}).port == 7002


def test_help_never_prints_a_secret() -> None:
    result = subprocess.run(
        [*RUN, "--help"], capture_output=True, text=True, timeout=30, check=False,
        env={"DINO_JWT_SECRET": "hunter2", "DINO_API_KEYS": "key-one", "PATH": "",
             "DINO_EVENTS_AMQP_URL": "amqp://dino:mq-password@mq:5672/"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "key-one" not in result.stdout
    assert "mq-password" not in result.stdout
    assert "--config" in result.stdout and "--print-config" in result.stdout


def test_run_py_stops_at_start_on_a_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, "max_message_bytes = \"lots\"\n")
    result = subprocess.run(
        [*RUN, "--config", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "'max_message_bytes' must be an integer, not a string" in result.stderr
    assert "Traceback" not in result.stderr
