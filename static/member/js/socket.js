// The websocket: connect, reconnect with backoff, resume, frames in.
import { flushOutbox, onReply } from "./actions.js";
import { $, CFG, T } from "./config.js";
import { renderDuty } from "./duty.js";
import { onTestFrame } from "./alerttest.js";
import { afterReplay, onEvent } from "./events.js";
import { adoptMember, load, persist, state } from "./store.js";
import { toast } from "./util.js";

// --- Websocket -----------------------------------------------------------------------
export let ws = null;
export let resumed = false;
export let attempt = 0;
export let reconnectTimer = null;
export let msgSeq = Date.now() % 1e9; // unique per page load; replies echo it
export const nextId = () => ++msgSeq;
export let replayBatch = [];
export let lastServerError = "";
export let signingOut = false;
// The server pings every CFG.heartbeatS; a socket silent for two of them is taken
// for dead (a frozen server or a dead route never closes it), checked 4 times a beat.
const heartbeatMs = () => CFG.heartbeatS * 1000;
let lastFrameAt = 0;
let watchdog = null;

function watch(socket) {
  lastFrameAt = Date.now();
  clearInterval(watchdog);
  watchdog = setInterval(() => {
    if (ws !== socket) return clearInterval(watchdog);
    if (Date.now() - lastFrameAt > 2 * heartbeatMs()) silent(socket);
  }, heartbeatMs() / 4);
}

function silent(socket) {
  // Let go of it at once: a close handshake with a frozen server never completes.
  clearInterval(watchdog);
  ws = null;
  resumed = false;
  try {
    socket.close();
  } catch (e) {
    // already closing
  }
  setConn("offline");
  scheduleReconnect();
}

export function setConn(kind) {
  const el = $("conn");
  el.dataset.state = kind;
  el.className = `conn conn-${kind}`;
  el.querySelector(".label").textContent = T[kind];
  $("offline-note").hidden = kind !== "offline" || !$("blocked").hidden;
  $("alert-conn").hidden = kind !== "offline";
}

export function connect() {
  clearTimeout(reconnectTimer);
  if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) return;
  setConn(attempt ? "offline" : "connecting");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}${CFG.wsPath}`);
  } catch (e) {
    return scheduleReconnect();
  }
  ws = socket;
  resumed = false;
  watch(socket); // a handshake that hangs counts as silence too
  socket.onopen = () => setConn("connecting");
  socket.onmessage = (e) => {
    if (ws === socket) lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(e.data);
    } catch (err) {
      return;
    }
    handleFrame(frame);
  };
  socket.onclose = (e) => {
    if (ws !== socket) return;
    clearInterval(watchdog);
    ws = null;
    resumed = false;
    if (e.code === 4403) {
      // Member or unit deactivated: say so, and look again only now and then.
      $("blocked").textContent = lastServerError || T.error;
      $("blocked").hidden = false;
      setConn("offline");
      clearTimeout(reconnectTimer);
      reconnectTimer = setTimeout(connect, 60000);
      return;
    }
    if (e.code === 4401) {
      // Signed out (here or elsewhere) or the session expired: back to sign-in.
      setConn("offline");
      if (navigator.onLine && !signingOut) window.location.href = CFG.signInUrl;
      return;
    }
    setConn("offline");
    scheduleReconnect();
  };
}

export function scheduleReconnect() {
  // Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped at 30 s, so a
  // restarted server is not hit by every phone in the city at the same moment.
  const cap = Math.min(30000, 1000 * 2 ** Math.min(attempt, 5));
  const delay = 300 + Math.random() * cap;
  attempt++;
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, delay);
}

export function send(message) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify({ id: nextId(), ...message }));
  return true;
}

// A receipt ("ack" as an alert arrives, "seen" as it opens) goes without an id:
// the server answers nothing, and keeps re-sending an alert until one is stored.
export function receipt(type, incidentId) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify({ type, incident_id: incidentId }));
  return true;
}

export function handleFrame(frame) {
  switch (frame.type) {
    case "hello":
      attempt = 0;
      $("blocked").hidden = true;
      adoptMember(frame.member.id);
      if (state.me) state.me.member.on_duty = frame.on_duty;
      replayBatch = [];
      ws.send(JSON.stringify({ type: "resume", id: nextId(), last_event_id: state.lastEventId }));
      renderDuty();
      return;
    case "resumed":
      resumed = true;
      setConn("online");
      afterReplay();
      flushOutbox();
      return;
    case "ping":
      send({ type: "pong" });
      return;
    case "duty":
      if (state.me) {
        state.me.member.on_duty = frame.on_duty;
        persist();
      }
      renderDuty();
      return;
    case "ok":
      return onReply(frame, true);
    case "error":
      if (frame.id == null) {
        lastServerError = frame.message;
        toast(frame.message);
        return;
      }
      return onReply(frame, false);
    case "incident.alert":
    case "incident.update":
    case "incident.closed":
      return onEvent(frame);
    case "alert.test":
      return onTestFrame(frame);
    default:
      return;
  }
}

// Signing out: a closed socket must not send the page to the sign-in screen.
export function signOutBegin() {
  signingOut = true;
}

// The phone lost its network: a socket can look open for a while yet, and a tap
// sent into it would show "sending" until the heartbeat gives up. Drop it now, so
// taps queue (and say so) until the network is back.
export function wentOffline() {
  if (ws) silent(ws);
  else setConn("offline");
}

// Back online: try at once, forgetting the backoff.
export function reconnectNow() {
  attempt = 0;
  connect();
}
