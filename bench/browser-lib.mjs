// What the browser scenarios share: building a page of bench/browser with vite, serving it on
// 127.0.0.1 (cross-origin isolated, for finer timers), and driving headless Chromium (Debian's; an
// on-disk profile, as for a real user, unless `incognito`) until the page sets window.__results.
// CHROMIUM_PATH overrides /usr/bin/chromium.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pageDir = join(here, 'browser');
export const clientDist = join(here, '..', 'packages', 'client', 'dist', 'index.js');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const LAUNCH_TIMEOUT_MS = 60_000;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const CONTENT_TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.map': 'application/json' };

/** Why the scenario cannot run here (Chromium, the client build or playwright-core missing), or undefined. */
export async function browserMissing() {
  if (!existsSync(CHROMIUM)) {
    return `Chromium not found at ${CHROMIUM}. Install Debian's Chromium with \`apt-get update && apt-get install -y chromium\` (as root), or point CHROMIUM_PATH at a Chromium binary.`;
  }
  if (!existsSync(clientDist)) return `${clientDist} is missing: build the client first with \`npx tsc -b\`.`;
  try {
    await import('playwright-core');
  } catch {
    return 'playwright-core is not installed: run `npm install` at the repository root.';
  }
  return undefined;
}

async function buildPage(outDir, html) {
  const { build } = await import('vite');
  await build({
    root: pageDir,
    base: './',
    configFile: false,
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, target: 'es2022', reportCompressedSize: false, rolldownOptions: { input: join(pageDir, html) } },
  });
}

async function serve(root, html) {
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
      const file = resolve(root, `.${path === '/' ? `/${html}` : path}`);
      if (file !== root && !file.startsWith(root + sep)) throw Object.assign(new Error('outside root'), { code: 'ENOENT' });
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
      });
      res.end(body);
    } catch (error) {
      res.writeHead(error?.code === 'ENOENT' || error?.code === 'EISDIR' ? 404 : 500, { 'content-type': 'text/plain' });
      res.end(String(error?.message ?? error));
    }
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  return server;
}

/**
 * Builds bench/browser/`html`, opens it in Chromium with `query`, and resolves to
 * { results, version } once the page sets window.__results (rejects on window.__error).
 */
export async function runPage(html, query, { incognito = false, timeoutMs = 600_000 } = {}) {
  const { chromium } = await import('playwright-core');
  const outDir = await mkdtemp(join(tmpdir(), 'syncline-bench-page-'));
  const profileDir = incognito ? undefined : await mkdtemp(join(tmpdir(), 'syncline-bench-profile-'));
  let server;
  let browser;
  let context;
  try {
    await buildPage(outDir, html);
    server = await serve(outDir, html);
    const { port } = server.address();
    const options = { executablePath: CHROMIUM, args: ARGS, timeout: LAUNCH_TIMEOUT_MS };
    // A persistent context keeps IndexedDB on disk, as for a real user; Playwright's ordinary
    // contexts are off the record, where Chromium keeps IndexedDB in memory.
    if (incognito) {
      browser = await chromium.launch(options);
      context = await browser.newContext();
    } else {
      context = await chromium.launchPersistentContext(profileDir, options);
    }
    const page = context.pages()[0] ?? (await context.newPage());
    const cdp = await context.newCDPSession(page);
    const { product } = await cdp.send('Browser.getVersion');
    page.on('console', (msg) => {
      if (msg.text().startsWith('[bench]')) process.stderr.write(`${msg.text()}\n`);
    });
    page.on('pageerror', (error) => process.stderr.write(`[page error] ${error.message}\n`));
    await page.goto(`http://127.0.0.1:${port}/${html}${query ? `?${query}` : ''}`, { timeout: 30_000 });
    await page.waitForFunction(() => window.__results !== undefined || window.__error !== undefined, undefined, { timeout: timeoutMs, polling: 250 });
    const error = await page.evaluate(() => window.__error);
    if (error !== undefined) throw new Error(`the benchmark page failed: ${error}`);
    return { results: await page.evaluate(() => window.__results), version: product.replace(/^(Headless)?Chrome\//, '') };
  } finally {
    await context?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await new Promise((ok) => (server ? server.close(ok) : ok()));
    await rm(outDir, { recursive: true, force: true });
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
  }
}
