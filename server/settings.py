"""Node settings: one frozen object, read from the command line with environment defaults.

Every option is also an environment variable (``--redis-url`` <-> ``DINO_REDIS_URL``), so a
node can be configured by a process manager without a wrapper script.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
    ("idempotency_ttl", float, "seconds a message's client id or Idempotency-Key is kept"),
    ("max_api_body_bytes", int, "largest HTTP API request body, bytes"),
    ("edit_window", float, "seconds a sender may edit or delete their own message"),
    ("events_maxlen", int, "events kept in the event stream (Redis: MAXLEN ~); 0: no stream"),
    ("events_amqp_exchange", str, "RabbitMQ topic exchange the event stream goes to"),
    ("events_file", str, "append every event to this JSON-lines file (one forwarder)"),
)


def _env_name(name: str) -> str:
    return "DINO_" + name.upper()


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from ``argv`` (flags win) and ``environ`` (DINO_* variables)."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Start a dino node. Every option can also be set as DINO_<OPTION>.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, kind, text in _OPTIONS:
        # An environment value stays a string: argparse converts string defaults with
        # ``type`` itself, so a malformed number is a usage error, not a traceback.
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=str.upper if name == "log_level" else kind,
            choices=LOG_LEVELS if name == "log_level" else None,
            default=env.get(_env_name(name), getattr(defaults, name)),
            help=f"{text} [{_env_name(name)}]",
        )
    parser.add_argument(
        "--compression",
        action=argparse.BooleanOptionalAction,
        default=_truthy(env.get("DINO_COMPRESSION", "")),
        help="negotiate permessage-deflate with clients [DINO_COMPRESSION]",
    )
    parser.add_argument(
        "--jwt-require-exp",
        action=argparse.BooleanOptionalAction,
        default=_truthy(env.get("DINO_JWT_REQUIRE_EXP", "1")),
        help="refuse JWTs without an exp claim [DINO_JWT_REQUIRE_EXP]",
    )
    parser.add_argument(
        "--cors-origins",
        default=env.get("DINO_CORS_ORIGINS", ""),
        help="comma-separated allowed origins, '*' for any; empty: same origin [DINO_CORS_ORIGINS]",
    )
    parser.add_argument(
        "--api-keys",
        default=None,  # read from the environment below: --help must not print keys
        help="comma-separated keys for the HTTP API (several, to rotate them); empty: the "
        "API is off [DINO_API_KEYS]",
    )
    parser.add_argument(
        "--events-amqp-url",
        default=None,  # read from the environment below: --help must not print passwords
        help="forward the event stream to RabbitMQ at this amqp:// URL; empty: off "
        "[DINO_EVENTS_AMQP_URL]",
    )
    args = parser.parse_args(argv)
    if args.auth not in ("open", "jwt"):
        parser.error("--auth must be 'open' or 'jwt'")
    if args.auth == "jwt" and not args.jwt_secret:
        parser.error("--auth jwt needs --jwt-secret (or DINO_JWT_SECRET)")
    values = {name: getattr(args, name) for name, _, _ in _OPTIONS}
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
    origins = tuple(o.strip() for o in args.cors_origins.split(",") if o.strip())
    raw_keys = args.api_keys if args.api_keys is not None else env.get("DINO_API_KEYS", "")
    api_keys = tuple(k.strip() for k in raw_keys.split(",") if k.strip())
    amqp_url = args.events_amqp_url
    if amqp_url is None:
        amqp_url = env.get("DINO_EVENTS_AMQP_URL", "")
    if amqp_url and not amqp_url.startswith(("amqp://", "amqps://")):
        parser.error("--events-amqp-url must start with amqp:// or amqps://")
    if values["events_maxlen"] < 0:
        parser.error("--events-maxlen must be 0 (off) or more")
    if (amqp_url or values["events_file"]) and values["events_maxlen"] == 0:
        parser.error("--events-amqp-url and --events-file need the stream (--events-maxlen > 0)")
    return Settings(
        **values,
        compression=args.compression,
        jwt_require_exp=args.jwt_require_exp,
        cors_origins=origins,
        api_keys=api_keys,
        events_amqp_url=amqp_url,
    )
