// Small helpers: the JSON API with CSRF, toasts, escaping, formats, distance and bearing.
import { $, CFG, T } from "./config.js";

// --- Small helpers -------------------------------------------------------------------
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}
export async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    ...options,
  });
  if (response.status === 401) {
    window.location.href = CFG.signInUrl;
    throw new Error("signed out");
  }
  const body = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, body };
}
export function errorText(body) {
  if (!body) return T.error;
  if (body.detail) return body.detail;
  const errors = body.errors || body;
  return Object.values(errors).flat().join(" ") || T.error;
}
export let toastTimer = null;
export function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), 4000);
}
export const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(CFG.language === "en" ? "en-GB" : "zh-CN", { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
export function fmtDistance(m) {
  if (m == null) return "–";
  return m >= 1000 ? `${(m / 1000).toFixed(1)} ${T.km}` : `${Math.round(m)} ${T.meters}`;
}
export const R = 6371008.8;
export const rad = (d) => (d * Math.PI) / 180;
export function haversine(lat1, lon1, lat2, lon2) {
  const dp = rad(lat2 - lat1), dl = rad(lon2 - lon1);
  const a = Math.sin(dp / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(dl / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(a)));
}
export function bearing(lat1, lon1, lat2, lon2) {
  const p1 = rad(lat1), p2 = rad(lat2), dl = rad(lon2 - lon1);
  const x = Math.sin(dl) * Math.cos(p2);
  const y = Math.cos(p1) * Math.sin(p2) - Math.sin(p1) * Math.cos(p2) * Math.cos(dl);
  return ((Math.atan2(x, y) * 180) / Math.PI + 360) % 360;
}
