"""Baseline for the benchmarks: dino's protocol subset written "the obvious way".

python-socketio defaults on a Tornado app: AsyncServer(async_mode="tornado"),
default JSON, default compression settings, one ``await sio.emit(...)`` per room
message (python-socketio encodes the packet once and queues it to each member).
Everything lives in memory. It speaks only what the load tool uses: gn_connect,
login, create, join, leave, message (rooms and users, per-log seq), users_in_room.

    python benchmarks/psio_server.py --port 5299    (--port 0: any free port, printed)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import uuid
from typing import Any

import socketio
import tornado.httpserver
import tornado.netutil
import tornado.web

NS = "/chat"
HISTORY = 50


def now_rfc3339() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def ok(data: Any = None) -> dict[str, Any]:
    return {"status_code": 200} if data is None else {"status_code": 200, "data": data}


def bad(message: str) -> dict[str, Any]:
    return {"status_code": 400, "data": message}


class Room:
    def __init__(self, name: str, owner: dict[str, str]) -> None:
        self.id = str(uuid.uuid4())
        self.name = name
        self.owner = owner
        self.seq = 0
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self.sessions: dict[str, dict[str, str]] = {}  # sid -> actor

    def users(self) -> list[dict[str, str]]:
        unique = {a["id"]: a["summary"] for a in self.sessions.values()}
        return [{"id": k, "content": v} for k, v in sorted(unique.items())]


def make_server() -> socketio.AsyncServer:
    # always_connect: the CONNECT answer goes out before the connect handler runs,
    # so gn_connect reaches the client after its namespace is connected.
    sio = socketio.AsyncServer(async_mode="tornado", always_connect=True)
    actors: dict[str, dict[str, str]] = {}  # sid -> {"id", "summary"}
    rooms: dict[str, Room] = {}
    names: dict[str, str] = {}
    conversations: collections.Counter[tuple[str, str]] = collections.Counter()

    async def reply(sid: str, event: str, response: dict[str, Any]) -> dict[str, Any]:
        await sio.emit("gn_" + event, response, to=sid, namespace=NS)
        return response  # also the ack, when the client asked for one

    async def leave_room(sid: str, room: Room) -> None:
        actor = room.sessions.pop(sid)
        await sio.leave_room(sid, room.id, namespace=NS)
        if all(a["id"] != actor["id"] for a in room.sessions.values()):
            left = {
                "verb": "leave",
                "actor": actor,
                "target": {"id": room.id, "objectType": "room"},
            }
            await sio.emit("gn_user_left", left, room=room.id, namespace=NS)

    @sio.on("connect", namespace=NS)
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sio.emit("gn_connect", {"status_code": 200}, to=sid, namespace=NS)

    @sio.on("disconnect", namespace=NS)
    async def disconnect(sid: str, reason: Any = None) -> None:
        for room in [r for r in rooms.values() if sid in r.sessions]:
            await leave_room(sid, room)
        actors.pop(sid, None)

    @sio.on("login", namespace=NS)
    async def login(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        actor = (data or {}).get("actor") or {}
        user_id = actor.get("id")
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= 128:
            return await reply(sid, "login", bad("actor.id is required"))
        if sid in actors and actors[sid]["id"] != user_id:
            return await reply(sid, "login", bad("already logged in as another user"))
        actors[sid] = {"id": user_id, "summary": str(actor.get("summary") or user_id)}
        await sio.enter_room(sid, "user:" + user_id, namespace=NS)
        return await reply(
            sid, "login", ok({"verb": "login", "actor": {**actors[sid], "attachments": []}})
        )

    @sio.on("create", namespace=NS)
    async def create(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        if sid not in actors:
            return await reply(sid, "create", bad("not logged in"))
        name = ((data or {}).get("target") or {}).get("displayName")
        if not isinstance(name, str) or not 1 <= len(name) <= 128:
            return await reply(sid, "create", bad("target.displayName is required"))
        if name in names:
            return await reply(sid, "create", bad(f"a room named {name!r} exists"))
        room = Room(name, actors[sid])
        rooms[room.id] = room
        names[name] = room.id
        target = {"id": room.id, "displayName": name, "objectType": "room"}
        return await reply(
            sid, "create", ok({"verb": "create", "actor": actors[sid], "target": target})
        )

    @sio.on("join", namespace=NS)
    async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        if sid not in actors:
            return await reply(sid, "join", bad("not logged in"))
        room = rooms.get(((data or {}).get("target") or {}).get("id", ""))
        if room is None:
            return await reply(sid, "join", bad("no such room"))
        actor = actors[sid]
        first = all(a["id"] != actor["id"] for a in room.sessions.values())
        room.sessions[sid] = actor
        await sio.enter_room(sid, room.id, namespace=NS)
        if first:
            joined = {
                "verb": "join",
                "actor": actor,
                "target": {"id": room.id, "objectType": "room"},
            }
            await sio.emit("gn_user_joined", joined, room=room.id, skip_sid=sid, namespace=NS)
        owner = {"id": room.owner["id"], "content": room.owner["summary"]}
        return await reply(
            sid,
            "join",
            ok(
                {
                    "verb": "join",
                    "actor": {"id": room.id},
                    "target": {"id": room.id, "displayName": room.name, "objectType": "room"},
                    "object": {
                        "objectType": "room",
                        "attachments": [
                            {"objectType": "history", "attachments": list(room.history)},
                            {"objectType": "owner", "attachments": [owner]},
                            {"objectType": "acl", "attachments": []},
                            {"objectType": "user", "attachments": room.users()},
                        ],
                    },
                }
            ),
        )

    @sio.on("leave", namespace=NS)
    async def leave(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        if sid not in actors:
            return await reply(sid, "leave", bad("not logged in"))
        room = rooms.get(((data or {}).get("target") or {}).get("id", ""))
        if room is None or sid not in room.sessions:
            return await reply(sid, "leave", bad("not in that room"))
        await leave_room(sid, room)
        return await reply(sid, "leave", ok())

    @sio.on("users_in_room", namespace=NS)
    async def users_in_room(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        if sid not in actors:
            return await reply(sid, "users_in_room", bad("not logged in"))
        room_id = ((data or {}).get("target") or {}).get("id", "")
        room = rooms.get(room_id)
        if room is None:
            return await reply(sid, "users_in_room", bad("no such room"))
        users = {"objectType": "users", "attachments": room.users()}
        return await reply(
            sid, "users_in_room", ok({"verb": "list", "target": {"id": room_id}, "object": users})
        )

    @sio.on("message", namespace=NS)
    async def message(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        actor = actors.get(sid)
        if actor is None:
            return await reply(sid, "message", bad("not logged in"))
        target = (data or {}).get("target") or {}
        content = ((data or {}).get("object") or {}).get("content")
        if not isinstance(content, str) or not content or len(content.encode()) > 10240:
            return await reply(sid, "message", bad("object.content must be 1..10240 bytes"))
        activity: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "seq": 0,
            "published": now_rfc3339(),
            "verb": "send",
            "actor": actor,
        }
        if target.get("objectType") == "user":
            other = str(target.get("id", ""))
            pair = (min(actor["id"], other), max(actor["id"], other))
            conversations[pair] += 1
            activity["seq"] = conversations[pair]
            activity["target"] = {"id": other, "objectType": "user"}
            activity["object"] = {"content": content, "objectType": "private"}
            await sio.emit(
                "message",
                activity,
                to=["user:" + other, "user:" + actor["id"]],
                skip_sid=sid,
                namespace=NS,
            )
        else:
            room = rooms.get(str(target.get("id", "")))
            if room is None or sid not in room.sessions:
                return await reply(sid, "message", bad("not in that room"))
            room.seq += 1
            activity["seq"] = room.seq
            activity["target"] = {"id": room.id, "objectType": "room"}
            activity["object"] = {"content": content, "objectType": "group"}
            room.history.append(
                {
                    "id": activity["id"],
                    "seq": room.seq,
                    "content": content,
                    "summary": actor["summary"],
                    "published": activity["published"],
                    "actor": {"id": actor["id"]},
                }
            )
            await sio.emit("message", activity, room=room.id, namespace=NS)
        return await reply(sid, "message", ok(activity))

    @sio.on("*", namespace=NS)
    async def unknown(event: str, sid: str, data: Any = None) -> dict[str, Any]:
        return await reply(sid, event, bad(f"unknown event {event!r}"))

    return sio


async def serve(host: str, port: int) -> None:
    sio = make_server()
    app = tornado.web.Application([(r"/socket.io/", socketio.get_tornado_handler(sio))])
    sockets = tornado.netutil.bind_sockets(port, host)  # port 0: the OS picks one
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    print(f"psio_server listening on http://{host}:{bound}/", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5299)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
