/**
 * Static files (server README, "Endpoints"): precompressed siblings by
 * Accept-Encoding, a year's immutable caching for hashed names and
 * revalidation for pages, no source maps unless asked for, the app's routes
 * answered with index.html, nothing outside the folder or hidden.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupStack, startServer, tempDir } from '../sync/harness.js';

const cleanup = cleanupStack();
afterEach(() => cleanup.run());

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function site(): Promise<{ path: string; page: string; script: string }> {
  const root = await tempDir('syncline-static-');
  cleanup.push(() => root.remove());
  // A file beside the folder: never reachable from it.
  writeFileSync(join(root.path, 'outside.txt'), 'OUTSIDE');
  const dir = { path: join(root.path, 'site') };
  mkdirSync(dir.path);
  const page = `<!doctype html><title>calendar</title>${'<p>x</p>'.repeat(300)}`;
  const script = `console.log(${JSON.stringify('y'.repeat(5000))});`;
  mkdirSync(join(dir.path, 'assets'));
  const files: Record<string, string> = { 'index.html': page, 'assets/index-C7Rh_JVR.js': script, 'assets/index-C7Rh_JVR.js.map': '{"version":3}', 'icon.svg': '<svg/>', '.env': 'SECRET=1' };
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir.path, name), body);
  for (const name of ['index.html', 'assets/index-C7Rh_JVR.js']) {
    const body = Buffer.from(files[name] as string);
    writeFileSync(join(dir.path, `${name}.br`), brotliCompressSync(body));
    writeFileSync(join(dir.path, `${name}.gz`), gzipSync(body));
  }
  return { path: dir.path, page, script };
}

describe('static files', () => {
  it('sends the precompressed file the browser accepts, caches hashed names for good and revalidates pages', async () => {
    const { path, page, script } = await site();
    const server = await startServer({ staticDir: path });
    cleanup.push(() => server.close());

    const br = await get(server.port, '/', { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.status).toBe(200);
    expect(br.headers['content-encoding']).toBe('br');
    expect(brotliDecompressSync(br.body).toString()).toBe(page);
    expect(br.body.length).toBeLessThan(page.length / 5);
    expect(br.headers['content-type']).toMatch(/^text\/html/);
    expect(br.headers['cache-control']).toBe('no-cache');
    expect(br.headers['vary']).toBe('Accept-Encoding');
    expect(br.headers['x-content-type-options']).toBe('nosniff');
    expect(br.headers['content-security-policy']).toContain("frame-ancestors 'none'");

    const gz = await get(server.port, '/assets/index-C7Rh_JVR.js', { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).toString()).toBe(script);
    expect(gz.headers['content-type']).toMatch(/javascript/);
    expect(gz.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const plain = await get(server.port, '/assets/index-C7Rh_JVR.js');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toBe(script);
    // Revalidation by ETag.
    const again = await get(server.port, '/assets/index-C7Rh_JVR.js', { 'if-none-match': plain.headers['etag'] as string });
    expect(again.status).toBe(304);
    // A file without a hash: an hour.
    expect((await get(server.port, '/icon.svg')).headers['cache-control']).toBe('public, max-age=3600');
  });

  it("answers the app's routes with index.html, and 404 for source maps, missing files, dotfiles and paths outside the folder", async () => {
    const { path, page } = await site();
    const server = await startServer({ staticDir: path });
    cleanup.push(() => server.close());
    const route = await get(server.port, '/week/2026-12-07');
    expect(route.status).toBe(200);
    expect(route.body.toString()).toBe(page);
    expect(route.headers['cache-control']).toBe('no-cache');
    for (const missing of ['/assets/index-C7Rh_JVR.js.map', '/missing.js', '/.env', '/../outside.txt', '/%2e%2e/outside.txt', '/assets/..%2f..%2foutside.txt', '/assets/..%2f.env']) {
      const reply = await get(server.port, missing);
      expect(reply.status, missing).toBe(404);
      expect(reply.body.toString(), missing).not.toMatch(/SECRET|OUTSIDE/);
    }
    const maps = await startServer({ staticDir: path, staticSourceMaps: true });
    cleanup.push(() => maps.close());
    expect((await get(maps.port, '/assets/index-C7Rh_JVR.js.map')).status).toBe(200);
  });
});
