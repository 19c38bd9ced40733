// The list side of the board: each open incident's card (clock against the
// 1-3-5 / 10 / 20-minute marks, waves, every alerted unit's state), the units to
// chase by radio, the banner and notices.
import { CFG, incidents, openIncidents } from "./state.js";

const $ = (id) => document.getElementById(id);
const STATUS = {
  alerted: () => gettext("已推送"),
  accepted: () => gettext("已接受"),
  declined: () => gettext("已拒绝"),
  on_site: () => gettext("已到场"),
  handled: () => gettext("已处置"),
  stood_down: () => gettext("已解除"),
};
export const statusLabel = (status) => (STATUS[status] ? STATUS[status]() : status || "");
const CHANNELS = { app: () => gettext("应用"), push: () => gettext("推送通知"), sms: () => gettext("短信"), voice: () => gettext("语音") };
export const channelLabel = (c) => (CHANNELS[c] ? CHANNELS[c]() : c);
// A unit's receipts in one cell: members the app reached of those alerted, the
// channels that reached someone, the channels that failed (✗), no channel at all (⚠).
export function reachText(u) {
  const ok = (u.channels || []).map(channelLabel).join("/");
  const bad = (u.failed_channels || []).filter((c) => !(u.channels || []).includes(c)).map((c) => `✗${channelLabel(c)}`);
  const parts = [u.members ? `${u.delivered || 0}/${u.members}` : "", ok, ...bad];
  if (u.unreachable) parts.push(`⚠ ${gettext("需电台跟进")}`);
  return parts.filter(Boolean).join(" ");
}
const MARKS = [
  ["responded", "responded_at", () => gettext("响应")],
  ["controlled", "controlled_at", () => gettext("管控")],
  ["handled", "handled_at", () => gettext("处置")],
  ["street", null, () => gettext("街镇增援")],
  ["professional", null, () => gettext("专业力量")],
];
const EVENTS = {
  created: () => gettext("接报"), alerted: () => gettext("推送"), delivered: () => gettext("送达"), seen: () => gettext("已读"),
  accepted: () => gettext("接受"), declined: () => gettext("拒绝"), on_site: () => gettext("到场管控"), handled: () => gettext("处置完毕"),
  escalated: () => gettext("升级"), no_units: () => gettext("范围内无可用单元"), stood_down: () => gettext("解除待命"),
  flagged: () => gettext("超时预警"), closed: () => gettext("结案"), gathering: () => gettext("区域集结"),
  reached: () => gettext("已触达"), unreachable: () => gettext("各渠道均未触达，需电台跟进"), notify_retry: () => gettext("重试发送"),
};
// The words after an event's name: which tier escalated, which channel reached, the outcome.
function eventDetail(e) {
  const d = e.data || {};
  if (e.event === "escalated") return ` · ${tierLabel(d.tier)}`;
  if ((e.event === "reached" || e.event === "notify_retry") && d.channel) return ` · ${channelLabel(d.channel)}`;
  if (e.event === "closed" && d.outcome) return ` · ${outcomeLabel(d.outcome)}`;
  return "";
}

export let selectedId = null;
export function select(id) {
  selectedId = id;
}

