"""Move a Redis written by dino 0.1 (keys without hash tags) to the current key layout.

    python -m storage.migrate_keys --redis-url redis://host:6379/0 [--redis-prefix dino:]
    python -m storage.migrate_keys ... --dry-run     # print what would happen

Stop every node first: old and new nodes cannot share one Redis. Rooms (index, names,
fields, owners, ACL), message logs with their sequence numbers and idempotency keys, and
users' last-seen times are renamed to their tagged names (``storage/keys.py``). Presence
(which session is in which room, on which node) and node leases are deleted instead:
they describe connections that ended when the nodes stopped, and nodes rebuild them as
clients reconnect. A key whose new name exists already is left alone and reported.
Running it twice is harmless: the second run finds nothing to move.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator

import redis

from storage.keys import KeySchema

# Old key shapes, after the prefix. Ids may contain ':', so each shape is anchored at
# both ends by its fixed words, the way the old layout kept names apart.
_DEDUPE = re.compile(r"log:(?P<id>.+):dedupe:(?P<digest>[0-9a-f]{64})")
_OWNED = re.compile(r"(?P<kind>room|session|user|node|log):(?P<id>.+):(?P<suffix>[a-z]+)")

Move = tuple[str, str | None]  # (old key, new key, or None to delete)


def plan(key: str, keys: KeySchema) -> Move | None:
    """What to do with ``key`` (a name under the prefix), or None if it is not an old key."""
    name = key[len(keys.prefix) :]
    if name.startswith("{"):
        return None  # the current layout already
    fixed = {"rooms": keys.rooms(), "room_names": keys.room_names(), "nodes": None}
    if name in fixed:
        return key, fixed[name]
    dedupe = _DEDUPE.fullmatch(name)
    if dedupe:
        return key, keys.log_dedupe(dedupe["id"], dedupe["digest"])
    owned = _OWNED.fullmatch(name)
    if owned is None:
        return None
    kind, ident, suffix = owned["kind"], owned["id"], owned["suffix"]
    new_names = {
        ("room", "info"): keys.room_info,
        ("room", "owners"): keys.room_owners,
        ("room", "acl"): keys.room_acl,
        ("log", "entries"): keys.log,
        ("log", "seq"): keys.log_seq,
        ("user", "info"): keys.user_info,
    }
    ephemeral = {
        ("room", "users"),
        ("room", "sessions"),
        ("room", "counts"),
        ("session", "info"),
        ("session", "rooms"),
        ("user", "sessions"),
        ("node", "sessions"),
        ("node", "cleanup"),
    }
    if (kind, suffix) in new_names:
        return key, new_names[kind, suffix](ident)
    if (kind, suffix) in ephemeral:
        return key, None
    return None


def _scan(client: redis.Redis, prefix: str) -> Iterator[str]:
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    for key in client.scan_iter(match=escaped + "*", count=1000):
        yield key.decode() if isinstance(key, bytes) else str(key)


def migrate(client: redis.Redis, keys: KeySchema, *, dry_run: bool = False) -> dict[str, int]:
    """Move every old key under ``keys.prefix``; returns counts (moved, deleted, kept)."""
    counts = {"moved": 0, "deleted": 0, "kept": 0}
    moves = [move for key in list(_scan(client, keys.prefix)) if (move := plan(key, keys))]
    for old, new in moves:
        if new is None:
            if not dry_run:
                client.delete(old)
            counts["deleted"] += 1
        elif dry_run or client.renamenx(old, new):
            counts["moved"] += 1
        else:
            print(f"kept {old!r}: {new!r} exists already", file=sys.stderr)
            counts["kept"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True, help="the Redis the nodes used")
    parser.add_argument("--redis-prefix", default="dino:", help="their --redis-prefix")
    parser.add_argument("--dry-run", action="store_true", help="only count what would move")
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(args.redis_url)
    counts = migrate(client, KeySchema(args.redis_prefix), dry_run=args.dry_run)
    client.close()
    verb = "would move" if args.dry_run else "moved"
    print(f"{verb} {counts['moved']} keys, deleted {counts['deleted']} presence and lease keys"
          f", kept {counts['kept']} (new name taken)")  # fmt: skip
    return 1 if counts["kept"] else 0


if __name__ == "__main__":
    sys.exit(main())
