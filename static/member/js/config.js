// Server data from json_script: settings for the page and its translated strings.

export const CFG = JSON.parse(document.getElementById("member-config").textContent);
export const T = JSON.parse(document.getElementById("member-strings").textContent);
export const $ = (id) => document.getElementById(id);

// Frames are built once for every phone on the unit, in no one's language, so they
// carry codes; the page names kinds and severities in its own language.
const KINDS = Object.fromEntries((CFG.kinds || []).map((k) => [k.value, k.label]));
const SEVERITIES = Object.fromEntries((CFG.severities || []).map((k) => [String(k.value), k.label]));
export const kindLabel = (s) => KINDS[s.kind] || s.kind_display || s.kind;
export const severityLabel = (s) => SEVERITIES[String(s.severity)] || s.severity_display || "";
