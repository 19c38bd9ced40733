// Web Push subscription.
import { CFG } from "./config.js";
import { api } from "./util.js";

// --- Web Push subscription -----------------------------------------------------------
export let swRegistration = null;
export function b64ToBytes(b64) {
  const pad = "=".repeat((4 - (b64.length % 4)) % 4);
  const raw = atob((b64 + pad).replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}
export async function enablePush() {
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

export function swRegistrationSet(reg) {
  swRegistration = reg;
}
