// Merge contexts (issue 19's figure): one merge record written by 1,000 replicas in turn, each
// version made after seeing the one before (so each supersedes it), stored through the server's
// storage (SQLite, and PostgreSQL when it answers); then 990 of the writers are retired and a gc
// pass's trim (storage.trimRetired) drops their entries. Prints the record's entries and stored bytes
// before and after, per backend. Then what one trim of a whole space costs: --records merge records
// (default 100,000) each written by two of 100 writers in turn, 90 of them retired, on SQLite: the
// trim's time and the longest the event loop waited meanwhile.
//
//   node bench/merge-context.mjs [--writers 1000] [--retire 990] [--records 100000] [--no-postgres]
//
// Run after `tsc -b`. PostgreSQL: SYNCLINE_TEST_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/test,
// in a fresh schema that is dropped after.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { applyChange, contextFor, formatTimestamp } from '../packages/core/dist/internal.js';
import { postgresStorage, sqliteStorage } from '../packages/server/dist/index.js';

const { values } = parseArgs({ options: { writers: { type: 'string' }, retire: { type: 'string' }, records: { type: 'string' }, 'no-postgres': { type: 'boolean' } } });
const WRITERS = Number(values.writers ?? 1_000);
const RETIRE = Math.min(WRITERS - 1, Number(values.retire ?? 990));
const PG_URL = process.env.SYNCLINE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SPACE = 'team';

/** The chain of versions: writer i writes after holding writer i-1's. */
function versions() {
  let state;
  const out = [];
  for (let i = 0; i < WRITERS; i++) {
    const replica = `writer-${String(i).padStart(4, '0')}`;
    const change = {
      space: SPACE,
      collection: 'events',
      id: 'standup',
      replica,
      seq: 1,
      hlc: formatTimestamp({ wall: 1_700_000_000_000 + i, counter: 0, replica }),
      op: 'version',
      value: { title: `standup, moved by ${replica}` },
      context: contextFor(state?.merge),
    };
    state = applyChange(state, change);
    out.push(change);
  }
  return out;
}

async function measure(storage) {
  const [record] = await storage.snapshotPage(SPACE, undefined, 10);
  const merge = record.state.merge;
  return { entries: merge.seen.size, context: merge.siblings.reduce((n, v) => n + v.context.size, 0), bytes: (await storage.stats()).recordBytes };
}

async function run(name, storage) {
  const changes = versions();
  for (let i = 0; i < changes.length; i += 100) {
    const results = await storage.append(changes.slice(i, i + 100).map((c) => ({ space: SPACE, replica: c.replica, changes: [c] })));
    for (const r of results) if (r instanceof Error) throw r;
  }
  const before = await measure(storage);
  await storage.retire(
    changes.slice(0, RETIRE).map((c) => c.replica),
    Date.now(),
  );
  const started = performance.now();
  const trim = await storage.trimRetired(SPACE, undefined);
  const ms = performance.now() - started;
  const after = await measure(storage);
  console.log(
    `  ${name}: before: ${before.entries} entries in seen, ${before.context} in the sibling's context, ${before.bytes} bytes stored (${(before.bytes / WRITERS).toFixed(1)} per writer); ` +
      `after retiring ${RETIRE} and one trim (${trim.records} record rewritten, ${ms.toFixed(1)} ms): ${after.entries} entries, ${after.context} in the context, ${after.bytes} bytes (${(before.bytes / after.bytes).toFixed(1)}x smaller)`,
  );
  await storage.close();
}

console.log(`merge context (${new Date().toISOString()}): one record written by ${WRITERS} replicas in turn, ${RETIRE} then retired`);
const dir = mkdtempSync(join(tmpdir(), 'syncline-bench-merge-context-'));
try {
  await run('SQLite', sqliteStorage({ path: join(dir, 'server.db') }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (!values['no-postgres']) {
  const schema = `merge_context_${process.pid}`;
  try {
    await run('PostgreSQL', postgresStorage({ connectionString: PG_URL, schema, onError: () => undefined }));
  } catch (error) {
    console.log(`  PostgreSQL: not run (${error instanceof Error ? error.message : String(error)})`);
  } finally {
    const client = new pg.Client({ connectionString: PG_URL });
    await client
      .connect()
      .then(() => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))
      .catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/** One trim over a space of many merge records (SQLite): how long, and the longest event-loop stall meanwhile. */
async function wholeSpace(records) {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-bench-merge-space-'));
  const storage = sqliteStorage({ path: join(dir, 'server.db') });
  try {
    const writers = Array.from({ length: 100 }, (_, i) => `w-${String(i).padStart(3, '0')}`);
    const seqs = new Map();
    const requests = [];
    const flush = async () => {
      for (const r of await storage.append(requests.splice(0))) if (r instanceof Error) throw r;
    };
    for (let i = 0; i < records; i++) {
      const id = `event-${i}`;
      const [a, b] = [writers[i % 100], writers[(i * 7 + 3) % 100]];
      let state;
      for (const replica of a === b ? [a] : [a, b]) {
        const seq = (seqs.get(replica) ?? 0) + 1;
        seqs.set(replica, seq);
        const change = { space: SPACE, collection: 'events', id, replica, seq, hlc: formatTimestamp({ wall: 1_700_000_000_000 + i, counter: seq, replica }), op: 'version', value: { title: id }, context: contextFor(state?.merge) };
        state = applyChange(state, change);
        requests.push({ space: SPACE, replica, changes: [change] });
      }
      if (requests.length >= 1_000) await flush();
    }
    await flush();
    const before = (await storage.stats()).recordBytes;
    await storage.retire(writers.slice(0, 90), Date.now());
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const started = performance.now();
    const trim = await storage.trimRetired(SPACE, undefined);
    const ms = performance.now() - started;
    delay.disable();
    const after = (await storage.stats()).recordBytes;
    console.log(
      `  a space of ${records} merge records, 90 of their 100 writers retired, SQLite: one trim rewrote ${trim.records} records in ${(ms / 1000).toFixed(2)} s ` +
        `(${((ms * 1000) / records).toFixed(1)} µs a record); the event loop waited at most ${(delay.max / 1e6).toFixed(1)} ms; record bytes ${before} -> ${after}`,
    );
  } finally {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await wholeSpace(Number(values.records ?? 100_000));
