/*
 * The calendar's service worker: keeps the app shell so the calendar opens
 * without a network (the events themselves live in IndexedDB).
 *
 * - Built assets (/assets/*, hashed names) and static files: cache first.
 * - Navigations: network first, falling back to the cached index.html.
 * - Everything else (the /sync WebSocket, /healthz, /metrics, other origins) is
 *   left alone.
 *
 * On install it caches index.html and every asset that index.html names, so the
 * first offline reload works even for assets the page loaded before this worker
 * was in control. After each successful navigation it refreshes index.html and
 * drops assets that no build references any more.
 */
const CACHE = 'syncline-calendar-v1';
const SHELL = ['/', '/manifest.webmanifest', '/icon.svg'];

/** Asset URLs that an index.html references. */
function assetsOf(html) {
  const urls = new Set();
  for (const match of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) urls.add(match[1]);
  return [...urls];
}

async function cacheShell() {
  const cache = await caches.open(CACHE);
  const response = await fetch('/', { cache: 'no-cache' });
  if (!response.ok) throw new Error(`index.html: HTTP ${response.status}`);
  const html = await response.clone().text();
  await cache.put('/', response);
  await cache.addAll([...SHELL.slice(1), ...assetsOf(html)]);
}

self.addEventListener('install', (event) => {
  event.waitUntil(cacheShell().then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

async function pruneAssets(html) {
  const keep = new Set(assetsOf(html).map((path) => new URL(path, self.location.origin).href));
  const cache = await caches.open(CACHE);
  for (const request of await cache.keys()) {
    if (new URL(request.url).pathname.startsWith('/assets/') && !keep.has(request.url)) await cache.delete(request);
  }
}

async function navigate(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && (response.headers.get('content-type') || '').includes('text/html')) {
      const html = await response.clone().text();
      await cache.put('/', response.clone());
      // Make sure the assets of this (maybe new) build are cached, then forget old ones.
      const missing = [];
      for (const path of assetsOf(html)) if (!(await cache.match(path))) missing.push(path);
      await cache.addAll(missing).catch(() => undefined);
      await pruneAssets(html);
    }
    return response;
  } catch (error) {
    const cached = await cache.match('/');
    if (cached) return cached;
    throw error;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate') {
    event.respondWith(navigate(request));
    return;
  }
  if (url.pathname.startsWith('/assets/') || SHELL.includes(url.pathname)) {
    event.respondWith(cacheFirst(request));
  }
});
