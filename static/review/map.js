/* A map with no tiles: district outlines, grid cells, points and trails drawn as SVG.
 * Equirectangular projection around the centre latitude (fine at city scale).
 * draw(svgElement, {bounds?, outlines, cells, points, trails, labels}) */
const NS = "http://www.w3.org/2000/svg";

function el(name, attrs, parent) {
  var node = document.createElementNS(NS, name);
  for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(node);
  return node;
}

function eachRing(geometry, fn) {
  if (!geometry) return;
  var polys = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  polys.forEach(function (rings) { rings.forEach(fn); });
}

function boundsOf(layers) {
  var b = { minLat: 90, maxLat: -90, minLon: 180, maxLon: -180 };
  function add(lat, lon) {
    b.minLat = Math.min(b.minLat, lat); b.maxLat = Math.max(b.maxLat, lat);
    b.minLon = Math.min(b.minLon, lon); b.maxLon = Math.max(b.maxLon, lon);
  }
  (layers.outlines || []).forEach(function (o) {
    eachRing(o.geometry || o, function (ring) { ring.forEach(function (p) { add(p[1], p[0]); }); });
  });
  (layers.points || []).forEach(function (p) { add(p.lat, p.lon); });
  (layers.trails || []).forEach(function (t) { t.points.forEach(function (p) { add(p[0], p[1]); }); });
  (layers.cells || []).forEach(function (c) { add(c.lat, c.lon); });
  return b;
}

export function draw(svg, layers) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  var b = layers.bounds || boundsOf(layers);
  if (b.minLat > b.maxLat) b = { minLat: 23.0, maxLat: 23.3, minLon: 113.1, maxLon: 113.5 };
  // Keep at least ~300 m across so one point does not fill the map.
  var padLat = Math.max((b.maxLat - b.minLat) * 0.05, 0.0015);
  var padLon = Math.max((b.maxLon - b.minLon) * 0.05, 0.0015);
  b = { minLat: b.minLat - padLat, maxLat: b.maxLat + padLat, minLon: b.minLon - padLon, maxLon: b.maxLon + padLon };
  var k = Math.cos(((b.minLat + b.maxLat) / 2) * Math.PI / 180);
  var W = 1000, H = Math.max(200, Math.round(W * (b.maxLat - b.minLat) / ((b.maxLon - b.minLon) * k)));
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  function x(lon) { return ((lon - b.minLon) / (b.maxLon - b.minLon)) * W; }
  function y(lat) { return ((b.maxLat - lat) / (b.maxLat - b.minLat)) * H; }
  var pxPerDegLat = H / (b.maxLat - b.minLat);

  var gOutline = el("g", { "class": "outlines" }, svg);
  (layers.outlines || []).forEach(function (o) {
    var geometry = o.geometry || o, d = "";
    eachRing(geometry, function (ring) {
      d += ring.map(function (p, i) { return (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1); }).join("") + "Z";
    });
    var path = el("path", { d: d, fill: o.fill || "#f4f6f8", "fill-opacity": o.opacity || (o.fill ? 0.7 : 1), stroke: o.stroke || "#8a96a3", "stroke-width": 1.2, "fill-rule": "evenodd" }, gOutline);
    if (o.href) {
      path.style.cursor = "pointer";
      path.addEventListener("click", function () { window.location = o.href; });
    }
    if (o.title) el("title", {}, path).textContent = o.title;
  });

  var gCells = el("g", { "class": "cells" }, svg);
  (layers.cells || []).forEach(function (c) {
    var hLat = c.dlat / 2, hLon = c.dlon / 2;
    var r = el("rect", {
      x: x(c.lon - hLon), y: y(c.lat + hLat),
      width: Math.max(0.5, x(c.lon + hLon) - x(c.lon - hLon)),
      height: Math.max(0.5, y(c.lat - hLat) - y(c.lat + hLat)),
      fill: c.fill || "#d9534f", "fill-opacity": c.opacity || 0.45
    }, gCells);
    if (c.title) el("title", {}, r).textContent = c.title;
  });

  var gTrails = el("g", { "class": "trails" }, svg);
  var trailNodes = (layers.trails || []).map(function (t, i) {
    var color = t.color || ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"][i % 6];
    var line = el("polyline", { points: "", fill: "none", stroke: color, "stroke-width": 3, "stroke-linejoin": "round", opacity: 0.9 }, gTrails);
    var head = el("circle", { r: 6, fill: color, stroke: "#fff", "stroke-width": 2 }, gTrails);
    el("title", {}, head).textContent = t.name || "";
    return { data: t, line: line, head: head };
  });

  var gPoints = el("g", { "class": "points" }, svg);
  (layers.points || []).forEach(function (p) {
    var node;
    if (p.ring_m) {
      el("circle", { cx: x(p.lon), cy: y(p.lat), r: (p.ring_m / 111320) * pxPerDegLat, fill: "none", stroke: p.fill || "#333", "stroke-dasharray": "6 4", "stroke-width": 1.5 }, gPoints);
    }
    if (p.shape === "square") {
      var s = p.r || 4;
      node = el("rect", { x: x(p.lon) - s, y: y(p.lat) - s, width: 2 * s, height: 2 * s, fill: p.fill || "#333", stroke: p.stroke || "#fff", "stroke-width": 1 }, gPoints);
    } else {
      node = el("circle", { cx: x(p.lon), cy: y(p.lat), r: p.r || 4, fill: p.fill || "#333", stroke: p.stroke || "#fff", "stroke-width": 1 }, gPoints);
    }
    if (p.title) el("title", {}, node).textContent = p.title;
    if (p.href) { node.style.cursor = "pointer"; node.addEventListener("click", function () { window.location = p.href; }); }
    if (p.label) {
      var t = el("text", { x: x(p.lon) + (p.r || 4) + 3, y: y(p.lat) + 4, "font-size": 13, fill: "#222" }, gPoints);
      t.textContent = p.label;
    }
  });

  // Replay: show each trail up to time t (ms since epoch); no t shows everything.
  function setTime(t) {
    trailNodes.forEach(function (n) {
      var pts = n.data.points.filter(function (p) { return t === undefined || Date.parse(p[2]) <= t; });
      n.line.setAttribute("points", pts.map(function (p) { return x(p[1]).toFixed(1) + "," + y(p[0]).toFixed(1); }).join(" "));
      var last = pts[pts.length - 1];
      n.head.setAttribute("visibility", last ? "visible" : "hidden");
      if (last) { n.head.setAttribute("cx", x(last[1])); n.head.setAttribute("cy", y(last[0])); }
    });
  }
  setTime(undefined);
  return { setTime: setTime };
}
