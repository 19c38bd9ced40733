// Actions (accept, decline, ...): queued offline, each sent once, confirmed by the server's ok.
import { openIncidentId, renderAlert } from "./alert.js";
import { $, T } from "./config.js";
import { renderList } from "./duty.js";
import { locate, position, updateLocationSharing } from "./position.js";
import { nextId, resumed, send, ws } from "./socket.js";
import { stopRing } from "./sound.js";
import { persist, state } from "./store.js";
import { toast } from "./util.js";

// --- Actions: each sent once, confirmed by the server's ok ---------------------------

export function act(action, incidentId) {
  if (state.outbox.some((a) => a.action === action && a.incident_id === incidentId)) return;
  stopRing();
  const item = { action, incident_id: incidentId, id: nextId(), sent: false, at: Date.now() };
  if (action === "accept" && position) Object.assign(item, { lat: position.lat, lon: position.lon });
  state.outbox.push(item);
  persist();
  if (resumed && navigator.onLine) transmit(item);
  else toast(T.queued);
  renderAlert();
}

export function transmit(item) {
  const msg = { type: item.action, id: item.id, incident_id: item.incident_id };
  if (item.lat != null) Object.assign(msg, { lat: item.lat, lon: item.lon });
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify(msg));
    item.sent = true;
    persist();
  }
}

export function flushOutbox() {
  for (const item of [...state.outbox]) {
    const inc = state.incidents[item.incident_id];
    // Sent before the connection dropped and already applied (the replay shows
    // it): confirmed, do not send it again.
    const allowed = (inc && inc.dispatch.next_actions) || [];
    if (item.sent && inc && inc.dispatch.status !== "stood_down" && !allowed.includes(item.action) && item.action !== "decline") {
      state.outbox = state.outbox.filter((a) => a !== item);
      continue;
    }
    item.id = nextId();
    transmit(item);
  }
  persist();
  if (openIncidentId) renderAlert();
}

export function onReply(frame, ok) {
  const item = state.outbox.find((a) => a.id === frame.id);
  if (!item) {
    if (!ok && frame.id != null) toast(frame.message);
    return;
  }
  state.outbox = state.outbox.filter((a) => a !== item);
  const inc = state.incidents[item.incident_id];
  if (ok) {
    if (inc && frame.dispatch_status) Object.assign(inc.dispatch, { status: frame.dispatch_status, next_actions: frame.next_actions || [] });
    if (inc) inc.message = { ok: true, text: `${T["status_" + frame.dispatch_status] || ""} · ${T.confirmed}` };
    if (item.action === "accept" && inc) locate().then(() => openIncidentId && renderAlert());
  } else if (inc) {
    inc.message = { ok: false, text: frame.message };
  } else {
    toast(frame.message);
  }
  persist();
  renderList();
  if (openIncidentId) renderAlert();
  updateLocationSharing();
}
