// Server data from json_script: settings for the page and its translated strings.

export const CFG = JSON.parse(document.getElementById("member-config").textContent);
export const T = JSON.parse(document.getElementById("member-strings").textContent);
export const $ = (id) => document.getElementById(id);
