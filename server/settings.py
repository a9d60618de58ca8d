"""Node settings: one frozen object, from flags, DINO_* variables and a TOML file.

Every option is a flag, an environment variable and a config file key (``--redis-url``,
``DINO_REDIS_URL``, ``redis_url = "..."`` in the file given by ``--config``), so a node
can be configured by a process manager without a wrapper script. The first of these that
sets a value wins: flag, then environment, then file, then the default. One table,
``_OPTIONS``, lists them all; the flags, the variables and the file keys are derived from it.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .redis_clients import is_cluster_url, parse_cluster_nodes


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 5210
    redis_url: str | None = None  # None: embedded in-memory store, single node
    redis_prefix: str = "dino:"
    redis_cluster_nodes: str | None = None  # "host:port,...": a Redis Cluster
    node_id: str = ""  # "" -> "<hostname>:<port>": stable across restarts (see cluster.py)
    auth: str = "open"  # "open" or "jwt"
    jwt_secret: str = ""
    max_message_bytes: int = 10_240
    history_size: int = 1_000  # messages kept per room / conversation
    history_on_join: int = 50
    compression: bool = False  # permessage-deflate; off: it costs ~2x CPU and ~150 KB/conn
    send_buffer_bytes: int = 1_048_576  # a slower consumer than this is disconnected
    max_events_per_second: float = 50.0  # per connection, after a burst of
    max_event_burst: int = 200  # (a reconnect: login, then a join and a history per room)
    cors_origins: tuple[str, ...] = ()  # () -> same origin only; ("*",) -> any
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    # The edge (server/edge.py): limits that keep one client from exhausting a node.
    connect_timeout: float = 45.0  # engine.io session without a namespace: closed
    header_timeout: float = 10.0  # HTTP headers, and idle keep-alive, before a handshake
    max_connections: int = 20_000  # engine.io sessions per node (HTTP 503 above)
    max_connections_per_address: int = 500  # per client address (behind nginx: X-Real-IP)
    max_user_events_per_second: float = 100.0  # per user, across their sessions on a node
    max_user_event_burst: int = 400
    max_rooms_per_user_per_hour: int = 20
    max_new_conversations_per_hour: int = 100  # distinct users one user writes to
    max_history_reply_bytes: int = 524_288  # a longer history reply is cut, "more": true
    jwt_require_exp: bool = True  # --auth jwt: a token without exp is refused
    lease_ttl: float = 8.0  # a node silent this long is dead; survivors purge it
    heartbeat_interval: float = 2.0
    log_level: str = "INFO"
    api_keys: tuple[str, ...] = ()  # () -> the HTTP API is off
    idempotency_ttl: float = 86_400.0  # seconds a client id / Idempotency-Key is remembered
    max_api_body_bytes: int = 1_048_576
    edit_window: float = 900.0  # seconds a sender may edit or delete their own message
    log_format: str = "text"  # "text" (readable) or "json" (one object a line)
    metrics: bool = True  # /metrics and the timing histograms
    drain_timeout: float = 30.0  # SIGTERM: seconds to move clients off before exiting
    receipts_max_room_size: int = 50  # rooms with more members send no read receipts
    # The event stream out (core/events.py): events kept (Redis: XADD MAXLEN ~); 0: off.
    events_maxlen: int = 100_000
    events_amqp_url: str = ""  # "": no RabbitMQ forwarding
    events_amqp_exchange: str = "dino.events"
    events_file: str = ""  # "": no JSON-lines file

    @property
    def max_packet_bytes(self) -> int:
        """The largest websocket frame or polling POST body (socket.io's maxHttpBufferSize):
        a larger one closes the connection; anything up to it that breaks a rule gets a
        400. It is also Tornado's request body limit, so no request is buffered beyond it."""
        return max(65_536, 8 * self.max_message_bytes)

    @property
    def backend(self) -> str:
        if self.redis_cluster_nodes or is_cluster_url(self.redis_url):
            return "redis-cluster"
        return "redis" if self.redis_url else "memory"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
# Never printed (--print-config) nor logged: they let their holder act as anyone (the
# AMQP URL carries the broker's password).
SECRET_KEYS = frozenset({"jwt_secret", "api_keys", "events_amqp_url"})

# name, kind, help. ``tuple`` options are lists in the file and comma-separated text in a
# flag or variable; ``bool`` options are --x/--no-x flags and 1/true/yes/on variables.
_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("host", str, "address to listen on"),
    ("port", int, "port to listen on"),
    ("redis_url", str, "Redis URL (redis://host:port/db); unset: in-memory, one node"),
    ("redis_prefix", str, "prefix of every Redis key and channel"),
    ("redis_cluster_nodes", str, "Redis Cluster nodes host:port,... (or redis+cluster://)"),
    ("node_id", str, "this node's id in the cluster (default hostname:port)"),
    ("auth", str, "authentication: open (anyone may log in as anyone) or jwt"),
    ("jwt_secret", str, "shared secret for --auth jwt (HS256)"),
    ("max_message_bytes", int, "largest message content, UTF-8 bytes"),
    ("history_size", int, "messages kept per room or conversation"),
    ("history_on_join", int, "messages returned in gn_join"),
    ("send_buffer_bytes", int, "per-connection send buffer; a slower client is dropped"),
    ("max_events_per_second", float, "events a connection may send per second"),
    ("max_event_burst", int, "events a connection may send at once, above that rate"),
    ("ping_interval", float, "socket.io ping interval, seconds"),
    ("ping_timeout", float, "socket.io ping timeout, seconds"),
    ("connect_timeout", float, "seconds an engine.io session may wait to connect a namespace"),
    ("header_timeout", float, "seconds for request headers and for idle HTTP keep-alive"),
    ("max_connections", int, "engine.io sessions per node; more get HTTP 503"),
    ("max_connections_per_address", int, "engine.io sessions per client address"),
    ("max_user_events_per_second", float, "events one user may send per second, all sessions"),
    ("max_user_event_burst", int, "events one user may send at once, above that rate"),
    ("max_rooms_per_user_per_hour", int, "rooms one user may create per hour on a node"),
    ("max_new_conversations_per_hour", int, "distinct users one user may write to per hour"),
    ("max_history_reply_bytes", int, "largest history reply; longer ones are cut with more"),
    ("lease_ttl", float, "seconds without heartbeat before a node counts as dead"),
    ("heartbeat_interval", float, "seconds between node lease renewals"),
    ("log_level", str, "DEBUG, INFO, WARNING or ERROR"),
    ("log_format", str, "text (readable) or json (one object a line)"),
    ("compression", bool, "negotiate permessage-deflate with clients"),
    ("cors_origins", tuple, "comma-separated allowed origins, '*' for any; empty: same origin"),
    ("api_keys", tuple, "comma-separated keys for the HTTP API (several, to rotate them); "
     "empty: the API is off"),
    ("idempotency_ttl", float, "seconds a message's client id or Idempotency-Key is kept"),
    ("max_api_body_bytes", int, "largest HTTP API request body, bytes"),
    ("edit_window", float, "seconds a sender may edit or delete their own message"),
    ("jwt_require_exp", bool, "with --auth jwt, refuse tokens without an exp claim"),
    ("metrics", bool, "serve Prometheus metrics at /metrics"),
    ("drain_timeout", float, "on SIGTERM, seconds to move clients away before exiting"),
    ("receipts_max_room_size", int, "rooms of more members send no read/received receipts"),
    ("events_maxlen", int, "events kept in the event stream (Redis: MAXLEN ~); 0: no stream"),
    ("events_amqp_url", str, "forward the event stream to RabbitMQ at this amqp:// URL; "
     "empty: off"),
    ("events_amqp_exchange", str, "RabbitMQ topic exchange the event stream goes to"),
    ("events_file", str, "append every event to this JSON-lines file (one forwarder)"),
)

