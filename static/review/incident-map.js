/* One incident's map: the scene with its arrival ring, arrival reports and the
 * responders' trails, with a replay button that walks the trails in time. */
import { pageData, pageLocale } from "./data.js";
import { draw } from "./map.js";

const data = pageData("map-data");
const svg = document.getElementById("incident-map");
if (data && svg) {
  const pts = [{ lat: data.scene.lat, lon: data.scene.lon, r: 8, fill: "#d9534f", title: gettext("现场"), ring_m: data.arrival_radius_m }];
  (data.reports || []).forEach(function (r) {
    pts.push({ lat: r.lat, lon: r.lon, r: 5, shape: "square", fill: r.verified ? "#2e9d5b" : "#f0ad4e", title: r.title });
  });
  const lats = [data.scene.lat], lons = [data.scene.lon];
  data.trails.forEach(function (t) { t.points.forEach(function (p) { lats.push(p[0]); lons.push(p[1]); }); });
  pts.forEach(function (p) { lats.push(p.lat); lons.push(p.lon); });
  // About 250 m around the scene, the reports and the trails.
  const bounds = { minLat: Math.min.apply(null, lats) - 0.0022, maxLat: Math.max.apply(null, lats) + 0.0022,
                   minLon: Math.min.apply(null, lons) - 0.0024, maxLon: Math.max.apply(null, lons) + 0.0024 };
  const map = draw(svg, { bounds: bounds, outlines: data.outlines, points: pts, trails: data.trails });
  const button = document.getElementById("replay");
  if (button) {
    const times = [];
    data.trails.forEach(function (t) { t.points.forEach(function (p) { times.push(Date.parse(p[2])); }); });
    const t0 = Math.min.apply(null, times), t1 = Math.max.apply(null, times);
    const clock = document.getElementById("replay-clock");
    button.addEventListener("click", function () {
      const steps = 60;
      let i = 0;
      const timer = setInterval(function () {
        const t = t0 + (t1 - t0) * (i / steps);
        map.setTime(t);
        clock.textContent = new Date(t).toLocaleTimeString(pageLocale());
        if (++i > steps) clearInterval(timer);
      }, 80);
    });
  }
}
