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
    const key = b64ToBytes(CFG.vapidKey);
    let sub = await swRegistration.pushManager.getSubscription();
    // A subscription made for another server key (the key file was replaced)
    // would be refused by the push service: replace it.
    if (sub && !sameKey(sub.options && sub.options.applicationServerKey, key)) {
      await sub.unsubscribe();
      sub = null;
    }
    sub = sub || (await swRegistration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
    // Sent on every page load: the server creates or refreshes the row (keyed by
    // endpoint, idempotent), so a row lost on the server, an endpoint the browser
    // rotated or a subscription moved to this member all heal themselves.
    await api(CFG.apiBase + "api/push/", { method: "POST", body: JSON.stringify(sub.toJSON()) });
  } catch (e) {
    /* push needs a push service; the socket, SMS and voice still reach the member */
  }
}

function sameKey(buffer, bytes) {
  if (!buffer) return true; // browsers that do not expose it: keep the subscription
  const a = new Uint8Array(buffer);
  return a.length === bytes.length && a.every((v, i) => v === bytes[i]);
}

export function swRegistrationSet(reg) {
  swRegistration = reg;
}
