/* The early-warning map: areas coloured by their index; at street level the
 * units themselves, with the map fitted to them. */
import { pageData } from "./data.js";
import { draw } from "./map.js";

const data = pageData("map-data");
const svg = document.getElementById("warning-map");
if (data && svg) {
  data.outlines.forEach(function (o) { if (!o.fill) o.fill = "#f4f6f8"; });
  if (svg.dataset.level === "unit" && data.points.length) {
    // Units of one street: fit the map to them, the district outline around.
    const lats = data.points.map(function (p) { return p.lat; }), lons = data.points.map(function (p) { return p.lon; });
    data.bounds = { minLat: Math.min.apply(null, lats), maxLat: Math.max.apply(null, lats),
                    minLon: Math.min.apply(null, lons), maxLon: Math.max.apply(null, lons) };
  }
  draw(svg, data);
}
