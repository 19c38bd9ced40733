// The list side of the board: each open incident's card (clock against the
// 1-3-5 / 10 / 20-minute marks, waves, every alerted unit's state), the units to
// chase by radio, the banner and notices.
import { CFG, openIncidents } from "./state.js";

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
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString(CFG.language === "en" ? "en-GB" : "zh-CN", { hour12: false, timeZone: CFG.timeZone }) : "");
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

function card(inc) {
  let el = document.querySelector(`article.incident[data-id="${inc.id}"]`);
  if (!el) {
    el = $("incident-template").content.firstElementChild.cloneNode(true);
    el.dataset.id = inc.id;
    $("incidents").appendChild(el);
    if (!CFG.mayCommand) el.querySelector(".commands").hidden = true;
  }
  return el;
}

function unitRow(u) {
  const tr = document.createElement("tr");
  tr.dataset.unit = u.unit_id;
  const box = document.createElement("input");
  box.type = "checkbox";
  box.value = u.unit_id;
  tr.appendChild(document.createElement("td")).appendChild(box);
  for (const cls of ["name", "", "st", "reach", "num"]) cell(tr, "", cls);
  return tr;
}

const setText = (el, text) => {
  if (el.textContent !== text) el.textContent = text;
};

function unitRowFill(tr, u) {
  const [boxCell, name, wave, st, reach, distance] = tr.children;
  if (tr.dataset.status !== u.status) tr.dataset.status = u.status;
  boxCell.firstChild.disabled = !["alerted", "accepted", "declined"].includes(u.status);
  setText(name, `${u.code} ${u.name}`);
  name.title = name.textContent;
  setText(wave, u.wave != null ? String(u.wave) : "");
  setText(st, (STATUS[u.status] || (() => u.status))());
  st.className = `st st-${u.status}`;
  setText(reach, reachText(u));
  reach.dataset.channels = (u.channels || []).join(" ");
  setText(distance, fmtDistance(u.distance_m));
}

export function renderIncident(inc, now) {
  const s = inc.summary;
  if (!s) return;
  const el = card(inc);
  el.classList.toggle("selected", inc.id === selectedId);
  el.classList.toggle("closed", inc.status !== "open");
  el.querySelector(".title").textContent = `#${s.id} ${s.kind_display}`;
  const sev = el.querySelector(".sev");
  sev.textContent = s.severity_display;
  sev.className = `sev sev-${s.severity}`;
  el.querySelector(".drill").hidden = !s.is_drill;
  el.querySelector(".where").textContent = [s.street, s.address, fmtTime(s.discovered_at)].filter(Boolean).join(" · ");
  const gp = el.querySelector(".gathering");
  gp.hidden = !s.gathering;
  if (s.gathering) gp.textContent = `${gettext("集结点")}：${s.gathering.note || `${s.gathering.lat.toFixed(5)}, ${s.gathering.lon.toFixed(5)}`}`;
  el.querySelector(".waves").textContent = inc.waves.length ? inc.waves.map((w) => `${interpolate(gettext("第 %s 批"), [w.number])} ${fmtTime(w.at)}`).join(" · ") : "";
  el.querySelector(".commands").querySelectorAll("button, select").forEach((b) => (b.disabled = inc.status !== "open"));
  renderClock(inc, now, el);
  // Rows updated in place, keyed by unit: an officer's ticked boxes survive every
  // frame, and a receipt changes one cell, not the whole table.
  const body = el.querySelector("table.units tbody");
  const rows = new Map([...body.children].map((tr) => [Number(tr.dataset.unit), tr]));
  let i = 0;
  for (const u of inc.units.values()) {
    const tr = rows.get(u.unit_id) || unitRow(u);
    rows.delete(u.unit_id);
    unitRowFill(tr, u);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    i++;
  }
  for (const tr of rows.values()) tr.remove();
  const tl = el.querySelector(".timeline ol");
  tl.textContent = "";
  for (const e of inc.timeline.slice(-30).reverse()) {
    const li = document.createElement("li");
    const who = [e.unit_code || (e.unit_id && inc.units.get(e.unit_id) ? inc.units.get(e.unit_id).code : ""), e.data && e.data.member_name, e.by].filter(Boolean).join(" ");
    li.textContent = `${fmtTime(e.at)} ${(EVENTS[e.event] || (() => e.event))()} ${who}${eventDetail(e)}`;
    li.dataset.event = e.event;
    tl.appendChild(li);
  }
}

function outcomeLabel(code) {
  const found = CFG.outcomes.find((o) => o[0] === code);
  return found ? found[1] : code;
}

export function renderClock(inc, now, el) {
  el = el || document.querySelector(`article.incident[data-id="${inc.id}"]`);
  if (!el || !inc.summary) return;
  const c = clockState(inc, now);
  const clock = el.querySelector(".clock");
  clock.textContent = inc.status === "open" ? fmtClock(c.elapsed) : gettext("已结案");
  clock.dataset.level = inc.status === "open" ? c.level : "off";
  el.dataset.level = clock.dataset.level;
  const ol = el.querySelector(".marks");
  if (ol.children.length !== c.marks.length) {
    ol.textContent = "";
    for (const m of c.marks) ol.appendChild(document.createElement("li"));
  }
  c.marks.forEach((m, i) => {
    const li = ol.children[i];
    li.dataset.state = m.state;
    li.dataset.mark = m.name;
    li.textContent = `${m.label} ${Math.round(CFG.targetsS[m.name] / 60)}′`;
  });
}

export function renderAll(now) {
  const list = openIncidents().sort((a, b) => (a.status === b.status ? b.id - a.id : a.status === "open" ? -1 : 1));
  const keep = new Set(list.map((i) => String(i.id)));
  document.querySelectorAll("article.incident").forEach((el) => {
    if (!keep.has(el.dataset.id)) el.remove();
  });
  for (const inc of list) renderIncident(inc, now);
  // Order the cards as the list is sorted.
  const box = $("incidents");
  for (const inc of list) box.appendChild(card(inc));
  $("open-count").textContent = `(${list.filter((i) => i.status === "open").length})`;
  renderFollowUp(list, now);
}

// Runs every second: rows are rebuilt only when the set of units to chase changes;
// otherwise only their waiting times move.
let followUpKey = "";
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
  const key = due.map(([inc, u]) => `${inc.id}:${u.unit_id}:${u.leader ? u.leader.phone : ""}`).join(",");
  if (key !== followUpKey) {
    followUpKey = key;
    body.textContent = "";
    for (const [inc, u] of due) {
      const tr = document.createElement("tr");
      tr.dataset.unit = u.unit_id;
      cell(tr, `#${inc.id}`);
      cell(tr, `${u.code} ${u.name}`, "name").title = `${u.code} ${u.name}`;
      cell(tr, "", "waited");
      cell(tr, u.leader ? `${u.leader.name} ${u.leader.phone}` : "—", "phone");
      body.appendChild(tr);
    }
  }
  due.forEach(([, , waited], n) => setText(body.children[n].children[2], fmtClock(waited)));
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
