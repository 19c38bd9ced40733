/* The member's phone app: websocket client, alert screen, duty, report, offline shell.
 *
 * Protocol (docs/architecture.md): the server sends hello, incident.alert,
 * incident.update, incident.closed, duty, ping, resumed, ok/error; the page
 * sends resume {last_event_id}, ack, seen, accept, decline, on_site, handled,
 * location, pong. Event frames carry their IncidentEvent id: the page keeps
 * the highest one in localStorage, resumes from it after any reconnect and
 * drops ids it has already applied (the server re-sends a few on purpose).
 */
(function () {
  "use strict";

  const CFG = JSON.parse(document.getElementById("member-config").textContent);
  const T = JSON.parse(document.getElementById("member-strings").textContent);
  const $ = (id) => document.getElementById(id);

  // --- Persistent state (per member, so a shared phone never mixes accounts) ---------
  const LAST_MEMBER_KEY = "member:last";
  let memberId = Number(localStorage.getItem(LAST_MEMBER_KEY)) || null;
  const key = (name) => `member:${memberId}:${name}`;
  const load = (name, fallback) => {
    if (!memberId) return fallback;
    try {
      const raw = localStorage.getItem(key(name));
      return raw ? JSON.parse(raw) : fallback;
    } catch (e) {
      return fallback;
    }
  };
  const save = (name, value) => {
    if (memberId) localStorage.setItem(key(name), JSON.stringify(value));
  };

  const state = {
    me: null, // /m/api/me/ answer, cached for the offline shell
    incidents: {}, // id -> {summary, dispatch, responders, notified, ...}
    lastEventId: 0,
    seenIds: [], // recent event ids, to drop replayed duplicates
    outbox: [], // actions not yet confirmed by the server
  };

  function restore() {
    state.me = load("me", null);
    state.incidents = load("incidents", {});
    state.lastEventId = load("lastEventId", 0);
    state.seenIds = load("seenIds", []);
    state.outbox = load("outbox", []);
  }
  function persist() {
    save("me", state.me);
    save("incidents", state.incidents);
    save("lastEventId", state.lastEventId);
    save("seenIds", state.seenIds.slice(-500));
    save("outbox", state.outbox);
  }
  function adoptMember(id) {
    if (id === memberId) return;
    memberId = id;
    localStorage.setItem(LAST_MEMBER_KEY, String(id));
    restore();
  }

  // --- Small helpers -------------------------------------------------------------------
  function csrfToken() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  async function api(path, options = {}) {
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
  function errorText(body) {
    if (!body) return T.error;
    if (body.detail) return body.detail;
    const errors = body.errors || body;
    return Object.values(errors).flat().join(" ") || T.error;
  }
  let toastTimer = null;
  function toast(text) {
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (el.hidden = true), 4000);
  }
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString(CFG.language === "en" ? "en-GB" : "zh-CN", { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  function fmtDistance(m) {
    if (m == null) return "–";
    return m >= 1000 ? `${(m / 1000).toFixed(1)} ${T.km}` : `${Math.round(m)} ${T.meters}`;
  }
  const R = 6371008.8;
  const rad = (d) => (d * Math.PI) / 180;
  function haversine(lat1, lon1, lat2, lon2) {
    const dp = rad(lat2 - lat1), dl = rad(lon2 - lon1);
    const a = Math.sin(dp / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(dl / 2) ** 2;
    return 2 * R * Math.asin(Math.min(1, Math.sqrt(a)));
  }
  function bearing(lat1, lon1, lat2, lon2) {
    const p1 = rad(lat1), p2 = rad(lat2), dl = rad(lon2 - lon1);
    const x = Math.sin(dl) * Math.cos(p2);
    const y = Math.cos(p1) * Math.sin(p2) - Math.sin(p1) * Math.cos(p2) * Math.cos(dl);
    return ((Math.atan2(x, y) * 180) / Math.PI + 360) % 360;
  }

  // --- Phone position ------------------------------------------------------------------
  let position = null; // {lat, lon, accuracy, at}
  function locate(timeout = 5000) {
    return new Promise((resolve) => {
      if (!navigator.geolocation) return resolve(null);
      navigator.geolocation.getCurrentPosition(
        (p) => {
          position = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy, at: Date.now() };
          resolve(position);
        },
        () => resolve(null),
        { enableHighAccuracy: true, timeout, maximumAge: 30000 }
      );
    });
  }
  let watchId = null;
  let lastShared = 0;
  function updateLocationSharing() {
    const responding = Object.values(state.incidents).filter(
      (i) => i.status === "open" && ["accepted", "on_site"].includes(i.dispatch.status)
    );
    if (responding.length && watchId === null && navigator.geolocation) {
      watchId = navigator.geolocation.watchPosition(
        (p) => {
          position = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy, at: Date.now() };
          if (Date.now() - lastShared < 5000) return;
          lastShared = Date.now();
          for (const inc of Object.values(state.incidents)) {
            if (inc.status === "open" && ["accepted", "on_site"].includes(inc.dispatch.status)) {
              send({ type: "location", incident_id: inc.id, lat: position.lat, lon: position.lon, accuracy: Math.round(position.accuracy || 0) });
            }
          }
          if (openIncidentId) renderAlert();
        },
        () => {},
        { enableHighAccuracy: true, maximumAge: 5000 }
      );
    } else if (!responding.length && watchId !== null) {
      navigator.geolocation.clearWatch(watchId);
      watchId = null;
    }
  }

  // --- Sound and vibration -------------------------------------------------------------
  let audio = null;
  let ringing = null;
  function soundEnabled() {
    return audio && audio.state === "running";
  }
  async function enableSound() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      await audio.resume();
      beep(0.15);
    } catch (e) {
      /* no audio on this device: vibration and the screen still alert */
    }
    $("enable-sound").hidden = soundEnabled();
    enablePush();
  }
  function beep(seconds = 0.4, freq = 880) {
    if (!soundEnabled()) return;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.value = 0.25;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + seconds);
  }
  function ring() {
    stopRing();
    let n = 0;
    const tick = () => {
      beep(0.35, n % 2 ? 660 : 990);
      if (navigator.vibrate) navigator.vibrate([500, 200, 500]);
      if (++n >= 20) stopRing();
    };
    tick();
    ringing = setInterval(tick, 1200);
  }
  function stopRing() {
    if (ringing) clearInterval(ringing);
    ringing = null;
    if (navigator.vibrate) navigator.vibrate(0);
  }

  // --- Web Push subscription -----------------------------------------------------------
  let swRegistration = null;
  function b64ToBytes(b64) {
    const pad = "=".repeat((4 - (b64.length % 4)) % 4);
    const raw = atob((b64 + pad).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  async function enablePush() {
    if (!swRegistration || !("PushManager" in window) || !CFG.vapidKey) return;
    try {
      if (Notification.permission === "default") await Notification.requestPermission();
      if (Notification.permission !== "granted") return;
      const sub =
        (await swRegistration.pushManager.getSubscription()) ||
        (await swRegistration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(CFG.vapidKey) }));
      await api(CFG.apiBase + "api/push/", { method: "POST", body: JSON.stringify(sub.toJSON()) });
    } catch (e) {
      /* push needs a push service; the socket, SMS and voice still reach the member */
    }
  }

  // --- Websocket -----------------------------------------------------------------------
  let ws = null;
  let resumed = false;
  let attempt = 0;
  let reconnectTimer = null;
  let msgSeq = Date.now() % 1e9; // unique per page load; replies echo it
  const nextId = () => ++msgSeq;
  let replayBatch = [];
  let lastServerError = "";
  let signingOut = false;

  function setConn(kind) {
    const el = $("conn");
    el.dataset.state = kind;
    el.className = `conn conn-${kind}`;
    el.querySelector(".label").textContent = T[kind];
    $("offline-note").hidden = kind !== "offline" || !$("blocked").hidden;
    $("alert-conn").hidden = kind !== "offline";
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) return;
    setConn(attempt ? "offline" : "connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let socket;
    try {
      socket = new WebSocket(`${scheme}://${location.host}${CFG.wsPath}`);
    } catch (e) {
      return scheduleReconnect();
    }
    ws = socket;
    resumed = false;
    socket.onopen = () => setConn("connecting");
    socket.onmessage = (e) => {
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      handleFrame(frame);
    };
    socket.onclose = (e) => {
      if (ws !== socket) return;
      ws = null;
      resumed = false;
      if (e.code === 4403) {
        // Member or unit deactivated: say so, and look again only now and then.
        $("blocked").textContent = lastServerError || T.error;
        $("blocked").hidden = false;
        setConn("offline");
        clearTimeout(reconnectTimer);
        reconnectTimer = setTimeout(connect, 60000);
        return;
      }
      if (e.code === 4401) {
        // Signed out (here or elsewhere) or the session expired: back to sign-in.
        setConn("offline");
        if (navigator.onLine && !signingOut) window.location.href = CFG.signInUrl;
        return;
      }
      setConn("offline");
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    // Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped at 30 s, so a
    // restarted server is not hit by every phone in the city at the same moment.
    const cap = Math.min(30000, 1000 * 2 ** Math.min(attempt, 5));
    const delay = 300 + Math.random() * cap;
    attempt++;
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, delay);
  }

  function send(message) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify({ id: nextId(), ...message }));
    return true;
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "hello":
        attempt = 0;
        $("blocked").hidden = true;
        adoptMember(frame.member.id);
        if (state.me) state.me.member.on_duty = frame.on_duty;
        replayBatch = [];
        ws.send(JSON.stringify({ type: "resume", id: nextId(), last_event_id: state.lastEventId }));
        renderDuty();
        return;
      case "resumed":
        resumed = true;
        setConn("online");
        afterReplay();
        flushOutbox();
        return;
      case "ping":
        send({ type: "pong" });
        return;
      case "duty":
        if (state.me) {
          state.me.member.on_duty = frame.on_duty;
          persist();
        }
        renderDuty();
        return;
      case "ok":
        return onReply(frame, true);
      case "error":
        if (frame.id == null) {
          lastServerError = frame.message;
          toast(frame.message);
          return;
        }
        return onReply(frame, false);
      case "incident.alert":
      case "incident.update":
      case "incident.closed":
        return onEvent(frame);
      default:
        return;
    }
  }

  function seen(id) {
    if (id == null) return false;
    if (state.seenIds.includes(id)) return true;
    state.seenIds.push(id);
    if (state.seenIds.length > 600) state.seenIds = state.seenIds.slice(-500);
    if (id > state.lastEventId) state.lastEventId = id;
    return false;
  }

  function onEvent(frame) {
    if (seen(frame.id)) return;
    if (frame.type === "incident.alert") {
      const s = frame.incident;
      const known = state.incidents[s.id];
      state.incidents[s.id] = {
        id: s.id,
        summary: s,
        status: s.status,
        // A replay keeps what this phone already knows of its dispatch (newer than the alert).
        dispatch: known ? { ...frame.dispatch, status: known.dispatch.status, next_actions: known.dispatch.next_actions || frame.dispatch.next_actions } : frame.dispatch,
        responders: known ? known.responders : {},
        alertedAt: known ? known.alertedAt : s.discovered_at || new Date().toISOString(),
        replayed: !!frame.replay,
        notified: known ? known.notified : false,
        timestamps: { discovered_at: s.discovered_at, responded_at: s.responded_at, controlled_at: s.controlled_at, handled_at: s.handled_at },
      };
      send({ type: "ack", incident_id: s.id });
      if (frame.replay) replayBatch.push(s.id);
      else notify(s.id);
    } else {
      const inc = state.incidents[frame.incident_id];
      if (!inc) return;
      inc.status = frame.status;
      inc.timestamps = { discovered_at: frame.discovered_at, responded_at: frame.responded_at, controlled_at: frame.controlled_at, handled_at: frame.handled_at };
      const ownUnit = frame.unit_id === inc.dispatch.unit_id;
      if (["accepted", "on_site", "handled"].includes(frame.event)) {
        const who = frame.member_id || `u${frame.unit_id}`;
        inc.responders[who] = { name: (frame.data && frame.data.member_name) || "", unit_id: frame.unit_id, event: frame.event, me: frame.member_id === memberId };
      }
      // The server says where this unit's dispatch went and which actions it allows now.
      if (ownUnit && frame.dispatch_status) Object.assign(inc.dispatch, { status: frame.dispatch_status, next_actions: frame.next_actions || [] });
      if (frame.type === "incident.closed") inc.status = "closed";
    }
    persist();
    renderList();
    if (openIncidentId) renderAlert();
    updateLocationSharing();
  }

  function actionable(inc) {
    return inc.status === "open" && ["alerted", "accepted", "on_site"].includes(inc.dispatch.status);
  }

  function afterReplay() {
    // Alerts missed while offline: ring for the newest one still waiting for this unit.
    const waiting = replayBatch
      .map((id) => state.incidents[id])
      .filter((inc) => inc && !inc.notified && inc.status === "open" && inc.dispatch.status === "alerted");
    replayBatch = [];
    if (waiting.length) notify(waiting[waiting.length - 1].id);
    persist();
    renderList();
  }

  function notify(incidentId) {
    const inc = state.incidents[incidentId];
    if (!inc || !actionable(inc)) return;
    inc.notified = true;
    persist();
    openAlert(incidentId);
    if (inc.dispatch.status === "alerted") ring();
  }

  // --- Actions: each sent once, confirmed by the server's ok ---------------------------

  function act(action, incidentId) {
    if (state.outbox.some((a) => a.action === action && a.incident_id === incidentId)) return;
    stopRing();
    const item = { action, incident_id: incidentId, id: nextId(), sent: false, at: Date.now() };
    if (action === "accept" && position) Object.assign(item, { lat: position.lat, lon: position.lon });
    state.outbox.push(item);
    persist();
    if (resumed) transmit(item);
    else toast(T.queued);
    renderAlert();
  }

  function transmit(item) {
    const msg = { type: item.action, id: item.id, incident_id: item.incident_id };
    if (item.lat != null) Object.assign(msg, { lat: item.lat, lon: item.lon });
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(msg));
      item.sent = true;
      persist();
    }
  }

  function flushOutbox() {
    for (const item of [...state.outbox]) {
      const inc = state.incidents[item.incident_id];
      // Sent before the connection dropped and already applied (the replay shows
      // it): confirmed, do not send it again.
      const allowed = (inc && inc.dispatch.next_actions) || [];
      if (item.sent && inc && inc.dispatch.status !== "stood_down" && !allowed.includes(item.action) && item.action !== "decline") {
        state.outbox = state.outbox.filter((a) => a !== item);
        continue;
      }
      item.id = nextId();
      transmit(item);
    }
    persist();
    if (openIncidentId) renderAlert();
  }

  function onReply(frame, ok) {
    const item = state.outbox.find((a) => a.id === frame.id);
    if (!item) {
      if (!ok && frame.id != null) toast(frame.message);
      return;
    }
    state.outbox = state.outbox.filter((a) => a !== item);
    const inc = state.incidents[item.incident_id];
    if (ok) {
      if (inc && frame.dispatch_status) Object.assign(inc.dispatch, { status: frame.dispatch_status, next_actions: frame.next_actions || [] });
      if (inc) inc.message = { ok: true, text: `${T["status_" + frame.dispatch_status] || ""} · ${T.confirmed}` };
      if (item.action === "accept" && inc) locate().then(() => openIncidentId && renderAlert());
    } else if (inc) {
      inc.message = { ok: false, text: frame.message };
    } else {
      toast(frame.message);
    }
    persist();
    renderList();
    if (openIncidentId) renderAlert();
    updateLocationSharing();
  }

  // --- Alert screen --------------------------------------------------------------------
  let openIncidentId = null;
  let map = null;
  let layers = null;
  let pollTimer = null;

  function openAlert(incidentId) {
    openIncidentId = incidentId;
    $("alert").hidden = false;
    document.body.classList.add("alerting");
    history.replaceState(null, "", `#incident-${incidentId}`);
    send({ type: "seen", incident_id: incidentId });
    if (!position) locate().then(() => renderAlert());
    renderAlert();
    pollResponders();
  }
  function closeAlert() {
    stopRing();
    openIncidentId = null;
    $("alert").hidden = true;
    document.body.classList.remove("alerting");
    clearTimeout(pollTimer);
    history.replaceState(null, "", location.pathname);
  }

  async function pollResponders() {
    clearTimeout(pollTimer);
    const id = openIncidentId;
    if (!id) return;
    if (navigator.onLine) {
      try {
        const r = await api(`${CFG.apiBase}api/incidents/${id}/`);
        const inc = state.incidents[id];
        if (r.ok && inc) {
          inc.positions = r.body.responders;
          for (const p of r.body.responders) {
            const who = p.member_id || `u${p.unit_id}`;
            inc.responders[who] = { ...(inc.responders[who] || {}), name: p.name, unit_id: p.unit_id, event: p.event, unit_name: p.unit_name, me: p.member_id === memberId };
          }
          persist();
          if (openIncidentId === id) renderAlert();
        }
      } catch (e) {
        /* offline: keep what we have */
      }
    }
    if (openIncidentId === id) pollTimer = setTimeout(pollResponders, 5000);
  }

  function renderAlert() {
    const inc = state.incidents[openIncidentId];
    if (!inc) return;
    const s = inc.summary;
    $("alert").dataset.status = inc.dispatch.status;
    $("alert").dataset.incident = inc.id;
    $("alert-kind").textContent = `${s.kind_display}`;
    $("alert-severity").textContent = s.severity_display;
    $("alert-severity").className = `sev sev-${s.severity}`;
    $("alert-drill").hidden = !s.is_drill;
    $("alert-address").textContent = s.address || `${s.lat.toFixed(5)}, ${s.lon.toFixed(5)}`;
    $("alert-desc").textContent = s.description || "";

    const unit = state.me && state.me.unit;
    const from = position ? position : unit ? { lat: unit.lat, lon: unit.lon } : null;
    let distance = inc.dispatch.distance_m;
    let deg = null;
    if (from) {
      distance = haversine(from.lat, from.lon, s.lat, s.lon);
      deg = bearing(from.lat, from.lon, s.lat, s.lon);
    }
    $("alert-distance").textContent = fmtDistance(distance);
    const eta = distance != null ? (distance * CFG.detour) / CFG.walkSpeed : inc.dispatch.eta_s;
    $("alert-eta").textContent = eta != null ? `${Math.max(1, Math.round(eta / 60))} ${T.minutes}` : "–";
    $("alert-arrow").style.transform = deg == null ? "" : `rotate(${deg}deg)`;
    $("alert-arrow").dataset.bearing = deg == null ? "" : Math.round(deg);
    $("alert-bearing-note").textContent = position ? T.bearing_from_phone : T.bearing_from_unit;

    const names = Object.values(inc.responders)
      .filter((r) => r.event)
      .map((r) => `${r.name || r.unit_name || ""}${r.me ? T.me_suffix : ""}·${T["status_" + r.event] || r.event}`);
    $("alert-responders").textContent = names.length ? names.join("，") : T.nobody_yet;

    const closed = inc.status !== "open";
    $("alert-status").textContent = closed ? T.incident_closed : T["status_" + inc.dispatch.status] || "";
    const msg = $("alert-message");
    msg.hidden = !inc.message;
    if (inc.message) {
      msg.textContent = inc.message.text;
      msg.className = `alert-message ${inc.message.ok ? "ok" : "bad"}`;
    }
    renderActions(inc, closed);
    renderMap(inc, from);
  }

  function renderActions(inc, closed) {
    const box = $("alert-actions");
    box.innerHTML = "";
    const pending = (action) => state.outbox.find((a) => a.action === action && a.incident_id === inc.id);
    const button = (action, cls) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `btn btn-action ${cls}`;
      b.dataset.action = action;
      const p = pending(action);
      b.textContent = p ? (p.sent ? T.sending : T.queued) : T[action];
      b.disabled = !!p;
      b.addEventListener("click", () => act(action, inc.id));
      box.appendChild(b);
    };
    const st = inc.dispatch.status;
    box.classList.toggle("pair", !closed && st === "alerted");
    if (closed || st === "stood_down" || st === "handled") {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn btn-action btn-secondary";
      b.textContent = T.close;
      b.addEventListener("click", closeAlert);
      box.appendChild(b);
      return;
    }
    // The server's state machine decides which actions exist now (dispatch/actions.py).
    for (const action of inc.dispatch.next_actions || []) button(action, action === "decline" ? "btn-decline" : "btn-accept");
    if (st === "accepted" || st === "on_site") {
      const s = inc.summary;
      const nav = document.createElement("a");
      nav.className = "btn btn-action btn-nav";
      nav.dataset.action = "navigate";
      nav.textContent = T.navigate;
      // geo: opens the phone's map app; the AMap link takes WGS-84 explicitly.
      const isAndroid = /Android/i.test(navigator.userAgent);
      nav.href = isAndroid
        ? `geo:${s.lat},${s.lon}?q=${s.lat},${s.lon}`
        : `https://uri.amap.com/navigation?to=${s.lon},${s.lat},${encodeURIComponent(s.address || "")}&mode=walk&coordinate=wgs84&callnative=1`;
      nav.target = "_blank";
      nav.rel = "noopener";
      box.appendChild(nav);
    }
  }

  // Markers are WGS-84; GCJ-02 tiles (AMap, Tencent) need the shift.
  const onMap = (lat, lon) => (CFG.tileCrs === "gcj02" && window.Gcj02 ? Gcj02.fromWgs84(lat, lon) : [lat, lon]);

  function renderMap(inc, from) {
    if (!window.L) return;
    const s = inc.summary;
    if (!map) {
      map = L.map("alert-map", { zoomControl: true, attributionControl: !!CFG.tileUrl });
      if (CFG.tileUrl) L.tileLayer(CFG.tileUrl, { attribution: CFG.tileAttribution, maxZoom: 19 }).addTo(map);
      layers = L.layerGroup().addTo(map);
    }
    layers.clearLayers();
    const points = [onMap(s.lat, s.lon)];
    L.circleMarker(onMap(s.lat, s.lon), { radius: 12, color: "#7f1d1d", fillColor: "#dc2626", fillOpacity: 0.9, weight: 3 })
      .bindTooltip(s.kind_display, { permanent: true, direction: "top" })
      .addTo(layers);
    const unit = state.me && state.me.unit;
    if (unit) {
      L.circleMarker(onMap(unit.lat, unit.lon), { radius: 7, color: "#374151", fillColor: "#9ca3af", fillOpacity: 0.9 }).addTo(layers);
      points.push(onMap(unit.lat, unit.lon));
    }
    if (position) {
      L.circleMarker(onMap(position.lat, position.lon), { radius: 8, color: "#1e3a8a", fillColor: "#3b82f6", fillOpacity: 1 }).addTo(layers);
      points.push(onMap(position.lat, position.lon));
    }
    for (const p of inc.positions || []) {
      if (p.lat == null || p.member_id === memberId) continue;
      L.circleMarker(onMap(p.lat, p.lon), { radius: 7, color: "#065f46", fillColor: "#10b981", fillOpacity: 1 })
        .bindTooltip(p.name || "", { permanent: false })
        .addTo(layers);
      points.push(onMap(p.lat, p.lon));
    }
    map.invalidateSize();
    if (points.length > 1) map.fitBounds(points, { padding: [30, 30], maxZoom: 17 });
    else map.setView(points[0], 16);
  }

  // --- Lists, duty, unit ----------------------------------------------------------------
  function renderList() {
    const list = $("alert-list");
    const items = Object.values(state.incidents).sort((a, b) => b.id - a.id).slice(0, 20);
    list.innerHTML = items.length
      ? items
          .map((inc) => {
            const st = inc.status === "open" ? T["status_" + inc.dispatch.status] || "" : T.incident_closed;
            return `<li><button type="button" class="row-item ${actionable(inc) ? "live" : ""}" data-incident="${inc.id}">
              <span class="sev sev-${inc.summary.severity}">${esc(inc.summary.severity_display)}</span>
              <strong>${esc(inc.summary.kind_display)}</strong> <span class="muted">#${inc.id}</span>
              <span class="addr">${esc(inc.summary.address || "")}</span>
              <span class="muted">${esc(fmtTime(inc.alertedAt))} · ${esc(st)}${inc.replayed ? " · " + esc(T.replayed) : ""}</span>
            </button></li>`;
          })
          .join("")
      : `<li class="empty">${esc(T.no_alerts)}</li>`;
  }

  function renderDuty() {
    const me = state.me;
    if (!me) return;
    $("unit-name").textContent = me.unit.name;
    $("member-name").textContent = me.member.name;
    const on = me.member.on_duty;
    $("duty-card").classList.toggle("on", on);
    $("duty-label").textContent = on ? T.on_duty : T.off_duty;
    $("duty-since").textContent = on && me.member.duty_since ? `${T.duty_since} ${fmtTime(me.member.duty_since)}` : "";
    $("duty-toggle").textContent = on ? T.clock_out : T.clock_in;
    $("duty-toggle").className = `btn btn-block ${on ? "btn-secondary" : "btn-primary"}`;
    $("duty-hint").textContent = on ? "" : T.duty_off_note;
  }

  function renderUnit() {
    const me = state.me;
    if (!me) return;
    $("unit-card").innerHTML = `<strong>${esc(me.unit.name)}</strong> <span class="muted">${esc(me.unit.code)}</span><br>
      <span class="muted">${esc(me.unit.address || "")}</span><br>
      <span class="${me.kit_complete ? "good" : "bad"}">${esc(me.kit_complete ? T.kit_complete : T.kit_missing)}</span>`;
    $("kit-list").innerHTML = me.kit
      .map((k) => `<li class="${k.ok ? "" : "bad"}"><span>${esc(k.label)}</span><span>${k.quantity}/${k.required || "–"} ${esc(k.condition)}${k.expired ? " · " + esc(k.expires) : ""}</span></li>`)
      .join("");
    $("team-list").innerHTML = me.teammates
      .map((m) => `<li><span>${esc(m.name)}</span><span class="${m.on_duty ? "good" : "muted"}">${esc(m.on_duty ? T.on_duty : T.off_duty)}</span></li>`)
      .join("");
  }

  async function refreshMe() {
    try {
      const r = await api(CFG.apiBase + "api/me/");
      if (r.ok) {
        adoptMember(r.body.member.id);
        state.me = r.body;
        persist();
        renderDuty();
        renderUnit();
      }
    } catch (e) {
      /* offline: the cached copy stays */
    }
  }

  async function toggleDuty() {
    const me = state.me;
    if (!me) return;
    const btn = $("duty-toggle");
    btn.disabled = true;
    btn.textContent = T.sending;
    const where = await locate(4000);
    const body = { on_duty: !me.member.on_duty };
    if (where) Object.assign(body, { lat: where.lat, lon: where.lon, accuracy: Math.round(where.accuracy || 0) });
    try {
      const r = await api(CFG.apiBase + "api/duty/", { method: "POST", body: JSON.stringify(body) });
      if (r.ok) {
        state.me = r.body;
        persist();
        renderUnit();
      } else {
        toast(errorText(r.body));
      }
    } catch (e) {
      toast(T.offline);
    }
    btn.disabled = false;
    renderDuty();
  }

  async function renderHistory() {
    try {
      const r = await api(CFG.apiBase + "api/alerts/");
      if (!r.ok) return;
      $("history-list").innerHTML = r.body.results.length
        ? r.body.results
            .map((row) => `<li><span><strong>${esc(row.incident.kind_display)}</strong> #${row.incident.id}<br><span class="muted">${esc(row.incident.address)}</span></span>
              <span>${esc(row.dispatch.status_display)}<br><span class="muted">${esc(fmtTime(row.dispatch.alerted_at))}</span></span></li>`)
            .join("")
        : `<li class="empty">${esc(T.no_alerts)}</li>`;
    } catch (e) {
      /* offline */
    }
  }

  // --- One-button report ----------------------------------------------------------------
  let reportKind = null;
  let reportWhere = null;
  async function openReport() {
    $("report").hidden = false;
    $("report-error").hidden = true;
    reportKind = null;
    $("report-send").disabled = true;
    $("report-kinds").innerHTML = CFG.kinds
      .map((k) => `<button type="button" class="btn kind" data-kind="${esc(k.value)}">${esc(k.label)}</button>`)
      .join("");
    $("report-where").textContent = "…";
    reportWhere = await locate(5000);
    if (!reportWhere && state.me) reportWhere = { lat: state.me.unit.lat, lon: state.me.unit.lon, unit: true };
    $("report-where").textContent = reportWhere && !reportWhere.unit ? T.report_here : T.report_at_unit;
  }
  async function sendReport() {
    if (!reportKind || !reportWhere) return;
    $("report-send").disabled = true;
    try {
      const r = await api(CFG.reportUrl, {
        method: "POST",
        body: JSON.stringify({ kind: reportKind, lat: reportWhere.lat, lon: reportWhere.lon, description: $("report-note").value }),
      });
      if (r.ok) {
        $("report").hidden = true;
        $("report-note").value = "";
        toast(`${T.report_sent} #${r.body.incident.id}`);
      } else {
        $("report-error").textContent = errorText(r.body);
        $("report-error").hidden = false;
      }
    } catch (e) {
      $("report-error").textContent = T.offline;
      $("report-error").hidden = false;
    }
    $("report-send").disabled = false;
  }

  // --- Wiring ----------------------------------------------------------------------------
  function showView(name) {
    document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === `view-${name}`));
    document.querySelectorAll(".tabbar button").forEach((b) => b.classList.toggle("active", b.dataset.view === name));
    if (name === "history") renderHistory();
    if (name === "unit") renderUnit();
  }

  function wire() {
    $("enable-sound").addEventListener("click", enableSound);
    $("duty-toggle").addEventListener("click", toggleDuty);
    $("alert-later").addEventListener("click", closeAlert);
    $("alert-list").addEventListener("click", (e) => {
      const b = e.target.closest("[data-incident]");
      if (b) openAlert(Number(b.dataset.incident));
    });
    document.querySelectorAll(".tabbar button").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
    $("report-open").addEventListener("click", openReport);
    $("report-cancel").addEventListener("click", () => ($("report").hidden = true));
    $("report-send").addEventListener("click", sendReport);
    $("report-kinds").addEventListener("click", (e) => {
      const b = e.target.closest("[data-kind]");
      if (!b) return;
      reportKind = b.dataset.kind;
      document.querySelectorAll("#report-kinds .kind").forEach((k) => k.classList.toggle("chosen", k === b));
      $("report-send").disabled = false;
    });
    $("sign-out-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const form = e.target;
      signingOut = true;
      try {
        if (swRegistration) {
          const sub = await swRegistration.pushManager.getSubscription();
          if (sub) await sub.unsubscribe();
          if (swRegistration.active) swRegistration.active.postMessage({ type: "sign-out" });
        }
      } catch (err) {
        /* the server drops this session's subscriptions anyway */
      }
      if (memberId) Object.keys(localStorage).filter((k) => k.startsWith(`member:${memberId}:`)).forEach((k) => localStorage.removeItem(k));
      localStorage.removeItem(LAST_MEMBER_KEY);
      memberId = null; // frames still arriving (duty, close) must not write it back
      form.submit();
    });
    window.addEventListener("online", () => {
      attempt = 0;
      connect();
    });
    window.addEventListener("offline", () => setConn("offline"));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !ws) connect();
    });
    if (navigator.serviceWorker) {
      navigator.serviceWorker.addEventListener("message", (e) => {
        // A push arrived while this page is open: make sure the socket is live.
        if (e.data && e.data.type === "push" && !ws) connect();
      });
    }
  }

  async function start() {
    restore();
    wire();
    renderDuty();
    renderUnit();
    renderList();
    $("enable-sound").hidden = false;
    if (!navigator.onLine) setConn("offline");
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker
        .register(CFG.swUrl, { scope: CFG.apiBase })
        .then((reg) => {
          swRegistration = reg;
          if (window.Notification && Notification.permission === "granted") enablePush();
        })
        .catch(() => {});
    }
    const m = location.hash.match(/^#incident-(\d+)$/);
    if (m && state.incidents[m[1]]) openAlert(Number(m[1]));
    refreshMe();
    connect();
  }

  window.memberApp = { state, connect, act }; // for debugging on a phone, and tests
  start();
})();