const fmtClock = (s) => `${s < 0 ? "-" : ""}${Math.floor(Math.abs(s) / 60)}:${String(Math.floor(Math.abs(s) % 60)).padStart(2, "0")}`;
// Times in the city's zone (settings.TIME_ZONE), whatever the desk computer's clock says.
// One formatter for the page: toLocaleTimeString with options builds a new one at
// each call (~0.3 ms), and a card's timeline has 30 times (bench/board.py trace).
// These options are the ones toLocaleTimeString uses, so the text is the same.
let timeFormat = null;
const fmtTime = (iso) => {
  if (!iso) return "";
  timeFormat = timeFormat || new Intl.DateTimeFormat(CFG.language === "en" ? "en-GB" : "zh-CN", { hour: "numeric", minute: "numeric", second: "numeric", hour12: false, timeZone: CFG.timeZone });
  return timeFormat.format(new Date(iso));
};
const fmtDistance = (m) => (m == null ? "–" : m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`);

// Where the incident stands against its marks: each mark met / running (amber
// when under a third of its time is left) / late, and the card's colour.
export function clockState(inc, now) {
  const s = inc.summary;
  const start = Date.parse(s.discovered_at);
  const marks = MARKS.map(([name, field, label]) => {
    const due = start + (CFG.targetsS[name] || 0) * 1000;
    const doneAt = field ? s[field] : null;
    let state;
    if (doneAt) state = Date.parse(doneAt) <= due ? "met" : "late-met";
    else if (inc.status !== "open") state = "off";
    else if (now > due) state = "late";
    else if (due - now < (CFG.targetsS[name] * 1000) / 3) state = "amber";
    else state = "pending";
    return { name, label: label(), due, state };
  });
  const level = marks.some((m) => m.state === "late") ? "red" : marks.some((m) => m.state === "amber") ? "amber" : "green";
  return { elapsed: (now - start) / 1000, marks, level };
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

// Each incident's card by incident id (no selector query per frame).
const cards = new Map();
export const cardOf = (id) => cards.get(id) || null;

// Only the cards in or near the list's view hold their body (unit rows, commands,
// timeline): fifty whole cards were ~13,500 live nodes, and V8's major collections
// traced them all (88 ms tasks in bench/board.py). A card out of view keeps its
// head: title, clock, marks, gathering point, waves and a tally of its units by
// state. Its body comes back from state.js as it nears the view, with the boxes
// the officer ticked, the outcome chosen and the timeline as left.
// One margin of a screen and a half: a card entering it is drawn whole and kept up
// to date; leaving it, its body is dropped (the radio follow-up table above the
// cards scrolls within its own box, so the list does not shift as units answer).
let watcher = null;
function watch(el) {
  el.near = false;
  if (typeof IntersectionObserver === "undefined") {
    el.near = true; // no observer: every card whole, as before
    return;
  }
  watcher = watcher || new IntersectionObserver(nearChanged, { root: document.querySelector(".side-pane"), rootMargin: "150% 0px" });
  watcher.observe(el);
}
function nearChanged(entries) {
  const now = Date.now();
  for (const entry of entries) {
    const el = entry.target;
    el.near = entry.isIntersecting;
    if (el.near) {
      const inc = incidents.get(Number(el.dataset.id));
      if (inc) renderIncident(inc, now);
      el.style.minHeight = "";
    } else if (el.body && !busy(el.body)) {
      // The card keeps its height while out of view: the list does not jump.
      el.style.minHeight = `${Math.round(entry.boundingClientRect.height)}px`;
      dropBody(el);
    }
  }
}

// A body the officer is working in stays: candidates listed to call, a field
// in focus, a close armed.
const busy = (body) => !body.querySelector("table.more").hidden || body.contains(document.activeElement) || !!body.querySelector("[data-armed='1']");

function dropBody(el) {
  const body = el.body;
  const ticked = new Set();
  for (const box of body.querySelectorAll("table.units input:checked")) ticked.add(box.value);
  el.kept = { ticked, outcome: body.querySelector("select.outcome").value, timelineOpen: body.querySelector(".timeline").open };
  body.remove();
  el.body = null;
}

function bodyOf(el, inc) {
  if (el.body) return el.body;
  const body = $("incident-body-template").content.firstElementChild.cloneNode(true);
  if (!CFG.mayCommand) body.querySelector(".commands").hidden = true;
  const open = inc.status === "open";
  for (const b of body.querySelector(".commands").querySelectorAll("button, select")) b.disabled = !open;
  if (el.kept) {
    if (el.kept.outcome) body.querySelector("select.outcome").value = el.kept.outcome;
    body.querySelector(".timeline").open = el.kept.timelineOpen;
  }
  el.appendChild(body);
  el.body = body;
  return body;
}

function card(inc) {
  let el = cards.get(inc.id);
  if (!el) {
    el = $("incident-template").content.firstElementChild.cloneNode(true);
    el.dataset.id = inc.id;
    el.body = null;
    $("incidents").appendChild(el);
    cards.set(inc.id, el);
    watch(el);
  }
  return el;
}

function unitRow(u) {
  const tr = document.createElement("tr");
  tr.dataset.unit = u.unit_id;
  const box = document.createElement("input");
  box.type = "checkbox";
  box.value = u.unit_id;
  // Ticked before its card left the view.
  if (rowsOf && rowsOf.kept && rowsOf.kept.ticked.has(box.value)) box.checked = true;
  tr.appendChild(document.createElement("td")).appendChild(box);
  for (const cls of ["name", "", "st", "reach", "num"]) cell(tr, "", cls);
  return tr;
}

// A lone text node is changed in place: ``textContent =`` makes a new node each
// time, and fifty clocks a second of dropped nodes is garbage for Blink's heap.
const setText = (el, text) => {
  const t = el.firstChild;
  if (t && t.nodeType === 3 && t === el.lastChild) {
    if (t.data !== text) t.data = text;
  } else if (el.textContent !== text) el.textContent = text;
};
const setAttr = (el, name, value) => {
  if (el[name] !== value) el[name] = value;
};

// ``parent``'s children kept by key, in the order of ``items``: children whose
// item left are removed first, so the rest are already in order and a child
// coming or leaving moves no other (each move dirties its layout); a new item
// gets ``make(item)``; every child is then ``fill``ed (its writes skip what is unchanged).
// The usual case, the same keys in the same order, allocates nothing but the keys.
function keyedChildren(parent, items, keyOf, make, fill) {
  const children = parent.children;
  let same = children.length === items.length;
  for (let i = 0; same && i < items.length; i++) same = children[i].boardKey === keyOf(items[i]);
  if (same) {
    for (let i = 0; i < items.length; i++) fill(children[i], items[i]);
    return;
  }
  const keys = new Set(items.map(keyOf));
  const kept = new Map();
  for (const child of [...children]) {
    if (keys.has(child.boardKey)) kept.set(child.boardKey, child);
    else child.remove();
  }
  items.forEach((item, i) => {
    const key = keyOf(item);
    let child = kept.get(key);
    if (!child) {
      child = make(item);
      child.boardKey = key;
    }
    fill(child, item);
    if (children[i] !== child) parent.insertBefore(child, children[i] || null);
  });
}

// A row is filled again only when its unit changed (state.js counts each change
// in ``rev``; a state frame brings new unit objects).
function unitRowFill(tr, u) {
  if (tr.boardUnit === u && tr.boardRev === u.rev) return;
  tr.boardUnit = u;
  tr.boardRev = u.rev;
  fillUnitRow(tr, u);
}

function fillUnitRow(tr, u) {
  const [boxCell, name, wave, st, reach, distance] = tr.children;
  if (tr.dataset.status !== u.status) tr.dataset.status = u.status;
  setAttr(boxCell.firstChild, "disabled", !["alerted", "accepted", "declined"].includes(u.status));
  setText(name, `${u.code} ${u.name}`);
  setAttr(name, "title", name.textContent);
  setText(wave, u.wave != null ? String(u.wave) : "");
  setText(st, (STATUS[u.status] || (() => u.status))());
  setAttr(st, "className", `st st-${u.status}`);
  setText(reach, reachText(u));
  const channels = (u.channels || []).join(" ");
  if (reach.dataset.channels !== channels) reach.dataset.channels = channels;
  setText(distance, fmtDistance(u.distance_m));
}

let rowsOf = null; // the card whose rows are being made (its ticked boxes)
const unitKey = (u) => u.unit_id;
// The incident's units as an array, made again only when its units changed.
function unitList(inc) {
  if (inc.unitListOf !== inc.units || inc.unitList.length !== inc.units.size) {
    inc.unitListOf = inc.units;
    inc.unitList = [...inc.units.values()];
  }
  return inc.unitList;
}

// The card's units by state in one line ("18 个单元：已推送 2 · 已接受 16"): what a
// card out of view still says, and a count at a glance on every card.
const TALLY_ORDER = ["alerted", "accepted", "on_site", "handled", "declined", "stood_down"];
const tallyCounts = {};
function tally(inc) {
  for (const st of TALLY_ORDER) tallyCounts[st] = 0;
  let other = 0;
  for (const u of inc.units.values()) {
    if (u.status in tallyCounts) tallyCounts[u.status]++;
    else other++;
  }
  let counts = "";
  for (const st of TALLY_ORDER) {
    if (tallyCounts[st]) counts += `${counts ? " · " : ""}${statusLabel(st)} ${tallyCounts[st]}`;
  }
  if (other) counts += `${counts ? " · " : ""}${other}`;
  const head = interpolate(gettext("%s 个单元"), [inc.units.size]);
  return counts ? interpolate(gettext("%s：%s"), [head, counts]) : head;
}

export function renderIncident(inc, now) {
  const s = inc.summary;
  if (!s) return;
  const el = card(inc);
  // Every write below is skipped when nothing changed: a frame for one unit must
  // not dirty the card's other nodes (each dirty node costs style and layout).
  el.classList.toggle("selected", inc.id === selectedId);
  el.classList.toggle("closed", inc.status !== "open");
  setText(el.querySelector(".title"), `#${s.id} ${s.kind_display}`);
  const sev = el.querySelector(".sev");
  setText(sev, s.severity_display);
  setAttr(sev, "className", `sev sev-${s.severity}`);
  setAttr(el.querySelector(".drill"), "hidden", !s.is_drill);
  setText(el.querySelector(".where"), [s.street, s.address, fmtTime(s.discovered_at)].filter(Boolean).join(" · "));
  const gp = el.querySelector(".gathering");
  setAttr(gp, "hidden", !s.gathering);
  if (s.gathering) setText(gp, `${gettext("集结点")}：${s.gathering.note || `${s.gathering.lat.toFixed(5)}, ${s.gathering.lon.toFixed(5)}`}`);
  setText(el.querySelector(".waves"), inc.waves.length ? inc.waves.map((w) => `${interpolate(gettext("第 %s 批"), [w.number])} ${fmtTime(w.at)}`).join(" · ") : "");
  if (el.dataset.status !== inc.status) {
    el.dataset.status = inc.status;
    if (el.body) el.body.querySelector(".commands").querySelectorAll("button, select").forEach((b) => (b.disabled = inc.status !== "open"));
  }
  renderClock(inc, now, el);
  setText(el.querySelector(".tally"), tally(inc));
  if (!el.near) return;
  const body = bodyOf(el, inc);
  // Rows updated in place, keyed by unit: an officer's ticked boxes survive every
  // frame, and a receipt changes one cell, not the whole table.
  rowsOf = el;
  keyedChildren(body.querySelector("table.units tbody"), unitList(inc), unitKey, unitRow, unitRowFill);
  rowsOf = null;
  el.kept = null;
  const tl = body.querySelector(".timeline ol");
  const last = inc.timeline[inc.timeline.length - 1];
  const tlKey = `${inc.timeline.length}:${last ? last.seq : ""}:${inc.units.size}`;
  if (tl.dataset.key === tlKey) return;
  tl.dataset.key = tlKey;
  // Items kept by event (seq), new ones added, the oldest dropped: rebuilding all
  // 30 at each event made garbage enough for 80 ms collections (bench/board.py).
  const shown = inc.timeline.slice(-30).reverse();
  const itemKey = (e) => (e.seq != null ? `s${e.seq}` : `${e.at}:${e.event}:${e.unit_id}`);
  const newItem = (e) => {
    const li = document.createElement("li");
    li.dataset.event = e.event;
    return li;
  };
  keyedChildren(tl, shown, itemKey, newItem, (li, e) => {
    const who = [e.unit_code || (e.unit_id && inc.units.get(e.unit_id) ? inc.units.get(e.unit_id).code : ""), e.data && e.data.member_name, e.by].filter(Boolean).join(" ");
    setText(li, `${fmtTime(e.at)} ${(EVENTS[e.event] || (() => e.event))()} ${who}${eventDetail(e)}`);
  });
}

