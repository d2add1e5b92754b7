// Scenario: local writes in a real browser. The same work as local-writes.mjs (raw `idb` puts,
// Syncline on IndexedDB, Syncline on memory; single writes and batches of 1,000), run by headless
// Chromium on its own IndexedDB instead of fake-indexeddb in Node.
// Needs Debian's Chromium (apt-get install -y chromium) and a built client (npx tsc -b).
// Flags: --quick (short pass), --incognito (an off-the-record context: Chromium keeps IndexedDB in memory).
// CHROMIUM_PATH overrides /usr/bin/chromium.
import { browserMissing, runPage } from './browser-lib.mjs';
import { fmt, quick, table } from './lib.mjs';

const incognito = process.argv.includes('--incognito');
const RESULTS_TIMEOUT_MS = quick ? 120_000 : 600_000;

function missing(message) {
  return `### Local writes in the browser: skipped\n\n${message}`;
}

export async function run() {
  const why = await browserMissing();
  if (why) return missing(why);
  const { results, version } = await runPage('local-writes.html', quick ? 'quick=1' : '', { incognito, timeoutMs: RESULTS_TIMEOUT_MS });
  return format(results, version);
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
