/* WGS-84 <-> GCJ-02 ("Mars coordinates"), the shift AMap and Tencent tiles need.
 *
 * Everything the system stores and the phone's GPS gives is WGS-84; a map whose
 * tiles are GCJ-02 (settings.MAP_TILE_CRS = "gcj02") draws each marker at
 * fromWgs84(point). Outside mainland China the shift is zero. toWgs84 inverts
 * it by iteration (to about 1e-9 degrees). Checked against published sample
 * points in tests/e2e/test_member_browser.py.
 */
(function (root) {
  "use strict";
  const A = 6378245.0; // Krasovsky 1940 semi-major axis
  const EE = 0.00669342162296594323; // its first eccentricity squared
  const PI = Math.PI;

  function outOfChina(lat, lon) {
    return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271;
  }
  function tLat(x, y) {
    let r = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += ((20 * Math.sin(6 * x * PI) + 20 * Math.sin(2 * x * PI)) * 2) / 3;
    r += ((20 * Math.sin(y * PI) + 40 * Math.sin((y / 3) * PI)) * 2) / 3;
    r += ((160 * Math.sin((y / 12) * PI) + 320 * Math.sin((y * PI) / 30)) * 2) / 3;
    return r;
  }
  function tLon(x, y) {
    let r = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += ((20 * Math.sin(6 * x * PI) + 20 * Math.sin(2 * x * PI)) * 2) / 3;
    r += ((20 * Math.sin(x * PI) + 40 * Math.sin((x / 3) * PI)) * 2) / 3;
    r += ((150 * Math.sin((x / 12) * PI) + 300 * Math.sin((x / 30) * PI)) * 2) / 3;
    return r;
  }
  function delta(lat, lon) {
    const radLat = (lat / 180) * PI;
    let magic = Math.sin(radLat);
    magic = 1 - EE * magic * magic;
    const sq = Math.sqrt(magic);
    const dLat = (tLat(lon - 105, lat - 35) * 180) / (((A * (1 - EE)) / (magic * sq)) * PI);
    const dLon = (tLon(lon - 105, lat - 35) * 180) / ((A / sq) * Math.cos(radLat) * PI);
    return [dLat, dLon];
  }
  function fromWgs84(lat, lon) {
    if (outOfChina(lat, lon)) return [lat, lon];
    const d = delta(lat, lon);
    return [lat + d[0], lon + d[1]];
  }
  function toWgs84(lat, lon) {
    if (outOfChina(lat, lon)) return [lat, lon];
    let wLat = lat, wLon = lon;
    for (let i = 0; i < 30; i++) {
      const g = fromWgs84(wLat, wLon);
      const eLat = g[0] - lat, eLon = g[1] - lon;
      wLat -= eLat;
      wLon -= eLon;
      if (Math.abs(eLat) < 1e-10 && Math.abs(eLon) < 1e-10) break;
    }
    return [wLat, wLon];
  }
  root.Gcj02 = { fromWgs84, toWgs84, outOfChina };
})(typeof self !== "undefined" ? self : this);
