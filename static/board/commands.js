// The officer's commands: raise (with the ranked candidates shown first), call
// more units, next ring, gathering point, stand down, close. Each is one POST to
// the board's JSON views; a refusal's message is shown as it came.
import { CFG, units } from "./state.js";

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export async function api(path, body) {
  const options = { credentials: "same-origin", headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/json" } };
  if (body !== undefined) {
    options.method = "POST";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(CFG.apiBase + path, options);
  } catch (e) {
    return { ok: false, status: 0, body: { message: gettext("网络不可用，命令未发送。") } };
  }
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, body: data };
}

export const kitText = (fit) => (fit ? gettext("对口") : "—");
const fmtDistance = (m) => (m == null ? "–" : m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`);
const fmtEta = (s) => (s == null ? "–" : `${Math.max(1, Math.round(s / 60))} ${gettext("分钟")}`);

export function candidateRows(tbody, rows, { checkboxes = false, statusOf = null } = {}) {
  tbody.textContent = "";
  rows.forEach((c, i) => {
    const tr = document.createElement("tr");
    tr.dataset.unit = c.unit_id;
    const first = document.createElement("td");
    if (checkboxes) {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = c.unit_id;
      first.appendChild(box);
    } else first.textContent = String(i + 1);
    tr.appendChild(first);
    const known = units.get(c.unit_id);
    const label = c.code ? `${c.code} ${c.name}` : known ? `${known[1]} ${known[2]}` : gettext("辖区外单元");
    for (const [text, cls] of [[label, "name"], [fmtDistance(c.distance_m), "num"], [fmtEta(c.eta_s), "num"], [String(c.on_duty), "num"], [kitText(c.kit_fit)]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    if (statusOf) {
      const td = document.createElement("td");
      td.className = "st";
      td.textContent = statusOf(c.unit_id) || "";
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  });
}

// --- raise -------------------------------------------------------------------------
export const raise = { lat: null, lon: null, candidates: [], incidentId: null };

export async function raisePreview() {
  const $ = (id) => document.getElementById(id);
  if (raise.lat == null) return;
  $("raise-point").textContent = `${raise.lat.toFixed(5)}, ${raise.lon.toFixed(5)}`;
  const q = new URLSearchParams({ lat: raise.lat, lon: raise.lon, kind: $("raise-kind").value, severity: $("raise-severity").value });
  const r = await api(`candidates/?${q}`);
  raise.candidates = r.ok ? r.body.candidates : [];
  raise.incidentId = null;
  candidateRows($("raise-candidates").querySelector("tbody"), raise.candidates, { statusOf: () => "" });
  $("raise-send").disabled = !r.ok;
  return r;
}

export function raiseBody() {
  const $ = (id) => document.getElementById(id);
  return {
    lat: raise.lat,
    lon: raise.lon,
    kind: $("raise-kind").value,
    severity: Number($("raise-severity").value),
    address: $("raise-address").value,
    description: $("raise-description").value,
  };
}

// Names the officer can type: the area's streets and units (first matches only).
export function placeOptions(area, text) {
  const list = document.getElementById("place-options");
  list.textContent = "";
  const t = (text || "").trim();
  if (t.length < 1) return;
  let n = 0;
  for (const [code, name, lat, lon] of area.streets) {
    if (n >= 15) break;
    if (name.includes(t) || code.startsWith(t)) {
      const o = document.createElement("option");
      o.value = name;
      o.dataset.lat = lat;
      o.dataset.lon = lon;
      list.appendChild(o);
      n++;
    }
  }
  for (const row of area.units) {
    if (n >= 30) break;
    if (row[2].includes(t) || row[1].startsWith(t)) {
      const o = document.createElement("option");
      o.value = `${row[1]} ${row[2]}`;
      list.appendChild(o);
      n++;
    }
  }
}

export function placeLookup(area, value) {
  const v = (value || "").trim();
  const street = area.streets.find((s) => s[1] === v);
  if (street) return { lat: street[2], lon: street[3], address: street[1] };
  const code = v.split(" ")[0];
  const unit = area.units.find((r) => r[1] === code || `${r[1]} ${r[2]}` === v);
  if (unit) return { lat: unit[3], lon: unit[4], address: unit[2] };
  return null;
}