function outcomeLabel(code) {
  const found = CFG.outcomes.find((o) => o[0] === code);
  return found ? found[1] : code;
}

export function renderClock(inc, now, el) {
  el = el || cards.get(inc.id);
  if (!el || !inc.summary) return;
  const c = clockState(inc, now);
  const clock = el.querySelector(".clock");
  setText(clock, inc.status === "open" ? fmtClock(c.elapsed) : gettext("已结案"));
  const level = inc.status === "open" ? c.level : "off";
  if (clock.dataset.level !== level) clock.dataset.level = el.dataset.level = level;
  const ol = el.querySelector(".marks");
  if (ol.children.length !== c.marks.length) {
    ol.textContent = "";
    for (const m of c.marks) ol.appendChild(document.createElement("li"));
  }
  c.marks.forEach((m, i) => {
    const li = ol.children[i];
    if (li.dataset.state !== m.state) li.dataset.state = m.state;
    if (li.dataset.mark !== m.name) li.dataset.mark = m.name;
    setText(li, `${m.label} ${Math.round(CFG.targetsS[m.name] / 60)}′`);
  });
}

export function renderAll(now) {
  const list = openIncidents().sort((a, b) => (a.status === b.status ? b.id - a.id : a.status === "open" ? -1 : 1));
  const keep = new Set(list.map((i) => String(i.id)));
  for (const [id, el] of cards) {
    if (keep.has(String(id))) continue;
    if (watcher) watcher.unobserve(el);
    el.remove();
    cards.delete(id);
  }
  for (const inc of list) renderIncident(inc, now);
  // Order the cards as the list is sorted, moving only those out of place.
  const box = $("incidents");
  list.forEach((inc, i) => {
    const el = card(inc);
    if (box.children[i] !== el) box.insertBefore(el, box.children[i] || null);
  });
  $("open-count").textContent = `(${list.filter((i) => i.status === "open").length})`;
  renderFollowUp(list, now);
}

