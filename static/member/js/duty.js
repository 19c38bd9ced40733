// Lists, duty, own unit, alert history.
import { $, CFG, T, kindLabel, severityLabel } from "./config.js";
import { renderReach } from "./alerttest.js";
import { actionable } from "./events.js";
import { locate } from "./position.js";
import { adoptMember, persist, state } from "./store.js";
import { api, errorText, esc, fmtTime, toast } from "./util.js";

// --- Lists, duty, unit ----------------------------------------------------------------
export function renderList() {
  const list = $("alert-list");
  const items = Object.values(state.incidents).sort((a, b) => b.id - a.id).slice(0, 20);
  list.innerHTML = items.length
    ? items
        .map((inc) => {
          const st = inc.status === "open" ? T["status_" + inc.dispatch.status] || "" : T.incident_closed;
          return `<li><button type="button" class="row-item ${actionable(inc) ? "live" : ""}" data-incident="${inc.id}">
            <span class="sev sev-${inc.summary.severity}">${esc(severityLabel(inc.summary))}</span>
            <strong>${esc(kindLabel(inc.summary))}</strong> <span class="muted">#${inc.id}</span>
            <span class="addr">${esc(inc.summary.address || "")}</span>
            <span class="muted">${esc(fmtTime(inc.alertedAt))} · ${esc(st)}${inc.replayed ? " · " + esc(T.replayed) : ""}</span>
          </button></li>`;
        })
        .join("")
    : `<li class="empty">${esc(T.no_alerts)}</li>`;
}

export function renderDuty() {
  const me = state.me;
  if (!me) return;
  $("unit-name").textContent = me.unit.name;
  $("member-name").textContent = me.member.name;
  const on = me.member.on_duty;
  $("duty-card").classList.toggle("on", on);
  $("duty-label").textContent = on ? T.on_duty : T.off_duty;
  $("duty-since").textContent = on && me.member.duty_since ? `${T.duty_since} ${fmtTime(me.member.duty_since)}` : "";
  $("duty-toggle").textContent = on ? T.clock_out : T.clock_in;
  $("duty-toggle").className = `btn btn-block ${on ? "btn-secondary" : "btn-primary"}`;
  $("duty-hint").textContent = on ? "" : T.duty_off_note;
}

export function renderUnit() {
  const me = state.me;
  if (!me) return;
  $("unit-card").innerHTML = `<strong>${esc(me.unit.name)}</strong> <span class="muted">${esc(me.unit.code)}</span><br>
    <span class="muted">${esc(me.unit.address || "")}</span><br>
    <span class="${me.kit_complete ? "good" : "bad"}">${esc(me.kit_complete ? T.kit_complete : T.kit_missing)}</span>`;
  $("kit-list").innerHTML = me.kit
    .map((k) => `<li class="${k.ok ? "" : "bad"}"><span>${esc(k.label)}</span><span>${k.quantity}/${k.required || "–"} ${esc(k.condition)}${k.expired ? " · " + esc(k.expires) : ""}</span></li>`)
    .join("");
  renderReach();
  $("team-list").innerHTML = me.teammates
    .map((m) => `<li><span>${esc(m.name)}</span><span class="${m.on_duty ? "good" : "muted"}">${esc(m.on_duty ? T.on_duty : T.off_duty)}</span></li>`)
    .join("");
}

export async function refreshMe() {
  try {
    const r = await api(CFG.apiBase + "api/me/");
    if (r.ok) {
      adoptMember(r.body.member.id);
      state.me = r.body;
      persist();
      renderDuty();
      renderUnit();
    }
  } catch (e) {
    /* offline: the cached copy stays */
  }
}

export async function toggleDuty() {
  const me = state.me;
  if (!me) return;
  const btn = $("duty-toggle");
  btn.disabled = true;
  btn.textContent = T.sending;
  const where = await locate(4000);
  const body = { on_duty: !me.member.on_duty };
  if (where) Object.assign(body, { lat: where.lat, lon: where.lon, accuracy: Math.round(where.accuracy || 0) });
  try {
    const r = await api(CFG.apiBase + "api/duty/", { method: "POST", body: JSON.stringify(body) });
    if (r.ok) {
      state.me = r.body;
      persist();
      renderUnit();
    } else {
      toast(errorText(r.body));
    }
  } catch (e) {
    toast(T.offline);
  }
  btn.disabled = false;
  renderDuty();
}

export async function renderHistory() {
  try {
    const r = await api(CFG.apiBase + "api/alerts/");
    if (!r.ok) return;
    $("history-list").innerHTML = r.body.results.length
      ? r.body.results
          .map((row) => `<li><span><strong>${esc(kindLabel(row.incident))}</strong> #${row.incident.id}<br><span class="muted">${esc(row.incident.address)}</span></span>
            <span>${esc(row.dispatch.status_display)}<br><span class="muted">${esc(fmtTime(row.dispatch.alerted_at))}</span></span></li>`)
          .join("")
      : `<li class="empty">${esc(T.no_alerts)}</li>`;
  } catch (e) {
    /* offline */
  }
}
