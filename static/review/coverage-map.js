/* The coverage map: grid cells no ready unit reaches in time (red) or only just
 * (amber), every unit as a dot, incidents linked to their review page. */
import { pageData } from "./data.js";
import { draw } from "./map.js";

function etaTitle(eta) {
  return interpolate(gettext("ETA %s 秒"), [eta]);
}

const data = pageData("map-data");
const svg = document.getElementById("coverage-map");
if (data && svg) {
  const cells = [];
  if (data.coverage) {
    const t = data.coverage.target_s, dlat = data.coverage.dlat, dlon = data.coverage.dlon;
    data.coverage.cells.forEach(function (c) {
      const eta = c[2];
      if (eta === null || eta > t) {
        cells.push({ lat: c[0], lon: c[1], dlat: dlat, dlon: dlon, fill: "#d9534f", opacity: 0.45, title: eta === null ? gettext("无单元") : etaTitle(eta) });
      } else if (eta > 0.8 * t) {
        cells.push({ lat: c[0], lon: c[1], dlat: dlat, dlon: dlon, fill: "#f0ad4e", opacity: 0.4, title: etaTitle(eta) });
      }
    });
  }
  const points = data.units.map(function (u) { return { lat: u[0], lon: u[1], r: 1.3, fill: "#555", stroke: "none" }; });
  data.incidents.forEach(function (i) {
    points.push({ lat: i[1], lon: i[2], r: 3.5, fill: i[4] ? "#2e9d5b" : "#c0392b", title: "#" + i[0], href: "/review/incidents/" + i[0] + "/" });
  });
  draw(svg, { outlines: data.outlines, cells: cells, points: points });
}
