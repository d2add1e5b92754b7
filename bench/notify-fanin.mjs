// Notification fan-in (issue 21): several instances of the CLI share one PostgreSQL database, and every
// instance hears every commit of the database (one NOTIFY per commit), whether or not anyone there follows
// the space. Here --idle instances serve nobody while one writer (this process, the server's PostgreSQL
// storage) commits one change at a time into --spaces spaces in turn. Reported: the idle instances' CPU per
// commit, PostgreSQL's CPU per commit, and the commits per second; with 1 space and with many, to show
// whether the cost follows the commits or the spaces.
//
//   tsc -b && node bench/notify-fanin.mjs [--idle 3] [--commits 5000] [--spaces 1,10000]
import { parseArgs } from 'node:util';
import { formatTimestamp } from '../packages/core/dist/index.js';
import { postgresStorage } from '../packages/server/dist/index.js';
import { postgresPids, procCpu, startCluster } from './cluster.mjs';
import { event, fmt, table } from './lib.mjs';

const { values } = parseArgs({ options: { idle: { type: 'string' }, commits: { type: 'string' }, spaces: { type: 'string' }, postgres: { type: 'string' } } });
const IDLE = Number(values.idle ?? 3);
const COMMITS = Number(values.commits ?? 5000);
const SPACES = (values.spaces ?? '1,10000').split(',').map(Number);
const URL_ = values.postgres ?? process.env.SYNCLINE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const cluster = await startCluster(URL_, IDLE);
const storage = postgresStorage({ connectionString: URL_, schema: cluster.schema });
await storage.ready?.();
const replica = 'fanin';
const rows = [];
/** Seqs are per replica and space. */
const seqs = new Map();
let n = 0;
try {
for (const spaces of SPACES) {
  const [cpu0, pg0, t0] = [await cluster.cpu(), procCpu(postgresPids()), performance.now()];
  for (let i = 0; i < COMMITS; i++) {
    const space = `s${i % spaces}`;
    const seq = (seqs.get(space) ?? 0) + 1;
    seqs.set(space, seq);
    n++;
    const change = { space, collection: 'events', id: `e${n}`, replica, seq, hlc: formatTimestamp({ wall: Date.now(), counter: n % 0xffff, replica }), op: 'put', fields: event(n) };
    const [result] = await storage.append([{ space, replica, changes: [change] }]);
    if (result instanceof Error) throw result;
  }
  const seconds = (performance.now() - t0) / 1000;
  // Let the last notifications arrive before reading the instances' CPU.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const [cpu, pgCpu] = [(await cluster.cpu()) - cpu0, procCpu(postgresPids()) - pg0];
  rows.push([fmt(spaces), fmt(COMMITS), fmt(COMMITS / seconds), fmt(cpu / COMMITS / IDLE, 1), fmt(pgCpu / COMMITS, 1)]);
}
} finally {
  await storage.close();
  await cluster.stop();
}
console.log(`notification fan-in (${new Date().toISOString()}): ${IDLE} idle instance(s), ${fmt(COMMITS)} commits of one change each, one at a time`);
console.log(table(['spaces written in turn', 'commits', 'commits/s', 'CPU µs per commit per idle instance', 'PostgreSQL CPU µs per commit (all its processes, the writer\'s included)'], rows));
