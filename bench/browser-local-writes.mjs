// Scenario: local writes in a real browser. The same work as local-writes.mjs (raw `idb` puts,
// Syncline on IndexedDB, Syncline on memory; single writes and batches of 1,000), run by headless
// Chromium on its own IndexedDB instead of fake-indexeddb in Node.
// Needs Debian's Chromium (apt-get install -y chromium) and a built client (npx tsc -b).
// Flags: --quick (short pass), --incognito (an off-the-record context: Chromium keeps IndexedDB in memory).
// CHROMIUM_PATH overrides /usr/bin/chromium.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, quick, table } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const pageDir = join(here, 'browser');
const clientDist = join(here, '..', 'packages', 'client', 'dist', 'index.js');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const incognito = process.argv.includes('--incognito');
const LAUNCH_TIMEOUT_MS = 60_000;
const RESULTS_TIMEOUT_MS = quick ? 120_000 : 600_000;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const CONTENT_TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.map': 'application/json' };

async function buildPage(outDir) {
  const { build } = await import('vite');
  await build({
    root: pageDir,
    base: './',
    configFile: false,
    logLevel: 'warn',
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      reportCompressedSize: false,
      rolldownOptions: { input: join(pageDir, 'local-writes.html') },
    },
  });
}

/** A static server for the built page on 127.0.0.1, random port. Cross-origin isolated for finer timers. */
async function serve(root) {
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
      const file = resolve(root, `.${path === '/' ? '/local-writes.html' : path}`);
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

function missing(message) {
  return `### Local writes in the browser: skipped\n\n${message}`;
}

export async function run() {
  if (!existsSync(CHROMIUM)) {
    return missing(`Chromium not found at ${CHROMIUM}. Install Debian's Chromium with \`apt-get update && apt-get install -y chromium\` (as root), or point CHROMIUM_PATH at a Chromium binary.`);
  }
  if (!existsSync(clientDist)) return missing(`${clientDist} is missing: build the client first with \`npx tsc -b\`.`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    return missing('playwright-core is not installed: run `npm install` at the repository root.');
  }

  const outDir = await mkdtemp(join(tmpdir(), 'syncline-bench-page-'));
  const profileDir = incognito ? undefined : await mkdtemp(join(tmpdir(), 'syncline-bench-profile-'));
  let server;
  let browser;
  let context;
  try {
    await buildPage(outDir);
    server = await serve(outDir);
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
    await page.goto(`http://127.0.0.1:${port}/local-writes.html${quick ? '?quick=1' : ''}`, { timeout: 30_000 });
    await page.waitForFunction(() => window.__results !== undefined || window.__error !== undefined, undefined, { timeout: RESULTS_TIMEOUT_MS, polling: 250 });
    const error = await page.evaluate(() => window.__error);
    if (error !== undefined) throw new Error(`the benchmark page failed: ${error}`);
    const results = await page.evaluate(() => window.__results);
    return format(results, product.replace(/^(Headless)?Chrome\//, ''));
  } finally {
    await context?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await new Promise((ok) => (server ? server.close(ok) : ok()));
    await rm(outDir, { recursive: true, force: true });
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
  }
}

function format(results, version) {
  const { measurements, batch, batchedRecords, singleRecords, runs } = results;
  const get = (batched, writer) => measurements.find((m) => m.batched === batched && m.writer === writer);
  const cell = (m) => `${fmt(m.median)} (${fmt(m.min)}–${fmt(m.max)})`;
  const rows = [];
  for (const batched of [false, true]) {
    const raw = get(batched, 'raw');
    const idb = get(batched, 'indexeddb');
    const mem = get(batched, 'memory');
    const mode = batched ? `batches of ${fmt(batch)}` : 'single writes';
    rows.push([mode, 'raw idb puts (baseline)', cell(raw), '1.00']);
    rows.push([mode, 'Syncline, IndexedDB', cell(idb), fmt(raw.median / idb.median, 2)]);
    rows.push([mode, 'Syncline, memory', cell(mem), fmt(raw.median / mem.median, 2)]);
  }
  const where = incognito ? 'off-the-record context, IndexedDB in memory' : 'on-disk profile';
  return `### Local writes in the browser (${fmt(batchedRecords)} records batched, ${fmt(singleRecords)} single; Chromium ${version} real IndexedDB, headless, ${where}; median of ${runs} (min–max))\n\n` +
    table(['mode', 'writer', 'writes/s median (min–max)', 'time vs raw idb (×)'], rows);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await run());
  process.exit(0);
}
