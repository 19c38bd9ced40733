// "Test my alert" (测试提醒) and the channels that reached this member last.
// A test is not an incident: its own frame type (alert.test), its own sheet
// marked 测试, its own push tag; the server sends it to this member only.
import { $, CFG, T } from "./config.js";
import { ring } from "./sound.js";
import { persist, state } from "./store.js";
import { api, errorText, esc, fmtTime, toast } from "./util.js";

let current = null; // the test being shown: {id, channels, stopped}
let pollTimer = null;

export function renderReach() {
  const me = state.me;
  if (!me || !$("reach-list")) return;
  const rows = me.reach || [];
  $("reach-list").innerHTML = rows.length
    ? rows
        .map((r) => `<li><span>${esc(r.label)}${r.test ? ` <span class="test-badge">${esc(T.reach_test)}</span>` : ""}</span><span class="muted">${esc(fmtTime(r.at))}</span></li>`)
        .join("")
    : `<li class="empty">${esc(T.reach_never)}</li>`;
}

function renderTest() {
  if (!current) return;
  $("test-alert").hidden = false;
  $("test-alert-steps").innerHTML = current.channels
    .map((c) => {
      const when = c.at ? fmtTime(c.at) : c.after_s != null ? `${c.after_s} ${T.test_after}` : "";
      return `<li data-channel="${esc(c.channel)}" data-status="${esc(c.status)}"><span>${esc(c.label)}</span><span>${esc(T["test_status_" + c.status] || c.status)} <span class="muted">${esc(when)}</span></span></li>`;
    })
    .join("");
  $("test-alert-stop").hidden = current.stopped || current.channels.every((c) => c.status !== "pending");
}

async function poll() {
  clearTimeout(pollTimer);
  if (!current || $("test-alert").hidden) return;
  try {
    const r = await api(`${CFG.apiBase}api/alert-test/${current.id}/`);
    if (r.ok) {
      current = r.body;
      renderTest();
    }
  } catch (e) {
    /* offline: try again */
  }
  if (current.channels.some((c) => c.status === "pending" || c.status === "sending") && !current.stopped) {
    pollTimer = setTimeout(poll, 3000);
  } else {
    reachRefresh();
  }
}

// After a test the "last reached" list has news.
async function reachRefresh() {
  try {
    const r = await api(CFG.apiBase + "api/me/");
    if (r.ok && state.me) {
      state.me.reach = r.body.reach;
      persist();
      renderReach();
    }
  } catch (e) {
    /* offline: the next refresh brings it */
  }
}

export async function startTest() {
  const btn = $("test-alert-start");
  btn.disabled = true;
  try {
    const r = await api(CFG.apiBase + "api/alert-test/", { method: "POST", body: "{}" });
    if (r.ok) {
      current = r.body;
      toast(T.test_alert_started);
      renderTest();
      poll();
    } else {
      toast(errorText(r.body));
    }
  } catch (e) {
    toast(T.offline);
  }
  btn.disabled = false;
}

// The app channel of a test: this page got the frame over its socket.
export async function onTestFrame(frame) {
  const test = frame.test;
  current = { id: test.id, stopped: false, channels: [] };
  $("test-alert-title").textContent = test.title;
  $("test-alert-body").textContent = test.body;
  $("test-alert").hidden = false;
  ring();
  try {
    const r = await api(`${CFG.apiBase}api/alert-test/${test.id}/`, { method: "POST", body: JSON.stringify({ event: "received" }) });
    if (r.ok) current = r.body;
  } catch (e) {
    /* the socket delivered it; the receipt is best effort */
  }
  renderTest();
  poll();
}

export async function stopTest() {
  if (!current) return;
  try {
    const r = await api(`${CFG.apiBase}api/alert-test/${current.id}/`, { method: "POST", body: JSON.stringify({ event: "stop" }) });
    if (r.ok) current = r.body;
    toast(T.test_alert_stopped);
  } catch (e) {
    toast(T.offline);
  }
  renderTest();
}

export function closeTest() {
  $("test-alert").hidden = true;
  clearTimeout(pollTimer);
}
