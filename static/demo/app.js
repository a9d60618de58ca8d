/*
 * dino chat demo: a small client for a dino node, speaking the protocol in README.md
 * ("Protocol") over the official socket.io client, namespace /chat.
 *
 * Rule of the house: every piece of user content (names, room names, messages,
 * attributes, server error texts) reaches the DOM through textContent or
 * createTextNode, never through innerHTML. The el() helper below is the only way this
 * file builds elements.
 */
(function () {
  'use strict';

  var REQUEST_TIMEOUT_MS = 10000;
  var HISTORY_PAGE = 200; // entries per `history ... since` request while catching up
  var MAX_CATCH_UP_PAGES = 25; // a bound, so a confused server cannot keep us looping
  var ROOM_POLL_MS = 15000; // counts of rooms we are not in change without any push

  var $ = function (id) { return document.getElementById(id); };

  var state = {
    socket: null,
    login: null, // what the person typed: {id, name, city, age, token}
    me: null, // the user the server says we are (with JWT it can differ from the form)
    everConnected: false, // tells a reconnect from the first connect
    rooms: [], // the last list_rooms answer
    convs: new Map(), // "room:<id>" / "user:<id>" -> conversation (see newConversation)
    active: null, // key of the conversation on screen
    pollTimer: null,
    refreshTimer: null,
    status: 'online', // what the person chose in the status menu
    resumed: null, // counts from the last gn_resume, for the status line
  };

  // ---------------------------------------------------------------- DOM helpers

  /** Build an element; `text` goes in as a text node, attributes via setAttribute. */
  function el(tag, opts, children) {
    var node = document.createElement(tag);
    opts = opts || {};
    if (opts.className) node.className = opts.className;
    if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
    if (opts.attrs) {
      Object.keys(opts.attrs).forEach(function (name) {
        node.setAttribute(name, String(opts.attrs[name]));
      });
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return '';
    var sameDay = d.toDateString() === new Date().toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }

  // ---------------------------------------------------------------- status and notices

  /** The connection state line in the header; data-state drives its colour. */
  function setStatus(kind, text) {
    var node = $('conn-status');
    node.dataset.state = kind;
    node.textContent = text;
    // Sending while the link is down would only queue up in the client; say so instead.
    var online = kind === 'connected';
    $('composer-fields').disabled = !online;
    $('composer-input').placeholder = online ? 'Write a message…' : 'Waiting for the connection…';
  }

  /** Show an error to the person; it stays until dismissed or replaced. */
  function showNotice(text) {
    $('notice-text').textContent = text;
    $('notice').hidden = false;
  }

  function hideNotice() { $('notice').hidden = true; }

  // ---------------------------------------------------------------- requests

  /**
   * Emit `event` and resolve with the server's answer ({status_code, data}). Never
   * rejects: a transport problem resolves as status_code 0 with a readable `data`, so
   * every caller handles one shape.
   */
  function request(event, payload) {
    return new Promise(function (resolve) {
      var socket = state.socket;
      if (!socket || !socket.connected) {
        resolve({ status_code: 0, data: 'not connected to the server' });
        return;
      }
      socket.timeout(REQUEST_TIMEOUT_MS).emit(event, payload, function (err, resp) {
        if (err) resolve({ status_code: 0, data: 'the server did not answer in time' });
        else resolve(resp || { status_code: 0, data: 'the server sent an empty answer' });
      });
    });
  }

  function ok(resp) { return !!resp && resp.status_code === 200; }

  /** A readable line for a failed answer; `data` is a string for 400 and 500. */
  function describeError(resp) {
    var data = resp && resp.data;
    var detail = typeof data === 'string' ? data : JSON.stringify(data);
    if (resp && resp.status_code === 500) return 'server error: ' + detail;
    return detail || 'unknown error';
  }

  function attachment(obj, type) {
    var list = (obj && obj.attachments) || [];
    for (var i = 0; i < list.length; i++) if (list[i].objectType === type) return list[i];
    return null;
  }

  // ---------------------------------------------------------------- connection

  function loginPayload(login) {
    var actor = { attachments: [] };
    // With a token the server takes the id from it; an id is still sent when typed.
    if (login.id) actor.id = login.id;
    if (login.name) actor.summary = login.name;
    if (login.city) actor.attachments.push({ objectType: 'city', content: login.city });
    if (login.age) actor.attachments.push({ objectType: 'age', content: login.age });
    return { verb: 'login', actor: actor };
  }

  function connect(login) {
    var options = {
      transports: ['polling', 'websocket'],
      // A fresh Manager per login: io() would otherwise reuse a cached one for '/chat'.
      forceNew: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
    };
    if (login.token) options.auth = { token: login.token };
    // Relative URL: the node serving this page is the node we talk to.
    var socket = io('/chat', options);
    state.socket = socket;

    socket.on('connect', onConnect);
    socket.on('disconnect', onDisconnect);
    socket.on('connect_error', onConnectError);
    socket.io.on('reconnect_attempt', function (attempt) {
      setStatus('reconnecting', 'reconnecting… (attempt ' + attempt + ')');
    });
    socket.on('message', onMessage);
    socket.on('gn_user_joined', onUserJoined);
    socket.on('gn_user_left', onUserLeft);
    socket.on('gn_resume', onResume);
    socket.on('gn_gap', onGap);
    socket.on('gn_message_read', onRead);
  }

  /** Runs on the first connect and again after every reconnect (a new server session). */
  function onConnect() {
    var reconnecting = state.everConnected;
    setStatus('connecting', reconnecting ? 'reconnected, logging in again…' : 'connected, logging in…');
    var payload = loginPayload(state.login);
    // After a reconnect, the login carries every log we show with the last seq and
    // epoch we have: the server rejoins the rooms and replays exactly what we missed,
    // before anything newer (gn_resume reports per log; see onResume).
    if (reconnecting) payload.object = { attachments: resumeList() };
    request('login', payload).then(function (resp) {
      if (!ok(resp)) {
        if (!reconnecting) {
          // Nothing to keep yet: back to the form, with the server's reason.
          teardown();
          showLoginView();
          showNotice('Login failed: ' + describeError(resp));
        } else {
          setStatus('error', 'connected, but logging in again failed');
          showNotice('Logging in again failed: ' + describeError(resp));
        }
        return;
      }
      var actor = (resp.data && resp.data.actor) || {};
      state.me = { id: actor.id || state.login.id, name: actor.summary || actor.id || state.login.id };
      state.everConnected = true;
      $('whoami-name').textContent = state.me.name + ' (' + state.me.id + ')';
      showOwnStatus(state.status);
      if (state.status !== 'online') setOwnStatus(state.status); // kept across reconnects
      if (!reconnecting) {
        setStatus('connected', 'connected');
        showChatView();
        refreshRooms();
        startRoomPolling();
        loadConversations();
        return;
      }
      finishResume();
    });
  }

  /** Every log we show, as `resume` wants it: kind, id, last seq held, its epoch. */
  function resumeList() {
    var logs = [];
    state.convs.forEach(function (conv) {
      if (conv.kind === 'room' && (!conv.joined || conv.gone)) return;
      var item = { objectType: conv.kind, id: conv.id, seq: conv.contig };
      if (conv.epoch) item.epoch = conv.epoch;
      logs.push(item);
    });
    state.resumed = null;
    return logs;
  }

  /** gn_resume (before gn_login): what the server did with each log we named. */
  function onResume(resp) {
    var outcomes = (resp && resp.data && resp.data.object && resp.data.object.attachments) || [];
    var counts = { rejoined: 0, gone: 0 };
    outcomes.forEach(function (o) {
      var conv = state.convs.get(o.objectType + ':' + o.id);
      if (!conv) return;
      if (o.status === 'gone' || o.status === 'refused') {
        markRoomGone(conv, { status_code: o.status === 'gone' ? 404 : 403, data: o.error });
        counts.gone += 1;
        return;
      }
      if (o.status === 'reset' && conv.epoch && conv.epoch !== o.epoch) resetLog(conv);
      if (o.epoch) conv.epoch = o.epoch;
      if (conv.kind === 'room') counts.rejoined += 1;
    });
    state.resumed = counts;
  }

  /** After the login that resumed: the status line, and fresh member lists. */
  function finishResume() {
    var counts = state.resumed || { rejoined: 0, gone: 0 };
    var text = 'reconnected, rejoined ' + plural(counts.rejoined, 'room');
    if (counts.gone) text += ' (' + counts.gone + ' no longer available)';
    setStatus('connected', text);
    state.convs.forEach(function (conv) {
      if (conv.kind === 'room' && conv.joined && !conv.gone) refreshMembers(conv);
    });
    refreshRooms();
  }

  function refreshMembers(conv) {
    var payload = { verb: 'list', target: { id: conv.id } };
    return request('users_in_room', payload).then(function (resp) {
      if (!ok(resp)) return;
      conv.members = new Map();
      historyAttachments(resp.data).forEach(function (u) { conv.members.set(u.id, u.content || u.id); });
      if (state.active === conv.key) renderMembers(conv);
    });
  }

  /** gn_gap: messages the server no longer keeps (trimmed while we were away). */
  function onGap(gap) {
    var target = (gap && gap.target) || {};
    var conv = state.convs.get(target.objectType + ':' + target.id);
    if (!conv) return;
    addSystemLine(conv, plural(gap.to - gap.from + 1, 'earlier message') + ' could not be recovered.');
    conv.contig = Math.max(conv.contig, gap.to); // not asked about again
  }

  /** The conversations the server keeps for us (direct messages that came while we
   * were offline, on any node), with unread counts as badges. */
  function loadConversations() {
    return request('conversations', { verb: 'list', limit: 50 }).then(function (resp) {
      if (!ok(resp)) return;
      historyAttachments(resp.data).forEach(function (c) {
        if (c.objectType !== 'user' || !c.unread) return;
        var conv = openDirect(c.id, c.id, false);
        conv.unread = c.unread;
      });
      renderConversationList();
    });
  }

  // ---------------------------------------------------------------- read marks

  /** Tell the server we have read the conversation on screen up to its newest seq. */
  function markRead(conv) {
    if (!conv || !state.socket || !state.socket.connected || document.hidden) return;
    var upTo = maxSeen(conv);
    if (upTo <= (conv.readSent || 0)) return;
    conv.readSent = upTo;
    var target = conv.kind === 'room' ? { id: conv.id } : { objectType: 'user', id: conv.id };
    request('read', { verb: 'read', target: target, object: { seq: upTo } });
  }

  /** gn_message_read: someone read up to a seq; our messages up to it get a read mark. */
  function onRead(receipt) {
    var actor = (receipt && receipt.actor) || {};
    var target = (receipt && receipt.target) || {};
    var seq = Number(receipt && receipt.object && receipt.object.seq);
    var fromMe = state.me && actor.id === state.me.id;
    var key = target.objectType === 'room' ? 'room:' + target.id
      : 'user:' + (fromMe ? target.id : actor.id);
    var conv = state.convs.get(key);
    if (!conv || !Number.isFinite(seq)) return;
    if (fromMe) { // another of our sessions read it: no longer unread here either
      if (seq >= maxSeen(conv)) { conv.unread = 0; renderConversationList(); }
      return;
    }
    conv.peerRead = Math.max(conv.peerRead || 0, seq);
    renderReadMarks(conv);
  }

  function renderReadMarks(conv) {
    var upTo = conv.peerRead || 0;
    conv.pane.querySelectorAll('li.msg.mine[data-seq]').forEach(function (li) {
      if (Number(li.getAttribute('data-seq')) <= upTo) li.setAttribute('data-read', 'true');
    });
  }

  // ---------------------------------------------------------------- status

  /** The person's own status: a dot and a menu (online, away, invisible). */
  function setOwnStatus(status) {
    return request('status', { verb: status }).then(function (resp) {
      if (!ok(resp)) {
        showNotice('Status not changed: ' + describeError(resp));
        showOwnStatus(state.status);
        return;
      }
      state.status = status;
      showOwnStatus(status);
    });
  }

  function showOwnStatus(status) {
    $('status-dot').setAttribute('data-status', status);
    $('status-select').value = status;
  }

  /** Dots for the members on screen, from one get_status round trip. */
  function refreshMemberStatus(conv) {
    var ids = Array.from(conv.members.keys()).slice(0, 500);
    if (!ids.length) return;
    var payload = { verb: 'list', object: { attachments: ids.map(function (id) { return { id: id }; }) } };
    request('get_status', payload).then(function (resp) {
      if (!ok(resp) || state.active !== conv.key) return;
      historyAttachments(resp.data).forEach(function (s) {
        var dot = $('member-list').querySelector('li[data-user-id="' + CSS.escape(s.id) + '"] .status-dot');
        if (dot) dot.setAttribute('data-status', s.status);
      });
    });
  }

  function onDisconnect(reason) {
    if (reason === 'io client disconnect') return; // we logged out ourselves
    if (reason === 'io server disconnect') {
      // socket.io does not retry when the server closed the session on purpose.
      setStatus('offline', 'disconnected by the server');
      showNotice('The server closed the connection. Log out and in again to reconnect.');
      return;
    }
    setStatus('reconnecting', 'reconnecting…');
  }

  function onConnectError(err) {
    var refused = state.socket && !state.socket.active; // the server said no: no retry
    if (refused || !state.everConnected) {
      // Before the first login there is nothing to restore, so rather than retry
      // behind the form, hand it back with the reason.
      teardown();
      showLoginView();
      showNotice((refused ? 'Connection refused: ' : 'Could not reach the server: ') +
        ((err && err.message) || 'unknown error'));
    }
    // Otherwise socket.io retries by itself; reconnect_attempt updates the status.
  }

  /** Close the socket and forget the session (logout, or a refused connection). */
  function teardown() {
    if (state.socket) {
      state.socket.off();
      state.socket.io.off();
      state.socket.disconnect();
    }
    state.socket = null;
    state.me = null;
    state.everConnected = false;
    state.status = 'online';
    state.rooms = [];
    state.convs.forEach(function (conv) { conv.pane.remove(); });
    state.convs.clear();
    state.active = null;
    clearInterval(state.pollTimer);
    clearTimeout(state.refreshTimer);
    setStatus('offline', 'not connected');
  }

  // ---------------------------------------------------------------- views

  function showLoginView() {
    $('chat-view').hidden = true;
    $('whoami').hidden = true;
    $('login-view').hidden = false;
    $('login-submit').disabled = false;
  }

  function showChatView() {
    $('login-view').hidden = true;
    $('chat-view').hidden = false;
    $('whoami').hidden = false;
    renderConversationList();
    renderActive();
  }

  // ---------------------------------------------------------------- rooms

  function refreshRooms() {
    return request('list_rooms', { verb: 'list' }).then(function (resp) {
      if (!ok(resp)) {
        if (resp.status_code !== 0) showNotice('Could not list rooms: ' + describeError(resp));
        return;
      }
      var obj = resp.data && resp.data.object;
      state.rooms = (obj && obj.attachments) || [];
      renderRooms();
    });
  }

  /** Member counts move with joins and leaves; coalesce bursts into one list_rooms. */
  function scheduleRoomRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refreshRooms, 300);
  }

  function startRoomPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = setInterval(function () {
      if (state.socket && state.socket.connected) refreshRooms();
    }, ROOM_POLL_MS);
  }

  function renderRooms() {
    var list = $('room-list');
    list.replaceChildren.apply(list, state.rooms.map(roomItem));
    $('room-list-empty').hidden = state.rooms.length > 0;
  }

  function roomItem(room) {
    var conv = state.convs.get('room:' + room.id);
    var joined = !!(conv && conv.joined);
    var count = Number(room.summary) || 0;
    var button = el('button', {
      className: 'btn btn-small' + (joined ? ' btn-quiet' : ''),
      text: joined ? 'Open' : 'Join',
      attrs: { type: 'button', 'aria-label': (joined ? 'Open room ' : 'Join room ') + room.content },
    });
    button.addEventListener('click', function () {
      if (joined) selectConversation(conv.key);
      else joinRoom(room.id, room.content);
    });
    return el('li', {
      className: 'room-item' + (joined ? ' joined' : ''),
      attrs: { 'data-testid': 'room-item', 'data-room-id': room.id },
    }, [
      el('span', { className: 'room-name', text: room.content, attrs: { 'data-testid': 'room-name' } }),
      el('span', {
        className: 'badge', text: count,
        attrs: { 'data-testid': 'room-count', title: plural(count, 'user') + ' present',
                 'aria-label': plural(count, 'user') + ' present' },
      }),
      button,
    ]);
  }

  function createRoom(name) {
    return request('create', { verb: 'create', target: { displayName: name } }).then(function (resp) {
      if (!ok(resp)) {
        showNotice('Could not create the room: ' + describeError(resp));
        return false;
      }
      // Creating does not join (protocol); move focus to the new room's Join button.
      var created = resp.data && resp.data.target;
      refreshRooms().then(function () {
        var item = created && document.querySelector('#room-list [data-room-id="' + CSS.escape(created.id) + '"]');
        if (!item) return;
        item.classList.add('fresh');
        item.querySelector('button').focus();
      });
      return true;
    });
  }

  /**
   * Join a room. The conversation exists before the answer arrives, because a live
   * message can reach us before the join answer does; seq de-duplication merges both.
   */
  function joinRoom(id, name) {
    var key = 'room:' + id;
    var existed = state.convs.has(key);
    var conv = existed ? state.convs.get(key) : addConversation('room', id, name);
    if (!existed) selectConversation(key);
    return request('join', { verb: 'join', target: { id: id } }).then(function (resp) {
      if (!ok(resp)) {
        if (!existed) closeConversation(conv);
        showNotice('Could not join "' + name + '": ' + describeError(resp));
        return;
      }
      applyJoin(conv, resp.data);
      selectConversation(key);
      scheduleRoomRefresh();
    });
  }

  /** Take in a gn_join answer: name, members, history; first or repeated join alike. */
  function applyJoin(conv, data) {
    data = data || {};
    if (data.target && data.target.displayName) conv.name = data.target.displayName;
    var room = data.object || {};
    var users = attachment(room, 'user');
    conv.members = new Map();
    ((users && users.attachments) || []).forEach(function (u) {
      conv.members.set(u.id, u.content || u.id);
    });
    var history = attachment(room, 'history');
    ((history && history.attachments) || []).forEach(function (entry) {
      addEntry(conv, fromHistoryEntry(entry));
    });
    var rejoin = conv.baselined;
    conv.joined = true;
    conv.gone = false;
    if (rejoin) {
      // join gives only the newest entries: ask for everything after what we had.
      catchUp(conv);
    } else {
      setBaseline(conv);
    }
    renderConversationList();
    if (state.active === conv.key) renderActive();
  }

  function leaveRoom(conv) {
    return request('leave', { verb: 'leave', target: { id: conv.id } }).then(function (resp) {
      // A 400 here means the server no longer has us in the room: closing is right too.
      if (!ok(resp) && resp.status_code !== 400) {
        showNotice('Could not leave: ' + describeError(resp));
        return;
      }
      closeConversation(conv);
      scheduleRoomRefresh();
    });
  }

  /** The server refused the rejoin (after a restart an in-memory node forgets rooms). */
  function markRoomGone(conv, resp) {
    conv.gone = true;
    conv.joined = false;
    conv.members = new Map();
    addSystemLine(conv, 'This room is no longer available on the server (' + describeError(resp) +
      '). The node may have restarted. The messages above are what you had.', 'gone');
    renderConversationList();
    if (state.active === conv.key) renderActive();
    showNotice('Room "' + conv.name + '" is no longer available: ' + describeError(resp));
  }

  /** Rejoining failed for a reason that may pass (timeout, server error). */
  function markRejoinFailed(conv, resp) {
    conv.joined = false;
    addSystemLine(conv, 'Could not rejoin this room (' + describeError(resp) +
      '). Use Join in the room list to try again.', 'failed');
    renderConversationList();
    if (state.active === conv.key) renderActive();
  }

  // ---------------------------------------------------------------- conversations

  /**
   * A conversation is a joined room or a direct exchange with one user. Each has its
   * own message log on the server, numbered by `seq` from 1; `seen` maps seq -> message
   * id and `contig` is the highest seq up to which we hold every entry, which is what
   * `history since` asks from after a gap or a reconnect.
   */
  function addConversation(kind, id, name) {
    var key = kind + ':' + id;
    var pane = el('ol', {
      className: 'messages',
      attrs: { 'data-testid': 'message-list', 'data-conv': key, role: 'log',
               'aria-live': 'polite', 'aria-label': (kind === 'room' ? 'Messages in ' : 'Messages with ') + name },
    });
    pane.hidden = true;
    $('message-panes').appendChild(pane);
    var conv = {
      key: key, kind: kind, id: id, name: name || id,
      pane: pane,
      seen: new Map(),
      contig: 0,
      baselined: false,
      catchingUp: false,
      catchUpAgain: false,
      members: new Map(),
      joined: false,
      gone: false,
      unread: 0,
      epoch: null, // the log's epoch our seqs belong to
      readSent: 0, // the highest seq we told the server we read
      peerRead: 0, // the highest seq someone else read (read marks on our messages)
    };
    state.convs.set(key, conv);
    renderConversationList();
    return conv;
  }

  /** Open (or show) the direct conversation with user `id`, loading its recent history. */
  function openDirect(id, name, select) {
    var key = 'user:' + id;
    var conv = state.convs.get(key);
    if (!conv) {
      conv = addConversation('user', id, name || id);
      loadRecentDirect(conv);
    }
    if (select) selectConversation(key);
    return conv;
  }

  function loadRecentDirect(conv) {
    var payload = { verb: 'list', target: { objectType: 'user', id: conv.id } };
    return request('history', payload).then(function (resp) {
      if (!ok(resp)) {
        showNotice('Could not load the conversation with ' + conv.id + ': ' + describeError(resp));
      } else {
        historyAttachments(resp.data).forEach(function (e) { addEntry(conv, fromHistoryEntry(e)); });
      }
      setBaseline(conv);
    });
  }

  function closeConversation(conv) {
    conv.pane.remove();
    state.convs.delete(conv.key);
    if (state.active === conv.key) state.active = null;
    renderConversationList();
    renderActive();
    renderRooms();
  }

  function selectConversation(key) {
    state.active = key;
    var conv = state.convs.get(key);
    if (conv) conv.unread = 0;
    renderConversationList();
    renderActive();
    if (conv) scrollToBottom(conv);
    markRead(conv);
    $('composer-input').focus();
  }

  function renderConversationList() {
    var items = [];
    state.convs.forEach(function (conv) {
      var label = (conv.kind === 'room' ? '# ' : '@ ') + conv.name;
      var button = el('button', {
        className: 'conv-button', attrs: { type: 'button', 'aria-current': conv.key === state.active ? 'true' : 'false' },
      }, [
        el('span', { className: 'conv-name', text: label }),
        conv.gone ? el('span', { className: 'tag tag-gone', text: 'gone' }) : null,
        conv.unread ? el('span', {
          className: 'badge badge-unread', text: conv.unread,
          attrs: { 'aria-label': plural(conv.unread, 'unread message') },
        }) : null,
      ]);
      button.addEventListener('click', function () { selectConversation(conv.key); });
      items.push(el('li', { attrs: { 'data-testid': 'conv-item', 'data-conv': conv.key } }, [button]));
    });
    var list = $('conv-list');
    list.replaceChildren.apply(list, items);
  }

  /** Show the active conversation: its pane, title, buttons, composer and members. */
  function renderActive() {
    var conv = state.active ? state.convs.get(state.active) : null;
    state.convs.forEach(function (c) { c.pane.hidden = c !== conv; });
    $('conv-placeholder').hidden = !!conv;
    $('conv-title').textContent = !conv ? 'No conversation open'
      : conv.kind === 'room' ? '# ' + conv.name : 'Direct: ' + conv.name;
    $('leave-room').hidden = !(conv && conv.kind === 'room' && conv.joined);
    // A room we were in but are not any more (gone, or the rejoin failed) can be closed.
    var lostRoom = !!conv && conv.kind === 'room' && conv.baselined && !conv.joined;
    $('close-conv').hidden = !(conv && (conv.kind === 'user' || lostRoom));
    var canSend = !!conv && (conv.kind === 'user' || (conv.joined && !conv.gone));
    $('composer').hidden = !canSend;
    renderMembers(conv);
  }

  function renderMembers(conv) {
    var list = $('member-list');
    var isRoom = !!conv && conv.kind === 'room';
    var members = isRoom ? Array.from(conv.members.entries()) : [];
    members.sort(function (a, b) { return a[1].localeCompare(b[1]); });
    list.replaceChildren.apply(list, members.map(function (m) { return memberItem(m[0], m[1]); }));
    if (isRoom && conv.joined) refreshMemberStatus(conv);
    var inRoom = isRoom && conv.joined;
    $('member-count').textContent = inRoom ? String(members.length) : '';
    $('members-empty').hidden = inRoom;
    $('members-empty').textContent = isRoom ? 'You are not in this room.'
      : conv ? 'A direct conversation: just the two of you.' : 'Open a room to see who is in it.';
  }

  function memberItem(id, name) {
    var isMe = state.me && id === state.me.id;
    var children = [
      el('div', { className: 'member-who' }, [
        el('span', { className: 'status-dot', attrs: { 'data-status': 'online', 'data-testid': 'member-status' } }),
        el('span', { className: 'member-name', text: name }),
        el('span', { className: 'member-id', text: isMe ? 'you' : id }),
      ]),
    ];
    if (!isMe) {
      var dm = el('button', {
        className: 'btn btn-small btn-quiet', text: 'Message',
        attrs: { type: 'button', 'aria-label': 'Send a direct message to ' + name },
      });
      dm.addEventListener('click', function () { openDirect(id, name, true); });
      children.push(dm);
    }
    return el('li', { className: 'member', attrs: { 'data-testid': 'member', 'data-user-id': id } }, children);
  }

  // ---------------------------------------------------------------- messages

  /** A live `message` activity and a history entry, reduced to one shape. */
  function fromActivity(a) {
    var actor = a.actor || {};
    return {
      id: a.id, seq: Number(a.seq), epoch: a.epoch, published: a.published,
      senderId: actor.id, senderName: actor.summary || actor.id,
      content: (a.object && a.object.content) || '',
    };
  }

  function fromHistoryEntry(e) {
    var actor = e.actor || {};
    return {
      id: e.id, seq: Number(e.seq), epoch: e.epoch, published: e.published,
      senderId: actor.id, senderName: e.summary || actor.summary || actor.id,
      content: e.content || '',
    };
  }

  function historyAttachments(data) {
    var obj = data && data.object;
    return (obj && obj.attachments) || [];
  }

  function maxSeen(conv) {
    var max = 0;
    conv.seen.forEach(function (_id, seq) { if (seq > max) max = seq; });
    return max;
  }

  /** From now on a hole below the newest seq we hold counts as missed messages. */
  function setBaseline(conv) {
    conv.contig = Math.max(conv.contig, maxSeen(conv));
    conv.baselined = true;
  }

  /**
   * Show one entry unless we already have it. Returns true when it was new.
   * Duplicates are expected: a live message can repeat one from the join history, and
   * catch-up after a reconnect overlaps what the join returned.
   */
  function addEntry(conv, entry) {
    if (!Number.isFinite(entry.seq)) return false;
    if (entry.epoch && conv.epoch && entry.epoch !== conv.epoch) {
      resetLog(conv); // the log started over (another epoch): our seqs mean nothing now
    }
    if (entry.epoch) conv.epoch = entry.epoch;
    var known = conv.seen.get(entry.seq);
    if (known !== undefined) {
      if (known === entry.id) return false;
      // Same seq, different message: the log started over (an in-memory node restarted).
      resetLog(conv);
    }
    conv.seen.set(entry.seq, entry.id);
    while (conv.seen.has(conv.contig + 1)) conv.contig += 1;
    insertMessage(conv, messageItem(entry));
    return true;
  }

  /** Keep old messages on screen but stop ordering new ones against their seqs. */
  function resetLog(conv) {
    conv.pane.querySelectorAll('li[data-seq]').forEach(function (li) { li.removeAttribute('data-seq'); });
    conv.seen.clear();
    conv.contig = 0;
    addSystemLine(conv, 'The server started this conversation’s history over.');
  }

  function messageItem(entry) {
    var mine = state.me && entry.senderId === state.me.id;
    var time = el('time', {
      className: 'msg-time', text: formatTime(entry.published),
      attrs: { datetime: entry.published || '', title: entry.published || '' },
    });
    return el('li', {
      className: 'msg' + (mine ? ' mine' : ''),
      attrs: { 'data-testid': 'message', 'data-seq': entry.seq, 'data-msg-id': entry.id || '' },
    }, [
      el('div', { className: 'msg-meta' }, [
        el('span', { className: 'msg-sender', text: entry.senderName, attrs: { 'data-testid': 'message-sender' } }),
        time,
      ]),
      el('p', { className: 'msg-text', text: entry.content, attrs: { 'data-testid': 'message-text' } }),
      mine ? el('span', { className: 'msg-read', text: '✓✓', attrs: { 'data-testid': 'read-mark', title: 'read' } }) : null,
    ]);
  }

  /** Insert in seq order: catch-up answers can arrive after newer live messages. */
  function insertMessage(conv, li) {
    var seq = Number(li.getAttribute('data-seq'));
    var stick = isNearBottom(conv.pane);
    var later = null;
    var items = conv.pane.querySelectorAll('li[data-seq]');
    for (var i = items.length - 1; i >= 0; i--) {
      if (Number(items[i].getAttribute('data-seq')) > seq) later = items[i];
      else break;
    }
    conv.pane.insertBefore(li, later);
    if (stick) scrollToBottom(conv);
  }

  /** A line from the page itself (joins, leaves, problems), not a stored message. */
  function addSystemLine(conv, text, kind) {
    var stick = isNearBottom(conv.pane);
    conv.pane.appendChild(el('li', {
      className: 'sys' + (kind ? ' sys-' + kind : ''), text: text,
      attrs: { 'data-testid': kind === 'gone' ? 'room-gone' : 'system-line' },
    }));
    if (stick) scrollToBottom(conv);
  }

  function isNearBottom(pane) {
    var scroller = $('message-panes');
    return pane.hidden || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }

  function scrollToBottom(conv) {
    if (conv.pane.hidden) return;
    var scroller = $('message-panes');
    scroller.scrollTop = scroller.scrollHeight;
  }

  /**
   * Fetch what we missed after `contig` (a seq gap, or a reconnect), page by page.
   * A gap the server can no longer fill (trimmed history) is accepted at the end,
   * so it is not asked about again.
   */
  function catchUp(conv) {
    if (conv.catchingUp) { conv.catchUpAgain = true; return Promise.resolve(); }
    conv.catchingUp = true;
    var target = conv.kind === 'room' ? { id: conv.id } : { objectType: 'user', id: conv.id };
    var page = 0;

    function step() {
      var since = conv.contig;
      var payload = { verb: 'list', target: target, since: since, limit: HISTORY_PAGE };
      return request('history', payload).then(function (resp) {
        if (!ok(resp)) {
          if (resp.status_code !== 0 && !conv.gone) showNotice('Could not fetch missed messages: ' + describeError(resp));
          return;
        }
        var entries = historyAttachments(resp.data);
        entries.forEach(function (e) { addEntry(conv, fromHistoryEntry(e)); });
        page += 1;
        var more = entries.length >= HISTORY_PAGE && conv.contig > since && page < MAX_CATCH_UP_PAGES;
        return more ? step() : undefined;
      });
    }

    return step().then(function () {
      conv.catchingUp = false;
      if (conv.catchUpAgain) { conv.catchUpAgain = false; return catchUp(conv); }
      conv.contig = Math.max(conv.contig, maxSeen(conv));
    });
  }

  // ---------------------------------------------------------------- pushes

  function onMessage(activity) {
    if (!activity || !activity.target) return;
    var conv;
    var actor = activity.actor || {};
    if (activity.target.objectType === 'user') {
      // Our own messages to X come back too (from this or another of our sessions).
      var fromMe = state.me && actor.id === state.me.id;
      var otherId = fromMe ? activity.target.id : actor.id;
      conv = openDirect(otherId, fromMe ? otherId : actor.summary, false);
    } else {
      conv = state.convs.get('room:' + activity.target.id);
      if (!conv) return; // a room we have left meanwhile
    }
    if (addEntry(conv, fromActivity(activity))) {
      if (conv.key !== state.active) {
        conv.unread += 1;
        renderConversationList();
      } else {
        markRead(conv);
      }
      renderReadMarks(conv);
    }
    if (conv.baselined && maxSeen(conv) > conv.contig) catchUp(conv);
  }

  function onUserJoined(activity) { onPresence(activity, true); }
  function onUserLeft(activity) { onPresence(activity, false); }

  function onPresence(activity, joined) {
    var actor = (activity && activity.actor) || {};
    var room = activity && activity.target && state.convs.get('room:' + activity.target.id);
    scheduleRoomRefresh();
    if (!room || !actor.id) return;
    var name = actor.summary || room.members.get(actor.id) || actor.id;
    if (joined) room.members.set(actor.id, name);
    else room.members.delete(actor.id);
    addSystemLine(room, name + (joined ? ' joined' : ' left'));
    if (state.active === room.key) renderMembers(room);
  }

  // ---------------------------------------------------------------- forms

  function onLoginSubmit(event) {
    event.preventDefault();
    var login = {
      id: $('login-id').value.trim(),
      name: $('login-name').value.trim(),
      city: $('login-city').value.trim(),
      age: $('login-age').value.trim(),
      token: $('login-token').value.trim(),
    };
    if (!login.id && !login.token) {
      showNotice('Enter a user id (or a token on a JWT node).');
      $('login-id').focus();
      return;
    }
    hideNotice();
    $('login-submit').disabled = true;
    state.login = login;
    setStatus('connecting', 'connecting…');
    connect(login);
  }

  function onComposerSubmit(event) {
    event.preventDefault();
    var conv = state.active && state.convs.get(state.active);
    var input = $('composer-input');
    var text = input.value;
    if (!conv || !text.trim()) return;
    var target = conv.kind === 'room' ? { id: conv.id } : { objectType: 'user', id: conv.id };
    var object = conv.kind === 'room' ? { content: text, objectType: 'group' } : { content: text };
    // Clear at once, so the next message can be typed while this one is on its way.
    input.value = '';
    request('message', { verb: 'send', target: target, object: object }).then(function (resp) {
      if (!ok(resp)) {
        // Give the text back (unless something new was typed meanwhile), so the person
        // can shorten it or try again.
        if (!input.value) input.value = text;
        showNotice('Message not sent: ' + describeError(resp));
        return;
      }
      addEntry(conv, fromActivity(resp.data || {}));
      scrollToBottom(conv);
    });
  }

  function wire() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('composer').addEventListener('submit', onComposerSubmit);
    $('create-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var input = $('create-name');
      var name = input.value.trim();
      if (!name) return;
      createRoom(name).then(function (created) { if (created) input.value = ''; });
    });
    $('dm-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var input = $('dm-user');
      var id = input.value.trim();
      if (!id) return;
      if (state.me && id === state.me.id) { showNotice('That is you.'); return; }
      input.value = '';
      openDirect(id, id, true);
    });
    $('rooms-refresh').addEventListener('click', refreshRooms);
    $('status-select').addEventListener('change', function (event) { setOwnStatus(event.target.value); });
    document.addEventListener('visibilitychange', function () {
      markRead(state.active && state.convs.get(state.active));
    });
    $('leave-room').addEventListener('click', function () {
      var conv = state.convs.get(state.active);
      if (conv) leaveRoom(conv);
    });
    $('close-conv').addEventListener('click', function () {
      var conv = state.convs.get(state.active);
      if (conv) closeConversation(conv);
    });
    $('logout').addEventListener('click', function () {
      teardown();
      hideNotice();
      showLoginView();
    });
    $('notice-close').addEventListener('click', hideNotice);
  }

  wire();
  // For debugging from the console and for the browser test (it drops the connection
  // through this handle to exercise reconnects). Holds no secrets beyond the session.
  window.dinoDemo = { state: state };
})();
