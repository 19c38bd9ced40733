// The board's map: district outlines, street centres and the area's units drawn
// on a canvas (no tiles unless MAP_TILE_URL names a server), the open incidents,
// their alerted units by state, gathering points and responders' live positions.
import { CFG, units } from "./state.js";

let map = null;
let renderer = null; // the area: thousands of points, redrawn on pan and zoom only
let live = null; // what changes: incidents, their units, gathering points
let movers = null; // responders' positions
const layers = {};
const incidentMarkers = new Map(); // incident id -> {scene, gather, units: Map, people: Map}

// Markers are WGS-84; GCJ-02 tiles (AMap, Tencent) need the shift, and a point
// clicked on them the reverse.
const toMap = (lat, lon) => (CFG.tileCrs === "gcj02" && CFG.tileUrl && window.Gcj02 ? Gcj02.fromWgs84(lat, lon) : [lat, lon]);
const fromMap = (lat, lon) => (CFG.tileCrs === "gcj02" && CFG.tileUrl && window.Gcj02 ? Gcj02.toWgs84(lat, lon) : [lat, lon]);

export const STATE_COLOURS = {
  alerted: "#f59e0b",
  accepted: "#2563eb",
  declined: "#6b7280",
  on_site: "#16a34a",
  handled: "#065f46",
  stood_down: "#cbd5e1",
};

export function mapInit(onClick) {
  renderer = L.canvas({ padding: 0.2 });
  // Live markers are SVG, apart from the area's canvas: a moving responder then
  // repaints its own small shape, where redrawing a map-sized software canvas
  // cost each position draw a 30-50 ms compositor commit (bench/board.py trace).
  live = L.svg({ padding: 0.2 });
  // Responders move every few seconds each: their own SVG, so that a move
  // repaints the 500 responders' shapes, not the units' and incidents' too.
  movers = L.svg({ padding: 0.2, pane: "people" });
  map = L.map("map", { preferCanvas: true, renderer, zoomControl: true, attributionControl: !!CFG.tileUrl, minZoom: 8, maxZoom: 19 });
  map.createPane("people").style.zIndex = 450; // above the overlay pane (400), below markers
  if (CFG.tileUrl) L.tileLayer(CFG.tileUrl, { attribution: CFG.tileAttribution, maxZoom: 19 }).addTo(map);
  layers.outlines = L.layerGroup().addTo(map);
  layers.streets = L.layerGroup().addTo(map);
  layers.units = L.layerGroup().addTo(map);
  layers.incidents = L.layerGroup().addTo(map);
  map.setView([23.13, 113.32], 11);
  map.on("click", (ev) => {
    const [lat, lon] = fromMap(ev.latlng.lat, ev.latlng.lng);
    onClick(lat, lon);
  });
  return map;
}

export function drawArea(area) {
  const bounds = [];
  for (const o of area.outlines) {
    const shifted = L.geoJSON(o.geometry, {
      renderer,
      coordsToLatLng: (c) => L.latLng(toMap(c[1], c[0])),
      style: { color: "#64748b", weight: 1.2, fill: !CFG.tileUrl, fillColor: "#f1f5f9", fillOpacity: 1, interactive: false },
    });
    shifted.addTo(layers.outlines);
    bounds.push(shifted.getBounds());
  }
  for (const [, name, lat, lon] of area.streets) {
    L.circleMarker(toMap(lat, lon), { renderer, radius: 2, color: "#94a3b8", weight: 1, fill: false, interactive: false }).addTo(layers.streets);
    if (area.streets.length <= 40) L.tooltip({ permanent: true, direction: "center", className: "street-label" }).setLatLng(toMap(lat, lon)).setContent(name).addTo(layers.streets);
  }
  for (const row of area.units) {
    units.set(row[0], row);
    L.circleMarker(toMap(row[3], row[4]), { renderer, radius: 2, stroke: false, fillColor: "#475569", fillOpacity: 0.55, interactive: false }).addTo(layers.units);
  }
  if (bounds.length) {
    let b = bounds[0];
    for (const x of bounds.slice(1)) b = b.extend(x);
    map.fitBounds(b, { padding: [10, 10] });
  } else if (area.units.length) {
    map.fitBounds(area.units.map((r) => toMap(r[3], r[4])), { padding: [20, 20] });
  }
}

function group(id) {
  let g = incidentMarkers.get(id);
  if (!g) {
    g = { layer: L.layerGroup().addTo(layers.incidents), scene: null, gather: null, units: new Map(), people: new Map() };
    incidentMarkers.set(id, g);
  }
  return g;
}

