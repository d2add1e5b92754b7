/** Plain HTTP routes: /healthz, /metrics, and the static app build. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { Registry } from 'prom-client';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.ics': 'text/calendar; charset=utf-8',
};

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
  /** The Content-Security-Policy header of static responses. */
  readonly contentSecurityPolicy: string;
  /** The /metrics body: the server's registry and the process's metrics. */
  readonly metricsText: () => Promise<string>;
  readonly staticDir: string | undefined;
  readonly healthy: () => boolean;
  /** False on the public listener of a server with an admin listener: `/metrics` is served there instead. */
  readonly metrics: boolean;
}

export async function handleHttp(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/healthz') {
    const ok = ctx.healthy();
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'shutting_down' }));
    return;
  }
  if (url.pathname === '/metrics' && ctx.metrics) {
    res.writeHead(200, { 'content-type': ctx.registry.contentType }).end(await ctx.metricsText());
    return;
  }
  if (ctx.staticDir && (req.method === 'GET' || req.method === 'HEAD')) {
    const root = resolve(ctx.staticDir);
    let decoded: string;
    try {
      decoded = decodeURIComponent(url.pathname);
    } catch {
      // A malformed percent-escape (`/%`, `/%zz`) is the client's error, not the server's.
      res.writeHead(400, { 'content-type': 'text/plain', 'x-content-type-options': 'nosniff' }).end('bad request: malformed path');
      return;
    }
    const path = normalize(join(root, decoded));
    if (path === root || path.startsWith(root + sep)) {
      for (const candidate of [path, join(path, 'index.html'), join(root, 'index.html')]) {
        const info = await stat(candidate).catch(() => undefined);
        if (info?.isFile()) {
          const type = TYPES[extname(candidate)] ?? 'application/octet-stream';
          // The service worker and the page must be revalidated so a new build reaches users.
          const cache = candidate.endsWith('.html') || candidate.endsWith('sw.js') ? 'no-cache' : 'public, max-age=3600';
          res.writeHead(200, {
            'content-type': type,
            'content-length': info.size,
            'cache-control': cache,
            'x-content-type-options': 'nosniff',
            'content-security-policy': ctx.contentSecurityPolicy,
            // For browsers without CSP frame-ancestors.
            'x-frame-options': 'DENY',
            'referrer-policy': 'no-referrer',
          });
          if (req.method === 'HEAD') res.end();
          else createReadStream(candidate).pipe(res);
          return;
        }
      }
    }
  }
  res.writeHead(404, { 'content-type': 'text/plain', 'x-content-type-options': 'nosniff' }).end('not found');
}
