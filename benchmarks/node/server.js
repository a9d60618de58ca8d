// Baseline for the benchmarks: dino's protocol subset on Node's socket.io 4.8.
//
// The same protocol work as benchmarks/psio_server.py, written "the obvious way":
// socket.io defaults (`new Server(httpServer)`, no options), default JSON, one
// `io.to(room).emit(...)` per room message (socket.io encodes the packet once and
// writes it to each member). Everything lives in memory. It speaks only what the load
// tool uses: gn_connect, login, create, join, leave, message (rooms and users,
// per-log seq), users_in_room. Each event E is answered with event gn_E and, when the
// client asked for one, an ack carrying the same object.
//
//     node benchmarks/node/server.js --port 5298    (--port 0: any free port, printed)
//
// Dependencies: `npm install` in benchmarks/node (socket.io pinned in package.json).

"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const { Server } = require("socket.io");

const NS = "/chat";
const HISTORY = 50;

function parseArgs(argv) {
  const args = { host: "127.0.0.1", port: 5298 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--host" || a === "--port") {
      const value = argv[++i];
      if (value === undefined) usage(`${a} needs a value`);
      if (a === "--host") args.host = value;
      else {
        args.port = Number(value);
        if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
          usage(`bad port ${value}`);
        }
      }
    } else if (a === "-h" || a === "--help") {
      usage(null);
    } else {
      usage(`unknown argument ${a}`);
    }
  }
  return args;
}

function usage(error) {
  const text = "usage: node benchmarks/node/server.js [--host HOST] [--port PORT]\n";
  if (error) {
    process.stderr.write(`${text}error: ${error}\n`);
    process.exit(2);
  }
  process.stdout.write(text);
  process.exit(0);
}

// Python's `x or {}` for a JSON value that should be an object.
function obj(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? value : {};
}

