/** Plain HTTP routes: /healthz, /metrics, and the static app build (served by sirv). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import sirv from 'sirv';


/**
 * The Content-Security-Policy of static responses unless the server is given
 * another: what the calendar needs (its own scripts and style sheets (React
 * sets style properties from script, which CSP allows), sync over WebSocket to
 * this server or another one the user names), and no framing by other sites.
 */
export const DEFAULT_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
  "connect-src 'self' ws: wss:; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

export interface HttpContext {
  readonly registry: Registry;
  /** The /metrics body: the server's registry and the process's metrics. */
  readonly metricsText: () => Promise<string>;
  /** Serves the static folder (staticFiles), or undefined without one. */
  readonly static: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  readonly healthy: () => boolean;
  /** False on the public listener of a server with an admin listener: `/metrics` is served there instead. */
  readonly metrics: boolean;
  /** On the admin listener only: `/inspect` (server.inspect(), as JSON). */
  readonly inspect?: () => Promise<unknown>;
}

export async function handleHttp(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/healthz') {
    const ok = ctx.healthy();
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'shutting_down' }));
    return;
  }
  if (url.pathname === '/inspect' && ctx.inspect) {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(await ctx.inspect()));
    return;
  }
  if (url.pathname === '/metrics' && ctx.metrics) {
    res.writeHead(200, { 'content-type': ctx.registry.contentType }).end(await ctx.metricsText());
    return;
  }
  if (ctx.static && (req.method === 'GET' || req.method === 'HEAD')) {
    ctx.static(req, res);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain', 'x-content-type-options': 'nosniff' }).end('not found');
}

/** A file name with a content hash before its extension, as Vite writes them (`index-B3x9_aQ1.js`). */
const HASHED = /[.-][A-Za-z0-9_-]{8,}\.(?:js|mjs|css|woff2?|png|svg|jpg|webp)$/;

/**
 * The static folder's handler: sirv, with each file's precompressed sibling
 * (`.br`, `.gz`) when the request accepts it, `index.html` for paths without
 * an extension (an app's routes), and no dotfiles. Files with a content hash
 * in their names are cached for a year (`immutable`); pages, the service
 * worker and the manifest are revalidated (`no-cache`) so that a new build
 * reaches users; the rest for an hour. Source maps (`.map`) are not served
 * unless `sourceMaps`. The folder is read at each request (sirv's `dev`), so a
 * new build is served without a restart.
 */
export function staticFiles(dir: string, options: { readonly contentSecurityPolicy: string; readonly sourceMaps: boolean }): (req: IncomingMessage, res: ServerResponse) => void {
  const notFound = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(404, { 'content-type': 'text/plain', 'x-content-type-options': 'nosniff' }).end('not found');
  };
  const serve = sirv(dir, {
    dev: true,
    etag: true,
    gzip: true,
    brotli: true,
    single: true,
    dotfiles: false,
    onNoMatch: notFound,
    setHeaders(res, pathname) {
      const revalidate = pathname.endsWith('.html') || pathname.endsWith('sw.js') || pathname.endsWith('.webmanifest') || !/\.[A-Za-z0-9]+$/.test(pathname);
      res.setHeader('Cache-Control', revalidate ? 'no-cache' : HASHED.test(pathname) ? 'public, max-age=31536000, immutable' : 'public, max-age=3600');
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Content-Security-Policy', options.contentSecurityPolicy);
      // For browsers without CSP frame-ancestors.
      res.setHeader('X-Frame-Options', 'DENY');
      res.setHeader('Referrer-Policy', 'no-referrer');
    },
  });
  return (req, res) => {
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      // A malformed percent-escape (`/%`, `/%zz`) is the client's error, not the server's.
      res.writeHead(400, { 'content-type': 'text/plain', 'x-content-type-options': 'nosniff' }).end('bad request: malformed path');
      return;
    }
    if (!options.sourceMaps && path.endsWith('.map')) return notFound(req, res);
    // Hidden files (`.env`, `.git/…`) and `..` are never served, whatever sirv's mode checks.
    if (path.split(/[/\\]/).some((segment) => segment.startsWith('.') && segment !== '.well-known')) return notFound(req, res);
    serve(req, res);
  };
}
