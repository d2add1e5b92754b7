// Static serving (issue 20's figure): the bytes a browser downloads to open the calendar (the page,
// and every script, style sheet, icon and manifest it names) from the sync server, as each browser
// asks for them: without compression, with gzip, and with brotli (the build's precompressed files,
// server README "Endpoints"). Prints bytes per file and totals, and the ratios.
//
//   npm run build -w @syncline/calendar && tsc -b && node bench/static-bytes.mjs
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createSyncServer, sqliteStorage } from '../packages/server/dist/index.js';
import { pino } from 'pino';

const dist = fileURLToPath(new URL('../examples/calendar/dist', import.meta.url));
const server = createSyncServer({ port: 0, storage: sqliteStorage({ path: ':memory:' }), staticDir: dist, logger: pino({ level: 'silent' }) });
await server.listen();

function get(path, encoding) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers: encoding ? { 'accept-encoding': encoding } : {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, encoding: res.headers['content-encoding'] ?? 'identity', body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const page = (await get('/')).body.toString('utf8');
const paths = ['/', ...new Set([...page.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1]))];
const rows = [];
const totals = { identity: 0, gzip: 0, br: 0 };
for (const path of paths) {
  const row = { path };
  for (const [name, accept] of [['identity', undefined], ['gzip', 'gzip'], ['br', 'gzip, deflate, br']]) {
    const reply = await get(path, accept);
    if (reply.status !== 200) throw new Error(`${path}: HTTP ${reply.status}`);
    row[name] = `${reply.body.length} (${reply.encoding})`;
    totals[name] += reply.body.length;
  }
  rows.push(row);
}
console.table(rows);
console.log(`total: ${totals.identity} B plain, ${totals.gzip} B gzip (${(totals.identity / totals.gzip).toFixed(2)}× smaller), ${totals.br} B brotli (${(totals.identity / totals.br).toFixed(2)}× smaller)`);
await server.close();
