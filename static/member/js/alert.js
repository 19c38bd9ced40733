// The alert screen: details, the server's allowed actions, responders, map.
import { act } from "./actions.js";
import { $, CFG, T, kindLabel, severityLabel } from "./config.js";
import { locate, position } from "./position.js";
import { receipt } from "./socket.js";
import { stopRing } from "./sound.js";
import { memberId, persist, state } from "./store.js";
import { api, bearing, fmtDistance, haversine } from "./util.js";

// --- Alert screen --------------------------------------------------------------------
export let openIncidentId = null;
export let map = null;
export let layers = null;
export let pollTimer = null;

export function openAlert(incidentId) {
  openIncidentId = incidentId;
  $("alert").hidden = false;
  document.body.classList.add("alerting");
  history.replaceState(null, "", `#incident-${incidentId}`);
  receipt("seen", incidentId);
  if (!position) locate().then(() => renderAlert());
  renderAlert();
  pollResponders();
}
export function closeAlert() {
  stopRing();
  openIncidentId = null;
  $("alert").hidden = true;
  document.body.classList.remove("alerting");
  clearTimeout(pollTimer);
  history.replaceState(null, "", location.pathname);
}

export async function pollResponders() {
  clearTimeout(pollTimer);
  const id = openIncidentId;
  if (!id) return;
  if (navigator.onLine) {
    try {
      const r = await api(`${CFG.apiBase}api/incidents/${id}/`);
      const inc = state.incidents[id];
      if (r.ok && inc) {
        inc.positions = r.body.responders;
        for (const p of r.body.responders) {
          const who = p.member_id || `u${p.unit_id}`;
          inc.responders[who] = { ...(inc.responders[who] || {}), name: p.name, unit_id: p.unit_id, event: p.event, unit_name: p.unit_name, me: p.member_id === memberId };
        }
        persist();
        if (openIncidentId === id) renderAlert();
      }
    } catch (e) {
      /* offline: keep what we have */
    }
  }
  if (openIncidentId === id) pollTimer = setTimeout(pollResponders, 5000);
}

export function renderAlert() {
  const inc = state.incidents[openIncidentId];
  if (!inc) return;
  const s = inc.summary;
  $("alert").dataset.status = inc.dispatch.status;
  $("alert").dataset.incident = inc.id;
  $("alert-kind").textContent = kindLabel(s);
  $("alert-severity").textContent = severityLabel(s);
  $("alert-severity").className = `sev sev-${s.severity}`;
  $("alert-drill").hidden = !s.is_drill;
  $("alert-address").textContent = s.address || `${s.lat.toFixed(5)}, ${s.lon.toFixed(5)}`;
  $("alert-desc").textContent = s.description || "";

  const unit = state.me && state.me.unit;
  const from = position ? position : unit ? { lat: unit.lat, lon: unit.lon } : null;
  const dest = destination(inc);
  $("alert").dataset.destination = dest.kind;
  if (dest.kind === "gathering") $("alert-address").textContent = `${$("alert-gathering-label").textContent}${dest.note ? " · " + dest.note : ""}`;
  else if (dest.kind === "own_post") $("alert-address").textContent = $("alert-post-label").textContent;
  let distance = dest.kind === "scene" ? inc.dispatch.distance_m : null;
  let deg = null;
  if (from) {
    distance = haversine(from.lat, from.lon, dest.lat, dest.lon);
    deg = bearing(from.lat, from.lon, dest.lat, dest.lon);
  }
  $("alert-distance").textContent = fmtDistance(distance);
  const eta = distance != null ? (distance * CFG.detour) / CFG.walkSpeed : inc.dispatch.eta_s;
  $("alert-eta").textContent = eta != null ? `${Math.max(1, Math.round(eta / 60))} ${T.minutes}` : "–";
  $("alert-arrow").style.transform = deg == null ? "" : `rotate(${deg}deg)`;
  $("alert-arrow").dataset.bearing = deg == null ? "" : Math.round(deg);
  $("alert-bearing-note").textContent = position ? T.bearing_from_phone : T.bearing_from_unit;

  const names = Object.values(inc.responders)
    .filter((r) => r.event)
    .map((r) => `${r.name || r.unit_name || ""}${r.me ? T.me_suffix : ""}·${T["status_" + r.event] || r.event}`);
  $("alert-responders").textContent = names.length ? names.join("，") : T.nobody_yet;

  const closed = inc.status !== "open";
  $("alert-status").textContent = closed ? T.incident_closed : T["status_" + inc.dispatch.status] || "";
  const msg = $("alert-message");
  msg.hidden = !inc.message;
  if (inc.message) {
    msg.textContent = inc.message.text;
    msg.className = `alert-message ${inc.message.ok ? "ok" : "bad"}`;
  }
  renderActions(inc, closed);
  renderMap(inc, from);
}

