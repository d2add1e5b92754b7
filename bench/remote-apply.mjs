// Remote apply (issue 21): one replica applying N changes another replica wrote, B per message (as a
// catch-up delivers them: decoded `changes` frames), beside Yjs applying the same writes as merged updates
// (Y.mergeUpdates of B sets each) and the floor (JSON.parse of each message + Map.set per record), in one
// process, the systems interleaved run by run. Only the apply is timed; messages are prepared before.
// CLIENT_DIST points at another build of the client for A/B runs.
//
//   tsc -b && node --expose-gc bench/remote-apply.mjs [--changes 20000] [--batch 500] [--runs 5]
import { parseArgs } from 'node:util';
import * as Y from 'yjs';
import { decodeDownstream, encodeDownstream } from '../packages/core/dist/internal.js';
import { event, interleaved, timesTable } from './lib.mjs';

const { values } = parseArgs({ options: { changes: { type: 'string' }, batch: { type: 'string' }, runs: { type: 'string' } } });
const N = Number(values.changes ?? 20_000);
const B = Number(values.batch ?? 500);
const RUNS = Number(values.runs ?? 5);
const dist = process.env.CLIENT_DIST ?? new URL('../packages/client/dist', import.meta.url).pathname;
const { createReplica, memoryStorage } = await import(`${dist}/index.js`);
const { internalsOf } = await import(`${dist}/replica.js`);
const schema = { events: { indexes: { byStart: ['start'] } } };

// The writer's changes, as the wire carries them: frames of B changes, encoded once.
const writer = await createReplica({ name: 'writer', schema, storage: memoryStorage(), tabs: false });
for (let i = 0; i < N; i += B) await writer.batch((b) => { for (let j = i; j < Math.min(N, i + B); j++) b.put('events', `e${j}`, event(j)); });
const outbox = await internalsOf(writer).port.readOutbox(writer.defaultSpace, N);
await writer.close();
const frames = [];
for (let i = 0; i < outbox.length; i += B) frames.push(encodeDownstream({ type: 'changes', space: outbox[0].space, changes: outbox.slice(i, i + B), upTo: i + B }));
// Yjs: the same writes on one doc, an update per set, merged B at a time.
const yUpdates = [];
{
  const doc = new Y.Doc();
  let pending = [];
  doc.on('update', (u) => pending.push(u));
  const map = doc.getMap('events');
  for (let i = 0; i < N; i++) {
    map.set(`e${i}`, event(i));
    if (pending.length === B) yUpdates.push(Y.mergeUpdates(pending.splice(0)));
  }
  if (pending.length > 0) yUpdates.push(Y.mergeUpdates(pending));
  doc.destroy();
}
// The floor: the records' JSON, B per message.
const jsonMessages = [];
for (let i = 0; i < N; i += B) jsonMessages.push(JSON.stringify(Array.from({ length: Math.min(B, N - i) }, (_, k) => [`e${i + k}`, event(i + k)])));

const systems = {
  async Syncline() {
    const replica = await createReplica({ name: 'reader', schema, storage: memoryStorage(), tabs: false });
    const port = internalsOf(replica).port;
    const t0 = performance.now();
    for (const frame of frames) {
      const m = decodeDownstream(frame);
      await port.applyRemote(m.changes, { space: m.space, upTo: m.upTo });
    }
    const ms = performance.now() - t0;
    if ((await replica.count({ collection: 'events' })) !== N) throw new Error('Syncline applied less than it was sent');
    await replica.close();
    return ms;
  },
  async 'Yjs (merged updates)'() {
    const doc = new Y.Doc();
    const t0 = performance.now();
    for (const u of yUpdates) {
      Y.applyUpdate(doc, u);
      await undefined;
    }
    const ms = performance.now() - t0;
    if (doc.getMap('events').size !== N) throw new Error('Yjs applied less');
    doc.destroy();
    return ms;
  },
  async 'JSON.parse + Map.set'() {
    const map = new Map();
    const t0 = performance.now();
    for (const m of jsonMessages) {
      for (const [id, value] of JSON.parse(m)) map.set(id, value);
      await undefined;
    }
    return performance.now() - t0;
  },
};

const times = await interleaved(systems, RUNS);
console.log(`remote apply (${new Date().toISOString()}): ${N} changes of another replica, ${B} per message, memory storage; median of ${RUNS}`);
console.log(timesTable(times, N, 'Yjs (merged updates)', 'change', 0));
