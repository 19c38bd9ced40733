/* Service worker of the member app (served at /m/sw.js, scope /m/).
   Shell: network first for the page, cache first for static files; the page
   keeps the last alerts and queued actions itself (localStorage). Push: shows
   the alert even when no page is open. */
const VERSION = "{{ version }}";
const CACHE = "member-shell-" + VERSION;
const SHELL_URL = "{{ shell_url }}";
const STATIC_URLS = {{ static_urls|safe }};

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) => Promise.all([
      cache.addAll(STATIC_URLS),
      // The shell only as a signed-in member sees it. Signed out, /m/ redirects
      // to the sign-in page: following that would cache the sign-in page as the
      // shell, and would render it behind the page's back with a fresh CSRF
      // cookie, so the form on screen would then be refused (403). The next
      // signed-in load caches the shell instead (network first, below).
      fetch(SHELL_URL, { redirect: "manual" }).then((response) =>
        response.ok && !response.redirected ? cache.put(SHELL_URL, response) : undefined),
    ])).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("member-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname.startsWith(SHELL_URL)) {
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (url.pathname === SHELL_URL && response.ok && !response.redirected) {
            const copy = response.clone();
            caches.open(CACHE).then((cache) => cache.put(SHELL_URL, copy));
          }
          return response;
        })
        .catch(() => caches.match(SHELL_URL).then((hit) => hit || Response.error()))
    );
    return;
  }
  if (url.pathname.startsWith("/static/")) {
    event.respondWith(
      caches.match(request).then((hit) => hit || fetch(request).then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      }))
    );
  }
});

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = { body: event.data && event.data.text() }; }
  // Always show a notification, whatever the payload: iOS revokes the subscription
  // of a site whose pushes show nothing, and an alert must stay on screen
  // (requireInteraction) and sound again for each new message (renotify, one tag
  // per incident, so a newer wave replaces its incident's card, not another's).
  const title = data.title || "应急警情";
  event.waitUntil(
    self.registration.showNotification(title, {
      body: data.body || "",
      tag: data.tag || "incident",
      renotify: true,
      requireInteraction: true,
      vibrate: [400, 150, 400, 150, 800],
      data: { url: data.url || SHELL_URL },
    }).then(() => self.clients.matchAll({ type: "window" }))
      .then((clients) => clients.forEach((c) => c.postMessage({ type: "push", data })))
  );
});

// The push service rotated or dropped the subscription: subscribe again with the
// same server key and let open pages send it to the server (they also re-sync
// on every load, which covers the case where no page is open now).
self.addEventListener("pushsubscriptionchange", (event) => {
  const old = event.oldSubscription;
  const key = old && old.options && old.options.applicationServerKey;
  if (!key) return;
  event.waitUntil(
    self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key })
      .then(() => self.clients.matchAll({ type: "window" }))
      .then((clients) => clients.forEach((c) => c.postMessage({ type: "push-resubscribed" })))
      .catch(() => {})
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = (event.notification.data && event.notification.data.url) || SHELL_URL;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((clients) => {
      for (const client of clients) {
        if (new URL(client.url).pathname.startsWith(SHELL_URL) && "focus" in client) {
          client.navigate(target);
          return client.focus();
        }
      }
      return self.clients.openWindow(target);
    })
  );
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "sign-out") {
    event.waitUntil(caches.keys().then((keys) => Promise.all(keys.map((k) => caches.delete(k)))));
  }
});
