/* Server data for a page script: the JSON that a template wrote with
 * {{ value|json_script:"id" }} (no inline scripts: strict CSP). */
export function pageData(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

/* The page's language for dates and numbers ("zh-hans", "en"). */
export function pageLocale() {
  return document.documentElement.lang || "zh-hans";
}
