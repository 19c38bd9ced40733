// Incident frames: applied once each, and the alert they raise.
import { openAlert, openIncidentId, renderAlert } from "./alert.js";
import { renderList } from "./duty.js";
import { updateLocationSharing } from "./position.js";
import { receipt, replayBatch } from "./socket.js";
import { ring } from "./sound.js";
import { memberId, persist, state } from "./store.js";

export function seen(id) {
  if (id == null) return false;
  if (state.seenIds.includes(id)) return true;
  state.seenIds.push(id);
  if (state.seenIds.length > 600) state.seenIds = state.seenIds.slice(-500);
  if (id > state.lastEventId) state.lastEventId = id;
  return false;
}

export function onEvent(frame) {
  if (seen(frame.id)) {
    // A copy of an alert we have: the server re-sends alerts it holds unacked
    // (our ack may have been lost), so ack again or it keeps coming.
    if (frame.type === "incident.alert") receipt("ack", frame.incident.id);
    return;
  }
  if (frame.type === "incident.alert") {
    const s = frame.incident;
    const known = state.incidents[s.id];
    state.incidents[s.id] = {
      id: s.id,
      summary: s,
      status: s.status,
      // A replay keeps what this phone already knows of its dispatch (newer than the alert).
      dispatch: known ? { ...frame.dispatch, status: known.dispatch.status, next_actions: known.dispatch.next_actions || frame.dispatch.next_actions } : frame.dispatch,
      responders: known ? known.responders : {},
      alertedAt: known ? known.alertedAt : s.discovered_at || new Date().toISOString(),
      replayed: !!frame.replay,
      notified: known ? known.notified : false,
      timestamps: { discovered_at: s.discovered_at, responded_at: s.responded_at, controlled_at: s.controlled_at, handled_at: s.handled_at },
    };
    receipt("ack", s.id);
    if (frame.replay) replayBatch.push(s.id);
    else notify(s.id);
  } else {
    const inc = state.incidents[frame.incident_id];
    if (!inc) return;
    inc.status = frame.status;
    // The gathering point (区域集结) rides on every frame: the newest one wins.
    if (frame.gathering !== undefined) inc.summary.gathering = frame.gathering;
    inc.timestamps = { discovered_at: frame.discovered_at, responded_at: frame.responded_at, controlled_at: frame.controlled_at, handled_at: frame.handled_at };
    const ownUnit = frame.unit_id === inc.dispatch.unit_id;
    if (["accepted", "on_site", "handled"].includes(frame.event)) {
      const who = frame.member_id || `u${frame.unit_id}`;
      inc.responders[who] = { name: (frame.data && frame.data.member_name) || "", unit_id: frame.unit_id, event: frame.event, me: frame.member_id === memberId };
    }
    // The server says where this unit's dispatch went and which actions it allows now.
    if (ownUnit && frame.dispatch_status) Object.assign(inc.dispatch, { status: frame.dispatch_status, next_actions: frame.next_actions || [] });
    if (frame.type === "incident.closed") inc.status = "closed";
  }
  persist();
  renderList();
  if (openIncidentId) renderAlert();
  updateLocationSharing();
}

export function actionable(inc) {
  return inc.status === "open" && ["alerted", "accepted", "on_site"].includes(inc.dispatch.status);
}

export function afterReplay() {
  // Alerts missed while offline: ring for the newest one still waiting for this unit.
  const waiting = replayBatch
    .map((id) => state.incidents[id])
    .filter((inc) => inc && !inc.notified && inc.status === "open" && inc.dispatch.status === "alerted");
  replayBatch.length = 0;
  if (waiting.length) notify(waiting[waiting.length - 1].id);
  persist();
  renderList();
}

export function notify(incidentId) {
  const inc = state.incidents[incidentId];
  if (!inc || !actionable(inc)) return;
  // Our own one-button report: we are on site; its confirmation stays in front
  // (the server sends colleagues the alert, and this phone a copy for the list).
  if (inc.summary.reported_by != null && inc.summary.reported_by === memberId) return;
  inc.notified = true;
  persist();
  openAlert(incidentId);
  if (inc.dispatch.status === "alerted") ring();
}
