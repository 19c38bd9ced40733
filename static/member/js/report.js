// One-button report.
import { $, CFG, T } from "./config.js";
import { locate } from "./position.js";
import { state } from "./store.js";
import { api, errorText, esc, toast } from "./util.js";

// --- One-button report ----------------------------------------------------------------
export let reportKind = null;
export let reportWhere = null;
export async function openReport() {
  $("report").hidden = false;
  $("report-error").hidden = true;
  reportKind = null;
  $("report-send").disabled = true;
  $("report-kinds").innerHTML = CFG.kinds
    .map((k) => `<button type="button" class="btn kind" data-kind="${esc(k.value)}">${esc(k.label)}</button>`)
    .join("");
  $("report-where").textContent = "…";
  reportWhere = await locate(5000);
  if (!reportWhere && state.me) reportWhere = { lat: state.me.unit.lat, lon: state.me.unit.lon, unit: true };
  $("report-where").textContent = reportWhere && !reportWhere.unit ? T.report_here : T.report_at_unit;
}
export async function sendReport() {
  if (!reportKind || !reportWhere) return;
  $("report-send").disabled = true;
  try {
    const r = await api(CFG.reportUrl, {
      method: "POST",
      body: JSON.stringify({ kind: reportKind, lat: reportWhere.lat, lon: reportWhere.lon, description: $("report-note").value }),
    });
    if (r.ok) {
      $("report").hidden = true;
      $("report-note").value = "";
      toast(`${T.report_sent} #${r.body.incident.id}`);
    } else {
      $("report-error").textContent = errorText(r.body);
      $("report-error").hidden = false;
    }
  } catch (e) {
    $("report-error").textContent = T.offline;
    $("report-error").hidden = false;
  }
  $("report-send").disabled = false;
}

export function reportKindChoose(kind) {
  reportKind = kind;
}
