/* The member's phone app: wiring and start. One ES module per concern beside it
 * (socket, events, actions, alert, duty, store, ...); server data comes from
 * json_script (config.js), so the page holds no inline script (strict CSP).
 *
 * Protocol (docs/architecture.md): the server sends hello, incident.alert,
 * incident.update, incident.closed, duty, ping, resumed, ok/error; the page
 * sends resume {last_event_id}, ack, seen, accept, decline, on_site, handled,
 * location, pong. Event frames carry their IncidentEvent id: the page keeps
 * the highest one in localStorage, resumes from it after any reconnect and
 * drops ids it has already applied (the server re-sends a few on purpose).
 */
import { act } from "./actions.js";
import { closeAlert, openAlert, openIncidentId, renderAlert } from "./alert.js";
import { closeTest, startTest, stopTest } from "./alerttest.js";
import { $, CFG } from "./config.js";
import { refreshMe, renderDuty, renderHistory, renderList, renderUnit, toggleDuty } from "./duty.js";
import { enablePush, swRegistration, swRegistrationSet } from "./push.js";
import { openReport, reportKindChoose, sendReport } from "./report.js";
import { connect, reconnectNow, setConn, signOutBegin, wentOffline, ws } from "./socket.js";
import { enableSound } from "./sound.js";
import { memberForget, restore, state } from "./store.js";

// --- Wiring ----------------------------------------------------------------------------
export function showView(name) {
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === `view-${name}`));
  document.querySelectorAll(".tabbar button").forEach((b) => b.classList.toggle("active", b.dataset.view === name));
  if (name === "history") renderHistory();
  if (name === "unit") renderUnit();
}

export function wire() {
  $("enable-sound").addEventListener("click", enableSound);
  $("duty-toggle").addEventListener("click", toggleDuty);
  $("alert-later").addEventListener("click", closeAlert);
  $("alert-list").addEventListener("click", (e) => {
    const b = e.target.closest("[data-incident]");
    if (b) openAlert(Number(b.dataset.incident));
  });
  document.querySelectorAll(".tabbar button").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
  $("report-open").addEventListener("click", openReport);
  $("test-alert-start").addEventListener("click", startTest);
  $("test-alert-stop").addEventListener("click", stopTest);
  $("test-alert-close").addEventListener("click", closeTest);
  $("report-cancel").addEventListener("click", () => ($("report").hidden = true));
  $("report-send").addEventListener("click", sendReport);
  $("report-kinds").addEventListener("click", (e) => {
    const b = e.target.closest("[data-kind]");
    if (!b) return;
    reportKindChoose(b.dataset.kind);
    document.querySelectorAll("#report-kinds .kind").forEach((k) => k.classList.toggle("chosen", k === b));
    $("report-send").disabled = false;
  });
  $("sign-out-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    signOutBegin();
    try {
      if (swRegistration) {
        const sub = await swRegistration.pushManager.getSubscription();
        if (sub) await sub.unsubscribe();
        if (swRegistration.active) swRegistration.active.postMessage({ type: "sign-out" });
      }
    } catch (err) {
      /* the server drops this session's subscriptions anyway */
    }
    memberForget();
    form.submit();
  });
  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", () => {
    wentOffline();
    if (openIncidentId) renderAlert(); // taps in flight now wait for the network
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !ws) connect();
  });
  if (navigator.serviceWorker) {
    navigator.serviceWorker.addEventListener("message", (e) => {
      // A push arrived while this page is open: make sure the socket is live.
      if (e.data && e.data.type === "push" && !ws) connect();
      if (e.data && e.data.type === "push-resubscribed") enablePush();
    });
  }
}

export async function start() {
  restore();
  wire();
  renderDuty();
  renderUnit();
  renderList();
  $("enable-sound").hidden = false;
  if (!navigator.onLine) setConn("offline");
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker
      .register(CFG.swUrl, { scope: CFG.apiBase })
      .then((reg) => {
        swRegistrationSet(reg);
        if (window.Notification && Notification.permission === "granted") enablePush();
      })
      .catch(() => {});
  }
  const m = location.hash.match(/^#incident-(\d+)$/);
  if (m && state.incidents[m[1]]) openAlert(Number(m[1]));
  refreshMe();
  connect();
}

window.memberApp = { state, connect, act }; // for debugging on a phone, and tests
start();
