// The board's picture of its area: incidents by id, each with its units, positions
// and timeline, built from the supervisor socket's frames. Frames are applied once
// each by per-incident seq; a gap in the seqs asks for a replay (see socket.js).

export const CFG = JSON.parse(document.getElementById("board-config").textContent);
export const incidents = new Map(); // id -> incident
export const units = new Map(); // id -> [id, code, name, lat, lon] (the area's units)

const TIMELINE_MAX = 80;

function blank(id) {
  return { id, summary: null, status: "open", seq: 0, ahead: new Set(), units: new Map(), positions: new Map(), reach: new Map(), timeline: [], waves: [], targetsAt: {}, gap: false, closedAt: null };
}

export function incident(id) {
  let inc = incidents.get(id);
  if (!inc) incidents.set(id, (inc = blank(id)));
  return inc;
}

// A whole incident as the server sees it now (after a watch or a resume).
export function applyState(frame) {
  const s = frame.incident;
  const inc = incident(s.id);
  inc.summary = s;
  inc.status = s.status;
  inc.targetsAt = frame.targets_at || {};
  inc.waves = frame.waves || [];
  inc.units = new Map(frame.units.map((u) => [u.unit_id, u]));
  for (const p of frame.positions || []) inc.positions.set(p.member_id, p);
  inc.reach = new Map();
  for (const [memberId, , channel, st] of frame.reach || []) memberReach(inc, memberId)[channel] = st;
  inc.timeline = (frame.timeline || []).slice(-TIMELINE_MAX);
  if (frame.seq > inc.seq) inc.seq = frame.seq;
  for (const seq of [...inc.ahead]) if (seq <= inc.seq) inc.ahead.delete(seq);
  inc.gap = inc.ahead.size > 0;
  if (inc.status !== "open" && !inc.closedAt) inc.closedAt = Date.now();
  return inc;
}

// One timeline event (``incident.update`` / ``incident.closed``). Returns the
// incident if the frame was new, null for a copy already applied.
export function applyUpdate(frame) {
  const inc = incident(frame.incident_id);
  if (frame.seq != null) {
    if (frame.seq <= inc.seq || inc.ahead.has(frame.seq)) return null;
    inc.ahead.add(frame.seq);
    while (inc.ahead.has(inc.seq + 1)) inc.ahead.delete(++inc.seq);
    inc.gap = inc.ahead.size > 0;
  }
  if (inc.summary) {
    Object.assign(inc.summary, {
      status: frame.status,
      flagged: frame.flagged,
      gathering: frame.gathering,
      responded_at: frame.responded_at,
      controlled_at: frame.controlled_at,
      handled_at: frame.handled_at,
    });
  }
  inc.status = frame.type === "incident.closed" ? "closed" : frame.status;
  if (inc.status !== "open" && !inc.closedAt) inc.closedAt = Date.now();
  const uid = frame.unit_id;
  if (uid != null) {
    let u = inc.units.get(uid);
    if (!u) {
      const row = units.get(uid);
      u = { unit_id: uid, code: row ? row[1] : `#${uid}`, name: row ? row[2] : "", lat: row ? row[3] : null, lon: row ? row[4] : null, status: "alerted", channels: [], delivered: 0, members: 0, leader: null, wave: null, distance_m: null };
      inc.units.set(uid, u);
      inc.unknownUnits = true; // its leader and receipts come with the next state
    }
    const d = frame.data || {};
    if (frame.event === "alerted") {
      Object.assign(u, { status: "alerted", wave: d.wave, rank: d.rank, distance_m: d.distance_m, eta_s: d.eta_s, alerted_at: frame.at });
    } else if (frame.event === "delivered" || frame.event === "seen") {
      reached(inc, u, frame.member_id, "app", "reached");
    } else if (frame.event === "reached") {
      reached(inc, u, frame.member_id, d.channel, "reached");
    } else if (frame.event === "notify_failed") {
      reached(inc, u, frame.member_id, d.channel, "failed");
    } else if (frame.event === "unreachable") {
      u.unreachable = true;
    }
    if (frame.dispatch_status) u.status = frame.dispatch_status;
    if (frame.event === "accepted") u.accepted_at = frame.at;
    u.rev = (u.rev || 0) + 1; // its row on the board is filled again
  }
  inc.timeline.push(frame);
  if (inc.timeline.length > TIMELINE_MAX) inc.timeline.shift();
  return inc;
}

// A member's channels: {app: "reached", sms: "failed", ...}.
function memberReach(inc, memberId) {
  let m = inc.reach.get(memberId);
  if (!m) inc.reach.set(memberId, (m = {}));
  return m;
}

// A receipt for one member on one channel: the member's state, and the unit's
// row (members the app reached; channels that reached anyone; channels that failed).
function reached(inc, u, memberId, channel, st) {
  if (!channel) return;
  const m = memberReach(inc, memberId);
  if (channel === "app" && m.app !== "reached" && memberId != null) u.delivered = (u.delivered || 0) + 1;
  if (m[channel] === "reached") return; // first word wins, as on the server
  m[channel] = st;
  u.channels = u.channels || [];
  u.failed_channels = u.failed_channels || [];
  if (st === "reached") {
    if (!u.channels.includes(channel)) u.channels = [...u.channels, channel];
  } else if (!u.channels.includes(channel) && !u.failed_channels.includes(channel)) {
    u.failed_channels = [...u.failed_channels, channel];
  }
}

export function applyLocation(frame) {
  const inc = incidents.get(frame.incident_id);
  if (!inc) return null;
  // The member's record is updated in place, not replaced by the frame: a frame
  // kept ~5 s (until the next) outlives the young generation, so storing hundreds
  // a second filled the old one and made major collections (bench/board.py).
  const p = inc.positions.get(frame.member_id);
  if (!p) inc.positions.set(frame.member_id, { member_id: frame.member_id, unit_id: frame.unit_id, lat: frame.lat, lon: frame.lon, accuracy_m: frame.accuracy_m, at: frame.at });
  else {
    p.lat = frame.lat;
    p.lon = frame.lon;
    p.accuracy_m = frame.accuracy_m;
    p.at = frame.at;
  }
  // Only these markers move at the next draw (never every responder of the incident).
  (inc.moved || (inc.moved = new Set())).add(frame.member_id);
  return inc;
}

// What the board sends on (re)connect: the last seq it holds of each incident.
export function seqs() {
  const out = {};
  for (const [id, inc] of incidents) if (inc.summary) out[id] = inc.seq;
  return out;
}

export function openIncidents() {
  return [...incidents.values()].filter((inc) => inc.summary && (inc.status === "open" || Date.now() - (inc.closedAt || 0) < 60000));
}
