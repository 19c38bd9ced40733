// The supervisor socket: connect, resume with the seqs the board holds (the server
// replays what was missed, then each incident's whole state), reconnect with
// backoff, and take a server silent for two heartbeats for dead.
import { CFG, seqs } from "./state.js";

let ws = null;
let lastHeard = 0;
let backoff = 500;
let nextId = 1;
const handlers = {};
let onStatus = () => {};

export function on(type, fn) {
  handlers[type] = fn;
}
export function onConnection(fn) {
  onStatus = fn;
}

export function send(frame) {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ id: nextId++, ...frame }));
    return true;
  }
  return false;
}

export function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${CFG.wsPath}`;
  onStatus("connecting");
  ws = new WebSocket(url);
  ws.addEventListener("open", () => {
    backoff = 500;
    lastHeard = Date.now();
  });
  ws.addEventListener("message", (msg) => {
    lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(msg.data);
    } catch (e) {
      return;
    }
    if (frame.type === "ping") {
      send({ type: "pong" });
      return;
    }
    if (frame.type === "hello") {
      onStatus("online");
      send({ type: "resume", seqs: seqs() });
    }
    const fn = handlers[frame.type];
    if (fn) fn(frame);
  });
  ws.addEventListener("close", (ev) => {
    ws = null;
    if (ev.code === 4403 || ev.code === 4401) {
      onStatus("refused");
      return;
    }
    onStatus("offline");
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 8000);
  });
}

// A socket can die silently (a server killed, a network gone): no heartbeat for
// two intervals means reconnect now rather than at the TCP timeout.
setInterval(() => {
  if (ws && ws.readyState === WebSocket.OPEN && Date.now() - lastHeard > 2 * CFG.heartbeatS * 1000 + 2000) {
    ws.close();
  }
}, 1000);

export function resync(incidentId, afterSeq) {
  return send({ type: "watch", incident_id: incidentId, after_seq: afterSeq });
}
