// dino admin page: polls GET /api/v1/admin/stats with the API key and draws the cluster.
// No framework and no external assets (the CSP allows only this node). Everything that
// comes from the server is set with textContent, never as markup.
"use strict";

(function () {
  const API = "/api/v1";
  const POLL_MS = 2000;
  const CHART_POINTS = 60; // two minutes at one point per poll
  const KEY_STORE = "dino-admin-key";

  const $ = (id) => document.getElementById(id);
  const state = {
    key: sessionStorage.getItem(KEY_STORE) || "",
    timer: null,
    lastNodes: new Map(), // node id -> {at_ms, events, messages}
    nodeRates: new Map(), // node id -> {events, messages} per second
    lastRooms: new Map(), // room id -> {at_ms, last_seq}
    roomNames: new Map(), // room id -> name, for the user lookup
    series: [], // [{events, messages}] newest last
    user: null,
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Authorization: "Bearer " + state.key } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (err) {
      throw new ApiError(0, "the node cannot be reached");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const message = data && typeof data.error === "string" ? data.error : "HTTP " + response.status;
      throw new ApiError(response.status, message);
    }
    return data;
  }

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.dataset.state = kind || "";
  }

  function notice(text) {
    const el = $("notice");
    el.textContent = text || "";
    el.hidden = !text;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function rate(value) {
    return value === undefined ? "–" : value.toFixed(1);
  }

  // -- key -------------------------------------------------------------------------------

  function showKeyForm(message) {
    stopPolling();
    $("dash").hidden = true;
    $("forget").hidden = true;
    $("key-view").hidden = false;
    setStatus(message || "no API key", message ? "error" : "");
  }

  function showDashboard() {
    $("key-view").hidden = true;
    $("dash").hidden = false;
    $("forget").hidden = false;
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (!key) {
      notice("Enter an API key.");
      return;
    }
    state.key = key;
    sessionStorage.setItem(KEY_STORE, key);
    $("key").value = "";
    start();
  });

  $("forget").addEventListener("click", () => {
    state.key = "";
    sessionStorage.removeItem(KEY_STORE);
    showKeyForm();
  });

  // -- polling ---------------------------------------------------------------------------

  function stopPolling() {
    if (state.timer !== null) clearTimeout(state.timer);
    state.timer = null;
  }

  async function poll() {
    state.timer = null;
    try {
      const stats = await api("GET", "/admin/stats?rooms=10");
      notice("");
      showDashboard();
      render(stats);
      setStatus("live · " + stats.nodes.length + " node" + (stats.nodes.length === 1 ? "" : "s"), "ok");
    } catch (err) {
      if (err.status === 401 || err.status === 404) {
        sessionStorage.removeItem(KEY_STORE);
        state.key = "";
        showKeyForm(err.status === 401 ? "API key refused" : "the HTTP API is off on this node");
        notice(err.message);
        return;
      }
      setStatus("retrying: " + err.message, "error");
    }
    state.timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    stopPolling();
    notice("");
    setStatus("connecting…", "");
    poll();
  }

  // -- rendering -------------------------------------------------------------------------

  function render(stats) {
    $("answered-by").textContent = "· answered by " + stats.answered_by;
    renderNodes(stats.nodes);
    renderChart();
    renderRooms(stats.rooms, stats.at_ms);
  }

  function renderNodes(nodes) {
    const body = $("nodes");
    body.replaceChildren();
    let events = 0;
    let messages = 0;
    for (const node of nodes) {
      const previous = state.lastNodes.get(node.id);
      if (previous && node.at_ms > previous.at_ms) {
        const seconds = (node.at_ms - previous.at_ms) / 1000;
        state.nodeRates.set(node.id, {
          events: Math.max(0, (node.events - previous.events) / seconds),
          messages: Math.max(0, (node.messages - previous.messages) / seconds),
        });
      }
      if (!previous || node.at_ms > previous.at_ms) {
        state.lastNodes.set(node.id, { at_ms: node.at_ms, events: node.events, messages: node.messages });
      }
      const rates = state.nodeRates.get(node.id);
      if (rates) {
        events += rates.events;
        messages += rates.messages;
      }
      const row = document.createElement("tr");
      row.dataset.node = node.id;
      cell(row, node.id);
      let label = "serving";
      let kind = "state-serving";
      if (node.draining) {
        label = "draining";
        kind = "state-draining";
      } else if (node.redis_up === false) {
        label = "no Redis";
        kind = "state-noredis";
      } else if (node.at_ms === undefined) {
        label = "starting";
        kind = "";
      }
      cell(row, label, kind);
      const connections = node.connections || {};
      cell(row, String(connections.websocket ?? "–"));
      cell(row, String(connections.polling ?? "–"));
      cell(row, String(node.sessions ?? "–"));
      cell(row, String(node.users ?? "–"));
      cell(row, String(node.rooms_local ?? "–"));
      cell(row, rates ? rate(rates.events) : "–");
      body.appendChild(row);
    }
    for (const id of Array.from(state.lastNodes.keys())) {
      if (!nodes.some((n) => n.id === id)) {
        state.lastNodes.delete(id);
        state.nodeRates.delete(id);
      }
    }
    // A rate needs two snapshots of a node: nothing to draw before that.
    if (state.nodeRates.size > 0) {
      state.series.push({ events, messages });
      if (state.series.length > CHART_POINTS) state.series.shift();
    }
    $("rate-now").textContent = "· now " + rate(events) + " events/s, " + rate(messages) + " messages/s";
  }

  function renderChart() {
    const canvas = $("chart");
    // Draw at the element's real size, so lines stay sharp however wide the page is.
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(100, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(60, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    const styles = getComputedStyle(document.documentElement);
    ctx.clearRect(0, 0, width, height);
    const pad = { left: 44 * ratio, right: 8 * ratio, top: 8 * ratio, bottom: 18 * ratio };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const peak = Math.max(1, ...state.series.map((p) => Math.max(p.events, p.messages)));
    const top = niceCeiling(peak);

    ctx.font = 11 * ratio + "px system-ui, sans-serif";
    ctx.fillStyle = styles.getPropertyValue("--muted") || "#5b6475";
    ctx.strokeStyle = styles.getPropertyValue("--line") || "#dde1e8";
    ctx.lineWidth = 1;
    const steps = Number.isInteger(top / 4) || top < 4 ? 4 : 5; // 50 -> 10s, 20 -> 5s
    for (let i = 0; i <= steps; i += 1) {
      const y = pad.top + plotH - (plotH * i) / steps;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(width - pad.right, y);
      ctx.stroke();
      ctx.fillText(formatTick((top * i) / steps), 4 * ratio, y + 4 * ratio);
    }
    ctx.fillText("−2 min", pad.left, height - 4 * ratio);
    ctx.fillText("now", width - pad.right - 24 * ratio, height - 4 * ratio);

    const line = (key, color, dash) => {
      if (state.series.length < 2) return;
      ctx.strokeStyle = color;
      ctx.lineWidth = 2 * ratio;
      ctx.setLineDash(dash.map((d) => d * ratio));
      ctx.beginPath();
      state.series.forEach((point, index) => {
        const x = pad.left + (plotW * (CHART_POINTS - state.series.length + index)) / (CHART_POINTS - 1);
        const y = pad.top + plotH - (plotH * point[key]) / top;
        if (index === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    };
    // Messages are events too: dashed on top, so both lines show where they coincide.
    line("events", styles.getPropertyValue("--accent") || "#2f6fde", []);
    line("messages", styles.getPropertyValue("--ok") || "#1f7a3f", [6, 4]);
    ctx.setLineDash([]);
    canvas.dataset.points = String(state.series.length);
  }

  function niceCeiling(value) {
    const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) {
      if (value <= step * magnitude) return step * magnitude;
    }
    return 10 * magnitude;
  }

  function formatTick(value) {
    if (value >= 1000) return (value / 1000).toFixed(value >= 10000 ? 0 : 1) + "k";
    return value >= 10 || value === 0 ? value.toFixed(0) : value.toFixed(1);
  }

  function renderRooms(rooms, atMs) {
    $("room-total").textContent = "· " + rooms.total + " room" + (rooms.total === 1 ? "" : "s") + " in all";
    const body = $("rooms");
    body.replaceChildren();
    const seen = new Set();
    for (const room of rooms.busiest) {
      seen.add(room.id);
      state.roomNames.set(room.id, room.name);
      const previous = state.lastRooms.get(room.id);
      let perSecond;
      if (previous && atMs > previous.at_ms) {
        perSecond = Math.max(0, (room.last_seq - previous.last_seq) / ((atMs - previous.at_ms) / 1000));
      }
      state.lastRooms.set(room.id, { at_ms: atMs, last_seq: room.last_seq });
      const row = document.createElement("tr");
      row.dataset.room = room.id;
      cell(row, room.name).title = room.id;
      cell(row, String(room.members));
      cell(row, String(room.last_seq));
      cell(row, perSecond === undefined ? "–" : rate(perSecond));
      const actions = cell(row, "");
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn btn-quiet";
      remove.textContent = "Remove";
      remove.dataset.testid = "remove-room";
      remove.addEventListener("click", () => removeRoom(room));
      actions.appendChild(remove);
      body.appendChild(row);
    }
    for (const id of Array.from(state.lastRooms.keys())) {
      if (!seen.has(id)) state.lastRooms.delete(id);
    }
  }

  // -- moderation ------------------------------------------------------------------------

  async function removeRoom(room) {
    if (!window.confirm("Remove the room '" + room.name + "'? Its members are told and its history is deleted.")) {
      return;
    }
    try {
      await api("DELETE", "/rooms/" + encodeURIComponent(room.id));
      notice("");
      setStatus("removed room " + room.name, "ok");
      start();
    } catch (err) {
      notice("Could not remove the room: " + err.message);
    }
  }

  $("user-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = $("user-id").value.trim();
    if (!id) return;
    try {
      showUser(await api("GET", "/users/" + encodeURIComponent(id)));
      notice("");
    } catch (err) {
      $("user").hidden = true;
      $("user-disconnect").hidden = true;
      notice("Lookup failed: " + err.message);
    }
  });

  function showUser(user) {
    state.user = user;
    $("user").hidden = false;
    $("user-name").textContent = user.summary === user.id ? user.id : user.summary + " (" + user.id + ")";
    $("user-status").textContent = user.online ? "online" : "offline";
    $("user-sessions").textContent = String(user.sessions);
    const named = user.rooms.map((id) => (state.roomNames.has(id) ? state.roomNames.get(id) + " (" + id + ")" : id));
    $("user-rooms").textContent = named.length ? named.join(", ") : "none";
    $("user-seen").textContent = user.last_seen || (user.online ? "now" : "never");
    $("user-disconnect").hidden = !user.online;
  }

  $("user-disconnect").addEventListener("click", async () => {
    const user = state.user;
    if (!user) return;
    try {
      await api("POST", "/users/" + encodeURIComponent(user.id) + "/disconnect", {
        reason: "disconnected by an administrator",
      });
      showUser(await api("GET", "/users/" + encodeURIComponent(user.id)));
      setStatus("disconnected " + user.id, "ok");
    } catch (err) {
      notice("Could not disconnect: " + err.message);
    }
  });

  // -- start -----------------------------------------------------------------------------

  if (state.key) start();
  else showKeyForm();
})();
