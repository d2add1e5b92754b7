// Scenario: bootstrap in a real browser (issue 21). A Syncline server in its own process holds N records
// (default 100,000; about 200 bytes of JSON each); headless Chromium bootstraps a fresh replica on its own
// IndexedDB from it, beside raw `idb` puts of the same records in the same page, run by run; then count()
// of the bootstrapped collection. Needs Debian's Chromium and a built client (npx tsc -b).
//
//   node bench/browser-bootstrap.mjs [--records 100000] [--runs 3] [--incognito]
import { parseArgs } from 'node:util';
import { browserMissing, runPage } from './browser-lib.mjs';
import { startChild } from './child.mjs';
import { fmt, table } from './lib.mjs';

const { values } = parseArgs({ options: { records: { type: 'string' }, runs: { type: 'string' }, incognito: { type: 'boolean' } } });
const N = Number(values.records ?? 100_000);
const RUNS = Number(values.runs ?? 3);
const SPACE = 'bootstrap';

const why = await browserMissing();
if (why) {
  console.log(`### Bootstrap in the browser: skipped\n\n${why}`);
  process.exit(0);
}
// Default limits; any origin (the page is served from another port of 127.0.0.1).
const server = await startChild('syncline.mjs', [':memory:', 'browser']);
try {
  await server.seed(SPACE, N);
  const query = new URLSearchParams({ ws: `ws://127.0.0.1:${server.port}/sync`, space: SPACE, n: String(N), runs: String(RUNS) }).toString();
  const { results, version } = await runPage('bootstrap.html', query, { incognito: values.incognito ?? false, timeoutMs: 1_800_000 });
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const col = (key) => results.runs.map((r) => r[key]);
  const cell = (xs) => `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
  const ratios = results.runs.map((r) => r.syncline / r.raw);
  console.log(`### Bootstrap of ${fmt(N)} records into IndexedDB (Chromium ${version}, headless, ${values.incognito ? 'off the record' : 'on-disk profile'}; ms, median of ${RUNS} (min–max))\n`);
  console.log(
    table(
      ['what', 'ms', '× raw idb (per run, median)'],
      [
        ['Syncline: a fresh replica syncs the space (snapshot into IndexedDB)', cell(col('syncline')), fmt(median(ratios), 2)],
        ['raw idb: the same records, 2,000 puts per transaction', cell(col('raw')), '1.00'],
        ['count() of the bootstrapped collection', cell(col('count')), '–'],
        ['count() of the collection in the space', cell(col('spaceCount')), '–'],
      ],
    ),
  );
} finally {
  await server.stop();
}