_CHOICES: dict[str, tuple[str, ...]] = {
    "auth": ("open", "jwt"),
    "log_level": LOG_LEVELS,
    "log_format": LOG_FORMATS,
}
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               tuple: "a list of strings"}  # fmt: skip


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


def _env_name(name: str) -> str:
    return "DINO_" + name.upper()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _one_of(choices: Sequence[str]) -> str:
    quoted = [repr(c) for c in choices]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _type_name(value: object) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip


def _file_value(path: Path, name: str, kind: type, value: object) -> object:
    """A config file value checked against its option's kind (TOML has types; use them)."""
    ok: bool
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    elif kind is tuple:
        if isinstance(value, str):
            value = _split(value)
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value  # type: ignore[arg-type]
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(
            f"config file {path}: {name!r} must be {_KIND_NAMES[kind]}, not {_type_name(value)}"
        )
    return value


def read_config_file(path: Path) -> dict[str, object]:
    """The settings in a TOML file, keyed by option name; raises ConfigError naming the
    file and the key for anything unknown or of the wrong type."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    kinds = {name: kind for name, kind, _ in _OPTIONS}
    values: dict[str, object] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in kinds:
            raise ConfigError(
                f"config file {path}: unknown key {key!r} (known keys: {', '.join(kinds)})"
            )
        values[name] = _file_value(path, key, kinds[name], value)
    return values


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _config_path(argv: Sequence[str] | None, env: Mapping[str, str]) -> str | None:
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config", default=env.get("DINO_CONFIG") or None)
    known, _ = early.parse_known_args(argv)
    path: str | None = known.config
    return path


def _parser(prog: str, defaults: Mapping[str, object]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Start a dino node. Every option can also be set as DINO_<OPTION> or as "
        "a key of the --config file; a flag wins over a variable, a variable over the file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings [DINO_CONFIG]")
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings as TOML (secrets masked) and exit",
    )
    for name, kind, text in _OPTIONS:
        help_text = f"{text} [{_env_name(name)}]"
        # --help prints defaults: a secret's is filled in after parsing, never shown.
        default = None if name in SECRET_KEYS else defaults[name]
        if kind is bool:
            parser.add_argument(_flag(name), action=argparse.BooleanOptionalAction,
                                default=default, help=help_text)  # fmt: skip
        elif kind is tuple:
            parser.add_argument(_flag(name), type=_split, default=default, help=help_text)
        else:
            # A string default (from the environment) is converted by argparse with
            # ``type`` itself, so a malformed number is a usage error, not a traceback.
            parser.add_argument(
                _flag(name),
                type=str.upper if name == "log_level" else kind,
                default=default,
                help=help_text,
            )
    return parser


def parse_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    prog: str = "run.py",
) -> Settings:
    """Build Settings from ``argv`` (flags win), ``environ`` (DINO_* variables), then the
    ``--config`` file. Exits with status 2 and a message naming the option on any error;
    with ``--print-config`` prints the settings and exits with 0."""
    env = os.environ if environ is None else environ
    config_path = _config_path(argv, env)
    file_values: dict[str, object] = {}
    if config_path:
        try:
            file_values = read_config_file(Path(config_path))
        except ConfigError as exc:
            _parser(prog, asdict(Settings())).error(str(exc))
    base = asdict(Settings())
    defaults: dict[str, object] = {}
    for name, kind, _ in _OPTIONS:
        value = env.get(_env_name(name))
        if value is None:
            defaults[name] = file_values.get(name, base[name])
        elif kind is bool:
            defaults[name] = _truthy(value)
        elif kind is tuple:
            defaults[name] = _split(value)
        else:
            defaults[name] = value
    parser = _parser(prog, defaults)
    args = parser.parse_args(argv)
    values: dict[str, Any] = {name: getattr(args, name) for name, _, _ in _OPTIONS}
    for name in SECRET_KEYS:
        if values[name] is None:
            values[name] = defaults[name]
    for name, choices in _CHOICES.items():
        if name == "log_level":
            values[name] = str(values[name]).upper()
        if values[name] not in choices:
            parser.error(f"{_flag(name)} must be {_one_of(choices)}")
    if values["auth"] == "jwt" and not values["jwt_secret"]:
        parser.error("--auth jwt needs --jwt-secret (or DINO_JWT_SECRET)")
    if values["drain_timeout"] < 0:
        parser.error("--drain-timeout must be 0 or more seconds")
    values["redis_url"] = values["redis_url"] or None
    values["redis_cluster_nodes"] = values["redis_cluster_nodes"] or None
    if values["redis_url"] and values["redis_cluster_nodes"]:
        parser.error("give --redis-url or --redis-cluster-nodes, not both")
    for text in (values["redis_cluster_nodes"], values["redis_url"]):
        if text and (text == values["redis_cluster_nodes"] or is_cluster_url(text)):
            try:
                parse_cluster_nodes(text)
            except ValueError as exc:
                parser.error(str(exc))
    if "{" in values["redis_prefix"] or "}" in values["redis_prefix"]:
        parser.error("--redis-prefix must not contain '{' or '}' (Redis Cluster hash tags)")
    if values["events_amqp_url"] and not values["events_amqp_url"].startswith(
        ("amqp://", "amqps://")
    ):
        parser.error("--events-amqp-url must start with amqp:// or amqps://")
    if values["events_maxlen"] < 0:
        parser.error("--events-maxlen must be 0 (off) or more")
    if (values["events_amqp_url"] or values["events_file"]) and values["events_maxlen"] == 0:
        parser.error("--events-amqp-url and --events-file need the stream (--events-maxlen > 0)")
    settings = Settings(**values)
    if args.print_config:
        print(settings_as_toml(settings), end="")
        raise SystemExit(0)
    return settings


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def settings_as_toml(settings: Settings) -> str:
    """The settings as a config file; secrets are masked, an unset Redis URL commented."""
    lines = []
    values = asdict(settings)
    for name, _, text in _OPTIONS:
        value = values[name]
        if name in SECRET_KEYS and value:
            value = "***"
        if value is None:
            lines.append(f"# {name} = (unset)  # {text}")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
