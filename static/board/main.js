// The command board: the area's map, its open incidents live from the supervisor
// socket, and the officer's commands.
import { api, candidateRows, placeLookup, placeOptions, raise, raiseBody, raisePreview } from "./commands.js";
import { drawArea, drawIncident, drawPositions, focus, mapInit, pickMarker } from "./map.js";
import { banner, cardOf, escalationText, notice, renderAll, renderClock, renderFollowUp, renderIncident, select, selectedId, statusLabel } from "./render.js";
import { connect, on, onConnection, resync } from "./socket.js";
import { applyLocation, applyState, applyUpdate, CFG, incident, incidents, openIncidents } from "./state.js";

const $ = (id) => document.getElementById(id);
let area = { outlines: [], streets: [], units: [] };
let gatherFor = null; // incident id whose gathering point the next map click sets

// --- drawing, batched to one pass per animation frame ---------------------------------
// A position moves one marker; an event redraws its incident's card and markers;
// only a new, closed or removed incident redraws the whole list.
const dirty = new Set();
const movedPeople = new Set();
let allDirty = false;
let frameAsked = false;
function schedule() {
  if (!frameAsked) {
    frameAsked = true;
    requestAnimationFrame(flush);
  }
}
function redraw(inc) {
  if (inc) dirty.add(inc.id);
  else allDirty = true;
  schedule();
}
function flush() {
  frameAsked = false;
  const now = Date.now();
  if (!allDirty) {
    for (const id of dirty) {
      const inc = incidents.get(id);
      const card = cardOf(id);
      // An incident whose state has not come yet has nothing to draw: its state
      // frame redraws it (a redraw of all fifty cards here cost a 40 ms frame).
      if (inc && !inc.summary) continue;
      if (!inc || !card || inc.status !== "open") allDirty = true;
    }
  }
  if (allDirty) {
    renderAll(now);
    for (const inc of incidents.values()) drawIncident(inc, inc.id === selectedId);
  } else {
    for (const id of dirty) {
      const inc = incidents.get(id);
      if (!inc.summary) continue;
      renderIncident(inc, now);
      drawIncident(inc, inc.id === selectedId);
    }
  }
  if (allDirty || dirty.size) refreshRaiseStatus();
  dirty.clear();
  allDirty = false;
}

// Positions: hundreds of responders each send one every few seconds, so some
// arrive in nearly every animation frame, and each draw repaints the whole map
// canvas. They are drawn at most every POSITIONS_EVERY_MS instead (a marker is
// at most that late), the markers that moved only.
const POSITIONS_EVERY_MS = 500;
let positionsTimer = null;
function schedulePositions() {
  if (positionsTimer == null) positionsTimer = setTimeout(() => requestAnimationFrame(drawMoved), POSITIONS_EVERY_MS);
}
function drawMoved() {
  positionsTimer = null;
  for (const id of movedPeople) {
    const inc = incidents.get(id);
    if (inc && inc.moved) {
      drawPositions(inc, inc.moved);
      inc.moved.clear(); // kept for the next ones: no new set per draw
    }
  }
  movedPeople.clear();
}

// --- socket frames ---------------------------------------------------------------------
const resyncTimers = new Map();
function resyncSoon(inc, delay) {
  if (resyncTimers.has(inc.id)) return;
  resyncTimers.set(
    inc.id,
    setTimeout(() => {
      resyncTimers.delete(inc.id);
      resync(inc.id, inc.seq);
    }, delay),
  );
}

on("incident.state", (frame) => {
  const inc = applyState(frame);
  inc.unknownUnits = false;
  redraw(inc);
});

function onUpdate(frame) {
  const inc = applyUpdate(frame);
  if (!inc) return;
  if (!inc.summary) resyncSoon(inc, 0);
  // A wave's alerts reach the board as one frame: the state brings every unit.
  else if (frame.event === "alerted" || inc.unknownUnits) resyncSoon(inc, 300);
  else if (inc.gap) resyncSoon(inc, 800);
  if (frame.event === "escalated" && !frame.replay) {
    banner(escalationText(frame));
    beep();
  }
  redraw(inc);
}
on("incident.update", onUpdate);
on("incident.closed", onUpdate);

on("incident.opened", (frame) => {
  const inc = incident(frame.incident.id);
  resync(inc.id, inc.seq);
});
on("incident.no_units", (frame) => {
  banner(`#${frame.incident_id}: ${gettext("范围内无可用单元")}`);
  beep();
});
on("responder.location", (frame) => {
  const inc = applyLocation(frame);
  if (inc) {
    movedPeople.add(inc.id);
    schedulePositions();
  }
});
on("resumed", () => redraw());
on("error", (frame) => notice(frame.message || gettext("出错了"), true));

onConnection((state) => {
  const el = $("conn");
  el.dataset.state = state;
  el.textContent = { connecting: gettext("连接中"), online: gettext("实时"), offline: gettext("已断开，重连中"), refused: gettext("无权订阅") }[state] || state;
  document.body.dataset.socket = state;
});

// --- sound --------------------------------------------------------------------------------
let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.15;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.4);
  } catch (e) {
    /* no audio device: the banner still shows */
  }
}

// --- commands -----------------------------------------------------------------------------
async function command(path, body, done) {
  const r = await api(path, body);
  if (!r.ok) notice(r.body.message || `${gettext("出错了")} (${r.status})`, true);
  else if (done) notice(done, false);
  return r;
}