// Runs every second: rows are kept, keyed by incident and unit, and moved or
// filled in place (rebuilding hundreds of rows each second dirtied the whole pane's
// layout); otherwise only their waiting times move.
export function renderFollowUp(list, now) {
  const body = $("follow-up").querySelector("tbody");
  const due = [];
  for (const inc of list) {
    if (inc.status !== "open") continue;
    for (const u of inc.units.values()) {
      if (u.status !== "alerted" || !u.alerted_at) continue;
      const waited = (now - Date.parse(u.alerted_at)) / 1000;
      if (waited >= CFG.followUpAfterS) due.push([inc, u, waited]);
    }
  }
  const newRow = ([inc, u]) => {
    const tr = document.createElement("tr");
    tr.dataset.unit = u.unit_id;
    cell(tr, `#${inc.id}`);
    cell(tr, "", "name");
    // The waiting time ticks every second in every row: its box has a fixed
    // size (board.css), so a tick lays out that box alone, not the table.
    cell(tr, "", "waited").appendChild(document.createElement("span"));
    cell(tr, "", "phone");
    return tr;
  };
  keyedChildren(body, due, ([inc, u]) => `${inc.id}:${u.unit_id}`, newRow, (tr, [, u, waited]) => {
    const [, name, waitedCell, phone] = tr.children;
    setText(name, `${u.code} ${u.name}`);
    setAttr(name, "title", name.textContent);
    // In steps of 10 s: hundreds of rows each changing every second cost the
    // board a 20-40 ms layout each second (bench/board.py trace); a radio
    // operator needs "about how long", the card's own clock keeps the seconds.
    setText(waitedCell.firstChild, fmtClock(Math.floor(waited / 10) * 10));
    setText(phone, u.leader ? `${u.leader.name} ${u.leader.phone}` : "—");
  });
}

// An escalation in words: the tier as people call it (settings name the tiers
// respond_1min, street_10min...; the page's config translates them).
export const tierLabel = (name) => (CFG.tierLabels && CFG.tierLabels[name]) || gettext("升级层级");
export function escalationText(frame) {
  const d = frame.data || {};
  let text = `${gettext("升级")} #${frame.incident_id}: ${tierLabel(d.tier)}`;
  if (d.units != null) text += ` · ${gettext("新推送单元")} ${d.units}`;
  else if (d.ring_sent_early) text += ` · ${gettext("该圈已提前推送")}`;
  return text;
}

let bannerTimer = null;
export function banner(text) {
  const el = $("banner");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => (el.hidden = true), 20000);
}
export function notice(text, bad) {
  const el = $("notice");
  el.textContent = text;
  el.className = `notice ${bad ? "bad" : "ok"}`;
  el.hidden = false;
  setTimeout(() => (el.hidden = true), 8000);
}
