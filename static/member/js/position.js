// The phone's position, and sharing it while responding.
import { openIncidentId, renderAlert } from "./alert.js";
import { send } from "./socket.js";
import { state } from "./store.js";

// --- Phone position ------------------------------------------------------------------
export let position = null; // {lat, lon, accuracy, at}
export function locate(timeout = 5000) {
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
export let watchId = null;
export let lastShared = 0;
export function updateLocationSharing() {
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