function checked(el, selector) {
  return [...el.querySelectorAll(`${selector} input[type=checkbox]:checked`)].map((b) => Number(b.value));
}

$("incidents").addEventListener("click", async (ev) => {
  const card = ev.target.closest("article.incident");
  if (!card) return;
  const id = Number(card.dataset.id);
  if (ev.target.matches(".send-more")) {
    const ids = checked(card, "table.more");
    const r = await command(`incidents/${id}/call/`, { unit_ids: ids }, gettext("已推送所选单元"));
    if (r.ok) {
      card.querySelector("table.more").hidden = true;
      card.querySelector(".send-more").hidden = true;
    }
    return;
  }
  const button = ev.target.closest("button[data-command]");
  if (!button) {
    if (!ev.target.closest("input, select, details")) {
      select(id);
      focus(incidents.get(id));
      redraw();
    }
    return;
  }
  const what = button.dataset.command;
  if (what === "call") {
    const r = await command(`incidents/${id}/candidates/`);
    // (The card's body may have left with the view meanwhile: nothing to show then.)
    const table = card.querySelector("table.more");
    if (r.ok && table) {
      candidateRows(table.querySelector("tbody"), r.body.candidates, { checkboxes: true });
      table.hidden = false;
      card.querySelector(".send-more").hidden = false;
    }
  } else if (what === "next-ring") {
    await command(`incidents/${id}/next-ring/`, {}, gettext("已扩大一圈推送"));
  } else if (what === "gather") {
    gatherFor = id;
    $("map-hint").textContent = `${gettext("点击地图设定集结点")} #${id}`;
    document.body.dataset.mode = "gather";
  } else if (what === "stand-down") {
    await command(`incidents/${id}/stand-down/`, { unit_ids: checked(card, "table.units") }, gettext("已解除所选单元"));
  } else if (what === "close") {
    // Two clicks: a close cannot be undone.
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = gettext("确认结案？");
      setTimeout(() => {
        button.dataset.armed = "";
        button.textContent = gettext("结案");
      }, 4000);
      return;
    }
    button.dataset.armed = "";
    button.textContent = gettext("结案");
    await command(`incidents/${id}/close/`, { outcome: card.querySelector("select.outcome").value }, gettext("已结案"));
  }
});

async function onMapClick(lat, lon) {
  if (gatherFor != null) {
    const id = gatherFor;
    gatherFor = null;
    document.body.dataset.mode = "";
    $("map-hint").textContent = gettext("点击地图：发起警情或设定集结点");
    await command(`incidents/${id}/gather/`, { lat, lon, note: "" }, gettext("集结点已下达"));
    return;
  }
  if (!CFG.mayCommand) return;
  raise.lat = lat;
  raise.lon = lon;
  $("raise").open = true;
  pickMarker(lat, lon);
  await raisePreview();
}

// The candidates stay in view after sending, each with the state it is in now.
function refreshRaiseStatus() {
  if (!CFG.mayCommand || raise.incidentId == null) return;
  const inc = incidents.get(raise.incidentId);
  if (!inc) return;
  for (const tr of $("raise-candidates").querySelectorAll("tbody tr")) {
    const u = inc.units.get(Number(tr.dataset.unit));
    const td = tr.querySelector("td.st");
    tr.dataset.status = u ? u.status : "";
    if (td) td.textContent = u ? statusLabel(u.status) : "";
  }
}

if (CFG.mayCommand) {
  $("raise-kind").addEventListener("change", raisePreview);
  $("raise-severity").addEventListener("change", raisePreview);
  $("raise-place").addEventListener("input", (ev) => {
    placeOptions(area, ev.target.value);
    const found = placeLookup(area, ev.target.value);
    if (found) {
      raise.lat = found.lat;
      raise.lon = found.lon;
      if (!$("raise-address").value) $("raise-address").value = found.address;
      pickMarker(found.lat, found.lon);
      raisePreview();
    }
  });
  $("raise-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (raise.lat == null) return;
    $("raise-send").disabled = true;
    const r = await command("incidents/", raiseBody(), gettext("已发起，第一批单元已推送"));
    if (r.ok) {
      raise.incidentId = r.body.incident_id;
      select(r.body.incident_id);
      const inc = incident(r.body.incident_id);
      resync(inc.id, inc.seq);
    } else $("raise-send").disabled = false;
  });
}

// --- start -------------------------------------------------------------------------------
mapInit(onMapClick);
document.addEventListener("board:select", (ev) => {
  select(ev.detail);
  redraw();
  cardOf(ev.detail)?.scrollIntoView({ block: "nearest" });
});
setInterval(() => {
  const now = Date.now();
  const list = openIncidents();
  for (const inc of list) renderClock(inc, now);
  renderFollowUp(list, now);
}, 1000);

(async () => {
  const r = await api(CFG.mapUrl.replace(CFG.apiBase, ""));
  if (r.ok) {
    area = r.body;
    $("scope").textContent = area.scope;
    drawArea(area);
  }
  connect();
})();

// For people and tests: the socket's state and the newest seq per incident.
window.boardState = () => ({ socket: document.body.dataset.socket, incidents: Object.fromEntries([...incidents].map(([id, inc]) => [id, { seq: inc.seq, status: inc.status, units: Object.fromEntries([...inc.units].map(([u, x]) => [u, x.status])), gathering: inc.summary && inc.summary.gathering }])) });
