// Persistent state in localStorage, per member, so a shared phone never mixes accounts.
import { $ } from "./config.js";
import { api } from "./util.js";

// --- Persistent state (per member, so a shared phone never mixes accounts) ---------
export const LAST_MEMBER_KEY = "member:last";
export let memberId = Number(localStorage.getItem(LAST_MEMBER_KEY)) || null;
export const key = (name) => `member:${memberId}:${name}`;
export const load = (name, fallback) => {
  if (!memberId) return fallback;
  try {
    const raw = localStorage.getItem(key(name));
    return raw ? JSON.parse(raw) : fallback;
  } catch (e) {
    return fallback;
  }
};
export const save = (name, value) => {
  if (memberId) localStorage.setItem(key(name), JSON.stringify(value));
};

export const state = {
  me: null, // /m/api/me/ answer, cached for the offline shell
  incidents: {}, // id -> {summary, dispatch, responders, notified, ...}
  lastEventId: 0,
  seenIds: [], // recent event ids, to drop replayed duplicates
  outbox: [], // actions not yet confirmed by the server
};

export function restore() {
  state.me = load("me", null);
  state.incidents = load("incidents", {});
  state.lastEventId = load("lastEventId", 0);
  state.seenIds = load("seenIds", []);
  state.outbox = load("outbox", []);
}
export function persist() {
  save("me", state.me);
  save("incidents", state.incidents);
  save("lastEventId", state.lastEventId);
  save("seenIds", state.seenIds.slice(-500));
  save("outbox", state.outbox);
}
export function adoptMember(id) {
  if (id === memberId) return;
  memberId = id;
  localStorage.setItem(LAST_MEMBER_KEY, String(id));
  restore();
}

// Sign-out: forget this member's data on the phone; frames still arriving (duty,
// close) must not write it back.
export function memberForget() {
  if (memberId) Object.keys(localStorage).filter((k) => k.startsWith(`member:${memberId}:`)).forEach((k) => localStorage.removeItem(k));
  localStorage.removeItem(LAST_MEMBER_KEY);
  memberId = null;
}