export function drawIncident(inc, selected) {
  const s = inc.summary;
  if (!s) return;
  const g = group(inc.id);
  const closed = inc.status !== "open";
  if (closed) {
    g.layer.remove();
    incidentMarkers.delete(inc.id);
    return;
  }
  const colour = s.is_drill ? "#7c3aed" : "#dc2626";
  if (!g.scene) {
    g.scene = L.circleMarker(toMap(s.lat, s.lon), { renderer: live, radius: 10, color: "#7f1d1d", weight: 3, fillColor: colour, fillOpacity: 0.9 })
      .bindTooltip(`#${s.id} ${s.kind_display}`, { permanent: true, direction: "top", className: "incident-label" })
      .addTo(g.layer);
    g.scene.on("click", (ev) => {
      L.DomEvent.stopPropagation(ev);
      document.dispatchEvent(new CustomEvent("board:select", { detail: inc.id }));
    });
  }
  // Each Leaflet style or position write rewrites the shape's SVG: an update of
  // one unit must not rewrite every marker of its incident (bench/board.py).
  if (g.selected !== selected) {
    g.selected = selected;
    g.scene.setStyle({ weight: selected ? 5 : 3 });
  }
  const gp = s.gathering;
  if (gp) {
    const at = toMap(gp.lat, gp.lon);
    if (!g.gather) {
      g.gather = L.circleMarker(at, { renderer: live, radius: 9, color: "#065f46", weight: 3, fillColor: "#34d399", fillOpacity: 0.95 })
        .bindTooltip("", { permanent: true, direction: "right", className: "gather-label" })
        .addTo(g.layer);
    }
    g.gather.setLatLng(at);
    g.gather.setTooltipContent(`${gettext("集结点")} #${s.id}${gp.note ? " · " + gp.note : ""}`);
  } else if (g.gather) {
    g.gather.remove();
    g.gather = null;
  }
  for (const u of inc.units.values()) {
    if (u.lat == null) continue;
    let m = g.units.get(u.unit_id);
    if (!m) {
      m = L.circleMarker(toMap(u.lat, u.lon), { renderer: live, radius: 6, weight: 3, fillOpacity: 0.25 }).bindTooltip("").addTo(g.layer);
      g.units.set(u.unit_id, m);
    }
    if (m.drawnStatus !== u.status) {
      m.drawnStatus = u.status;
      const c = STATE_COLOURS[u.status] || "#f59e0b";
      m.setStyle({ color: c, fillColor: c });
    }
    const label = `${u.code} ${u.name}`;
    if (m.drawnLabel !== label) {
      m.drawnLabel = label;
      m.setTooltipContent(label);
    }
  }
  drawPositions(inc);
}

// Every responder's marker, or only those in ``memberIds`` (the ones that moved).
// Hundreds of positions a second: no array or string made per position beyond
// what Leaflet makes to move the marker.
export function drawPositions(inc, memberIds) {
  const g = incidentMarkers.get(inc.id);
  if (!g) return;
  if (memberIds) {
    for (const id of memberIds) {
      const p = inc.positions.get(id);
      if (p) drawPosition(g, p);
    }
  } else {
    for (const p of inc.positions.values()) drawPosition(g, p);
  }
}
function drawPosition(g, p) {
  let m = g.people.get(p.member_id);
  if (!m) {
    m = L.circleMarker(toMap(p.lat, p.lon), { renderer: movers, radius: 5, color: "#1e3a8a", weight: 2, fillColor: "#3b82f6", fillOpacity: 1 }).bindTooltip(p.name || `#${p.member_id}`).addTo(g.layer);
    g.people.set(p.member_id, m);
  } else if (m.drawnLat !== p.lat || m.drawnLon !== p.lon) {
    m.setLatLng(toMap(p.lat, p.lon));
  }
  m.drawnLat = p.lat;
  m.drawnLon = p.lon;
}

export function focus(inc) {
  if (!inc || !inc.summary) return;
  const pts = [toMap(inc.summary.lat, inc.summary.lon)];
  for (const u of inc.units.values()) if (u.lat != null && u.status !== "stood_down") pts.push(toMap(u.lat, u.lon));
  if (pts.length > 1) map.fitBounds(pts, { padding: [40, 40], maxZoom: 17 });
  else map.setView(pts[0], 16);
}

let pick = null;
export function pickMarker(lat, lon) {
  if (pick) pick.remove();
  pick = L.circleMarker(toMap(lat, lon), { renderer: live, radius: 8, color: "#111827", weight: 2, dashArray: "3 3", fillColor: "#fde047", fillOpacity: 0.8 }).addTo(map);
}