// Where this unit goes: the gathering point a police station set (区域集结),
// else the server's destination for it (a drill: its own post), else the scene.
export function destination(inc) {
  const s = inc.summary;
  if (s.gathering) return { kind: "gathering", lat: s.gathering.lat, lon: s.gathering.lon, note: s.gathering.note };
  const d = inc.dispatch.destination;
  if (d) return { kind: d.kind, lat: d.lat, lon: d.lon };
  return { kind: "scene", lat: s.lat, lon: s.lon };
}

export function renderActions(inc, closed) {
  const box = $("alert-actions");
  box.innerHTML = "";
  const pending = (action) => state.outbox.find((a) => a.action === action && a.incident_id === inc.id);
  const button = (action, cls) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `btn btn-action ${cls}`;
    b.dataset.action = action;
    const p = pending(action);
    b.textContent = p ? (p.sent && navigator.onLine ? T.sending : T.queued) : T[action];
    b.disabled = !!p;
    b.addEventListener("click", () => act(action, inc.id));
    box.appendChild(b);
  };
  const st = inc.dispatch.status;
  box.classList.toggle("pair", !closed && st === "alerted");
  if (closed || st === "stood_down" || st === "handled") {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-action btn-secondary";
    b.textContent = T.close;
    b.addEventListener("click", closeAlert);
    box.appendChild(b);
    return;
  }
  // The server's state machine decides which actions exist now (dispatch/actions.py).
  for (const action of inc.dispatch.next_actions || []) button(action, action === "decline" ? "btn-decline" : "btn-accept");
  if (st === "accepted" || st === "on_site") {
    const s = { ...inc.summary, ...destination(inc) };
    const nav = document.createElement("a");
    nav.className = "btn btn-action btn-nav";
    nav.dataset.action = "navigate";
    nav.textContent = T.navigate;
    // geo: opens the phone's map app; the AMap link takes WGS-84 explicitly.
    const isAndroid = /Android/i.test(navigator.userAgent);
    nav.href = isAndroid
      ? `geo:${s.lat},${s.lon}?q=${s.lat},${s.lon}`
      : `https://uri.amap.com/navigation?to=${s.lon},${s.lat},${encodeURIComponent(s.address || "")}&mode=walk&coordinate=wgs84&callnative=1`;
    nav.target = "_blank";
    nav.rel = "noopener";
    box.appendChild(nav);
  }
}

// Markers are WGS-84; GCJ-02 tiles (AMap, Tencent) need the shift.
export const onMap = (lat, lon) => (CFG.tileCrs === "gcj02" && window.Gcj02 ? Gcj02.fromWgs84(lat, lon) : [lat, lon]);

export function renderMap(inc, from) {
  if (!window.L) return;
  const s = inc.summary;
  if (!map) {
    map = L.map("alert-map", { zoomControl: true, attributionControl: !!CFG.tileUrl });
    if (CFG.tileUrl) L.tileLayer(CFG.tileUrl, { attribution: CFG.tileAttribution, maxZoom: 19 }).addTo(map);
    layers = L.layerGroup().addTo(map);
  }
  layers.clearLayers();
  const points = [onMap(s.lat, s.lon)];
  L.circleMarker(onMap(s.lat, s.lon), { radius: 12, color: "#7f1d1d", fillColor: "#dc2626", fillOpacity: 0.9, weight: 3 })
    .bindTooltip(kindLabel(s), { permanent: true, direction: "top" })
    .addTo(layers);
  const dest = destination(inc);
  if (dest.kind === "gathering") {
    L.circleMarker(onMap(dest.lat, dest.lon), { radius: 10, color: "#065f46", fillColor: "#34d399", fillOpacity: 0.95, weight: 3 }).addTo(layers);
    points.push(onMap(dest.lat, dest.lon));
  }
  const unit = state.me && state.me.unit;
  if (unit) {
    L.circleMarker(onMap(unit.lat, unit.lon), { radius: 7, color: "#374151", fillColor: "#9ca3af", fillOpacity: 0.9 }).addTo(layers);
    points.push(onMap(unit.lat, unit.lon));
  }
  if (position) {
    L.circleMarker(onMap(position.lat, position.lon), { radius: 8, color: "#1e3a8a", fillColor: "#3b82f6", fillOpacity: 1 }).addTo(layers);
    points.push(onMap(position.lat, position.lon));
  }
  for (const p of inc.positions || []) {
    if (p.lat == null || p.member_id === memberId) continue;
    L.circleMarker(onMap(p.lat, p.lon), { radius: 7, color: "#065f46", fillColor: "#10b981", fillOpacity: 1 })
      .bindTooltip(p.name || "", { permanent: false })
      .addTo(layers);
    points.push(onMap(p.lat, p.lon));
  }
  map.invalidateSize();
  if (points.length > 1) map.fitBounds(points, { padding: [30, 30], maxZoom: 17 });
  else map.setView(points[0], 16);
}