// Python's len(str): code points, not UTF-16 units.
function codePoints(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function ok(data) {
  return data === undefined ? { status_code: 200 } : { status_code: 200, data };
}

function bad(message) {
  return { status_code: 400, data: message };
}

class Room {
  constructor(name, owner) {
    this.id = crypto.randomUUID();
    this.name = name;
    this.owner = owner;
    this.seq = 0;
    this.history = []; // the newest HISTORY entries
    this.sessions = new Map(); // sid -> actor
  }

  users() {
    const unique = new Map();
    for (const a of this.sessions.values()) unique.set(a.id, a.summary);
    const ids = [...unique.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    return ids.map((id) => ({ id, content: unique.get(id) }));
  }
}

function makeServer(httpServer) {
  const io = new Server(httpServer);
  const chat = io.of(NS);
  const actors = new Map(); // sid -> {id, summary}
  const rooms = new Map(); // room id -> Room
  const names = new Map(); // room name -> room id
  const conversations = new Map(); // JSON [lower id, higher id] -> seq

  function leaveRoom(socket, room) {
    const actor = room.sessions.get(socket.id);
    room.sessions.delete(socket.id);
    socket.leave(room.id);
    for (const a of room.sessions.values()) if (a.id === actor.id) return;
    const left = { verb: "leave", actor, target: { id: room.id, objectType: "room" } };
    chat.to(room.id).emit("gn_user_left", left);
  }

  const handlers = {
    login(socket, data) {
      const actor = obj(obj(data).actor);
      const userId = actor.id;
      if (typeof userId !== "string" || codePoints(userId) < 1 || codePoints(userId) > 128) {
        return bad("actor.id is required");
      }
      const sid = socket.id;
      if (actors.has(sid) && actors.get(sid).id !== userId) {
        return bad("already logged in as another user");
      }
      const summary = actor.summary ? String(actor.summary) : userId;
      const me = { id: userId, summary };
      actors.set(sid, me);
      socket.join("user:" + userId);
      return ok({ verb: "login", actor: { ...me, attachments: [] } });
    },

    create(socket, data) {
      const actor = actors.get(socket.id);
      if (actor === undefined) return bad("not logged in");
      const name = obj(obj(data).target).displayName;
      if (typeof name !== "string" || codePoints(name) < 1 || codePoints(name) > 128) {
        return bad("target.displayName is required");
      }
      if (names.has(name)) return bad(`a room named '${name}' exists`);
      const room = new Room(name, actor);
      rooms.set(room.id, room);
      names.set(name, room.id);
      const target = { id: room.id, displayName: name, objectType: "room" };
      return ok({ verb: "create", actor, target });
    },

    join(socket, data) {
      const actor = actors.get(socket.id);
      if (actor === undefined) return bad("not logged in");
      const room = rooms.get(obj(obj(data).target).id ?? "");
      if (room === undefined) return bad("no such room");
      let first = true;
      for (const a of room.sessions.values()) if (a.id === actor.id) first = false;
      room.sessions.set(socket.id, actor);
      socket.join(room.id);
      if (first) {
        const joined = { verb: "join", actor, target: { id: room.id, objectType: "room" } };
        socket.to(room.id).emit("gn_user_joined", joined); // all members but this one
      }
      const owner = { id: room.owner.id, content: room.owner.summary };
      return ok({
        verb: "join",
        actor: { id: room.id },
        target: { id: room.id, displayName: room.name, objectType: "room" },
        object: {
          objectType: "room",
          attachments: [
            { objectType: "history", attachments: room.history.slice() },
            { objectType: "owner", attachments: [owner] },
            { objectType: "acl", attachments: [] },
            { objectType: "user", attachments: room.users() },
          ],
        },
      });
    },

    leave(socket, data) {
      if (!actors.has(socket.id)) return bad("not logged in");
      const room = rooms.get(obj(obj(data).target).id ?? "");
      if (room === undefined || !room.sessions.has(socket.id)) return bad("not in that room");
      leaveRoom(socket, room);
      return ok();
    },

    users_in_room(socket, data) {
      if (!actors.has(socket.id)) return bad("not logged in");
      const roomId = obj(obj(data).target).id ?? "";
      const room = rooms.get(roomId);
      if (room === undefined) return bad("no such room");
      const users = { objectType: "users", attachments: room.users() };
      return ok({ verb: "list", target: { id: roomId }, object: users });
    },

    message(socket, data) {
      const actor = actors.get(socket.id);
      if (actor === undefined) return bad("not logged in");
      const target = obj(obj(data).target);
      const content = obj(obj(data).object).content;
      if (
        typeof content !== "string" ||
        !content ||
        Buffer.byteLength(content, "utf8") > 10240
      ) {
        return bad("object.content must be 1..10240 bytes");
      }
      const activity = {
        id: crypto.randomUUID(),
        seq: 0,
        published: new Date().toISOString(), // 2026-12-03T10:00:00.123Z, as psio's
        verb: "send",
        actor,
      };
      if (target.objectType === "user") {
        const other = String(target.id ?? "");
        const pair = JSON.stringify(actor.id < other ? [actor.id, other] : [other, actor.id]);
        const seq = (conversations.get(pair) || 0) + 1;
        conversations.set(pair, seq);
        activity.seq = seq;
        activity.target = { id: other, objectType: "user" };
        activity.object = { content, objectType: "private" };
        // both users' sessions but the sender's
        socket.to(["user:" + other, "user:" + actor.id]).emit("message", activity);
      } else {
        const room = rooms.get(String(target.id ?? ""));
        if (room === undefined || !room.sessions.has(socket.id)) return bad("not in that room");
        room.seq += 1;
        activity.seq = room.seq;
        activity.target = { id: room.id, objectType: "room" };
        activity.object = { content, objectType: "group" };
        room.history.push({
          id: activity.id,
          seq: room.seq,
          content,
          summary: actor.summary,
          published: activity.published,
          actor: { id: actor.id },
        });
        if (room.history.length > HISTORY) room.history.shift();
        chat.to(room.id).emit("message", activity);
      }
      return ok(activity);
    },
  };

  chat.on("connection", (socket) => {
    // socket.io has sent the namespace CONNECT answer before this handler runs, so
    // gn_connect reaches the client after its namespace is connected.
    socket.emit("gn_connect", { status_code: 200 });

    const reply = (event, response, ack) => {
      socket.emit("gn_" + event, response);
      if (typeof ack === "function") ack(response); // also the ack, when asked for
    };

    for (const [event, handler] of Object.entries(handlers)) {
      socket.on(event, (...args) => {
        const ack = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
        reply(event, handler(socket, args[0]), ack);
      });
    }

    socket.onAny((event, ...args) => {
      if (Object.hasOwn(handlers, event)) return;
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
      reply(event, bad(`unknown event '${event}'`), ack);
    });

    socket.on("disconnect", () => {
      for (const room of rooms.values()) {
        if (room.sessions.has(socket.id)) leaveRoom(socket, room);
      }
      actors.delete(socket.id);
    });
  });

  return io;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const httpServer = http.createServer();
  makeServer(httpServer);
  httpServer.listen(args.port, args.host, () => {
    const bound = httpServer.address().port; // port 0: the OS picks one
    console.log(`node_server listening on http://${args.host}:${bound}/`);
  });
  // servers.py stops us with SIGTERM; exit at once, as Python does.
  process.on("SIGTERM", () => process.exit(0));
  process.on("SIGINT", () => process.exit(0));
}

main();
