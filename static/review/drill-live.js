/* A drill's page, live: it watches the drill's incident on the supervisor socket
 * and, when a batch of units is alerted or a unit answers, fetches the page's
 * figures again (at most once a second, and once more after the last frame, as
 * the final batch marks the drill "sent" without a frame of its own). */
const live = document.getElementById("drill-live");
if (live) {
  const incidentId = Number(live.dataset.incident);
  let timer = null;
  let last = 0;

  async function refresh() {
    last = Date.now();
    const response = await fetch(live.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const d = await response.json();
    document.getElementById("drill-status").textContent = d.status_display;
    document.getElementById("drill-alerted").textContent = d.units_alerted;
    document.getElementById("drill-total").textContent = d.units_total;
    for (const [key, value] of Object.entries(d.kpis)) {
      const el = document.querySelector(`[data-kpi="${key}"]`);
      if (el) el.textContent = value == null ? "—" : value;
    }
    live.dataset.status = d.status;
  }

  function soon() {
    clearTimeout(timer);
    const wait = Math.max(0, 1000 - (Date.now() - last));
    timer = setTimeout(() => {
      refresh();
      timer = setTimeout(refresh, 3000);
    }, wait);
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/supervisor/`);
    ws.addEventListener("message", (msg) => {
      const frame = JSON.parse(msg.data);
      if (frame.type === "hello") {
        ws.send(JSON.stringify({ type: "watch", id: 1, incident_id: incidentId }));
        live.textContent = gettext("实时");
        soon(); // whatever happened while the socket was away
      } else if (frame.type === "ping") {
        ws.send(JSON.stringify({ type: "pong", id: frame.id }));
      } else if (frame.incident_id === incidentId) {
        soon();
      }
    });
    ws.addEventListener("close", () => {
      live.textContent = "";
      setTimeout(connect, 2000);
    });
  }
  connect();
}
